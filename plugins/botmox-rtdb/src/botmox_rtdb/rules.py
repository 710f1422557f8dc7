"""The ``database.rules.json`` fragment the RTDB backend needs: its query indexes.

Print it with ``python -m botmox_rtdb.rules`` and merge it into the project's rules before
pointing botmox at a real database (queries without these indexes fail with a DatabaseError
naming this command). The emulator loads the same document in tests.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from botmox_rtdb import layout
from botmox_rtdb.domain_repositories import ARCHIVE, LIFECYCLE_LOG
from botmox_rtdb.vault_repositories import BINDINGS

__all__ = ["DOMAIN_INDEXES", "INDEXES", "main", "rules_document"]

INDEXES: dict[str, list[str]] = {
    layout.RELEASES: ["module", "version"],
    layout.AUDIT: ["id", "lease_id"],
    BINDINGS: ["scope_id", "secret_ref"],
}
"""``.indexOn`` per subtree of ``tenants/$tenant_id``: the children the queries order by."""

DOMAIN_INDEXES: dict[str, list[str]] = {
    LIFECYCLE_LOG: ["bot_id"],
    ARCHIVE: ["bot_id"],
}
"""``.indexOn`` per domain path (:mod:`botmox_rtdb.domain_repositories`), declared at the root
(the legacy tenant) and under ``tenants/$tenant_id``: a bot's log and archive are read with
``orderByChild("bot_id")``. Record lists need none: they read the collection (or its keys)."""


def _nest(indexes: dict[str, list[str]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for path, fields in indexes.items():
        node = tree
        for key in path.split("/"):
            node = node.setdefault(key, {})
        node[".indexOn"] = list(fields)
    return tree


def rules_document(read: bool | str = False, write: bool | str = False) -> dict[str, Any]:
    """The rules document: the indexes at the root and under ``tenants/$tenant_id``, and root
    ``.read`` / ``.write`` (default ``false``: only the admin SDK, which bypasses rules, has
    access)."""
    tenant_rules = _nest({**INDEXES, **DOMAIN_INDEXES})
    return {"rules": {".read": read, ".write": write, **_nest(DOMAIN_INDEXES),
                      layout.TENANTS: {"$tenant_id": tenant_rules}}}


def main() -> int:
    """Print the rules document as JSON."""
    json.dump(rules_document(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
