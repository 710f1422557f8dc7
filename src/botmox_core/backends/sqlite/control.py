"""The SQLite control entries (table ``control``, schema version 5) and the tenant list.

``modify`` runs in the unit's ``BEGIN IMMEDIATE`` transaction, which already holds SQLite's
write lock, so a read-change-write is atomic against every other connection; like every write
of a unit it is durable at the unit's ``commit()``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from botmox_core.backends.sqlite.repositories import Statements
from botmox_core.errors import BadRequestError, DatabaseError
from botmox_core.ports.control import CONTROL_KEY_PATTERN

__all__ = ["TENANT_TABLES", "SqliteControlRepository", "checked_control_key"]

#: Every table with a ``tenant_id`` column: a tenant "holds data" when one has a row of it.
TENANT_TABLES = (
    "api_tokens",
    "vms",
    "licences",
    "entitlements",
    "leases",
    "releases",
    "assignments",
    "download_audit",
    "agents",
    "commands",
    "domain_records",
    "bot_lifecycle_log",
    "bot_archive",
    "domain_aggregates",
    "domain_settings",
    "vault_secrets",
    "vault_bindings",
)


_UNION = " UNION ".join(f"SELECT tenant_id FROM {t}" for t in TENANT_TABLES)  # noqa: S608
_TENANTS_SQL = f"SELECT tenant_id FROM ({_UNION}) WHERE tenant_id > ? ORDER BY tenant_id LIMIT ?"  # noqa: S608


def checked_control_key(key: object) -> str:
    """``key`` when it matches :data:`CONTROL_KEY_PATTERN`, else :class:`BadRequestError`."""
    if not isinstance(key, str) or not CONTROL_KEY_PATTERN.fullmatch(key):
        raise BadRequestError("a control key is 1-64 of a-z 0-9 _ -", details={"field": "key"})
    return key


class SqliteControlRepository:
    """Control entries as JSON text in table ``control``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def get(self, key: str) -> Mapping[str, Any] | None:
        rows = self._sql.rows(
            "SELECT value FROM control WHERE key = ?", (checked_control_key(key),)
        )
        if not rows:
            return None
        value = json.loads(rows[0]["value"])
        if not isinstance(value, dict):
            raise DatabaseError("stored control entry is not an object")
        return value

    def modify(
        self, key: str, change: Callable[[Mapping[str, Any] | None], Mapping[str, Any] | None]
    ) -> Mapping[str, Any] | None:
        current = self.get(key)
        changed = change(current)
        if changed is None:
            if current is not None:
                self._sql.run("DELETE FROM control WHERE key = ?", (key,))
            return None
        if not isinstance(changed, Mapping):
            raise BadRequestError("a control entry is a JSON object", details={"field": key})
        value = dict(changed)
        if value != current:
            self._sql.run(
                "INSERT INTO control (key, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "updated_at = excluded.updated_at",
                (
                    key,
                    json.dumps(value, separators=(",", ":"), allow_nan=False),
                    datetime.now(UTC).isoformat(),
                ),
            )
        return value

    def tenants(self, *, after: str | None = None, limit: int = 1000) -> Sequence[str]:
        if limit <= 0:
            return []
        rows = self._sql.rows(
            _TENANTS_SQL,
            (after if after is not None else "", limit),
        )
        return [row["tenant_id"] for row in rows]
