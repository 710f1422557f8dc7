"""The control entries (table ``botmox.control``, migration ``20261203000000``) and the tenant
list on PostgreSQL.

``modify`` locks the entry's row (``FOR UPDATE``) until the unit ends; an absent entry is
inserted with ``ON CONFLICT DO NOTHING`` and read again, so two units racing for the migration
lock never both win.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from botmox_core.errors import BadRequestError, DatabaseError
from botmox_core.ports.control import CONTROL_KEY_PATTERN
from botmox_supabase.error_mapping import map_database_errors

__all__ = ["TENANT_TABLES", "PostgresControlRepository"]

#: Every table with a ``tenant_id`` column.
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
    "resources_licenses",
    "resources_proxies",
    "resources_subscriptions",
    "workspace_notes",
    "workspace_calendar_events",
    "workspace_kanban_tasks",
    "bots",
    "finance_operations",
    "bot_lifecycle_log",
    "bot_archive",
    "finance_aggregates",
    "app_settings",
    "vault_secrets",
    "vault_bindings",
)
_UNION = " union ".join(f"select tenant_id from botmox.{t}" for t in TENANT_TABLES)  # noqa: S608
_TENANTS_SQL = (
    f"select tenant_id from ({_UNION}) as t where tenant_id > %s"  # noqa: S608
    ' order by tenant_id collate "C" limit %s'
)


def _key(key: object) -> str:
    if not isinstance(key, str) or not CONTROL_KEY_PATTERN.fullmatch(key):
        raise BadRequestError("a control key is 1-64 of a-z 0-9 _ -", details={"field": "key"})
    return key


def _jsonb(value: Mapping[str, Any]) -> Jsonb:
    return Jsonb(dict(value), dumps=lambda v: json.dumps(v, separators=(",", ":"), allow_nan=False))


class PostgresControlRepository:
    """:class:`~botmox_core.ports.control.ControlRepository` on ``botmox.control``."""

    def __init__(self, connection: Callable[[], Any]) -> None:
        self._connection = connection

    def _rows(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with (
            map_database_errors("control"),
            self._connection().cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []

    @staticmethod
    def _object(value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise DatabaseError("stored control entry is not an object")
        return value

    def get(self, key: str) -> Mapping[str, Any] | None:
        rows = self._rows("select value from botmox.control where key = %s", (_key(key),))
        return self._object(rows[0][0]) if rows else None

    def modify(
        self, key: str, change: Callable[[Mapping[str, Any] | None], Mapping[str, Any] | None]
    ) -> Mapping[str, Any] | None:
        _key(key)
        for _ in range(2):
            rows = self._rows("select value from botmox.control where key = %s for update", (key,))
            current = self._object(rows[0][0]) if rows else None
            changed = change(current)
            if changed is not None and not isinstance(changed, Mapping):
                raise BadRequestError("a control entry is a JSON object", details={"field": key})
            if rows:
                if changed is None:
                    self._rows("delete from botmox.control where key = %s", (key,))
                elif dict(changed) != current:
                    self._rows(
                        "update botmox.control set value = %s, updated_at = now() where key = %s",
                        (_jsonb(changed), key),
                    )
                return None if changed is None else dict(changed)
            if changed is None:
                return None
            inserted = self._rows(
                "insert into botmox.control (key, value) values (%s, %s)"
                " on conflict (key) do nothing returning key",
                (key, _jsonb(changed)),
            )
            if inserted:
                return dict(changed)
        raise DatabaseError("the control entry changed during a modify; try again")

    def tenants(self, *, after: str | None = None, limit: int = 1000) -> Sequence[str]:
        if limit <= 0:
            return []
        rows = self._rows(_TENANTS_SQL, (after if after is not None else "", limit))
        return [row[0] for row in rows]
