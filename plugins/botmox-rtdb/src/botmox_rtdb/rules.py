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

__all__ = ["INDEXES", "main", "rules_document"]

INDEXES: dict[str, list[str]] = {
    layout.RELEASES: ["module", "version"],
    layout.AUDIT: ["id", "lease_id"],
}
"""``.indexOn`` per subtree of ``tenants/$tenant_id``: the children the queries order by."""


def rules_document(read: bool | str = False, write: bool | str = False) -> dict[str, Any]:
    """The rules document: the indexes under ``tenants/$tenant_id``, and root ``.read`` /
    ``.write`` (default ``false``: only the admin SDK, which bypasses rules, has access)."""
    tenant_rules = {name: {".indexOn": list(fields)} for name, fields in INDEXES.items()}
    return {"rules": {".read": read, ".write": write,
                      layout.TENANTS: {"$tenant_id": tenant_rules}}}


def main() -> int:
    """Print the rules document as JSON."""
    json.dump(rules_document(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
