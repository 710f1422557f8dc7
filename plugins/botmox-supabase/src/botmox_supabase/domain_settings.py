"""Finance aggregates and the settings tree of the Supabase backend
(``botmox.finance_aggregates``, ``botmox.app_settings``): one JSON object per key or tenant.

``modify`` of the settings reads the tenant's row ``FOR UPDATE`` inside the unit's transaction,
so concurrent modifies queue up and none is lost.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botmox_core.domain.records import AggregateKey
from botmox_core.errors import DatabaseError
from botmox_supabase.domain_storage import DomainRepository, json_object, jsonb_param

__all__ = ["PostgresAggregateRepository", "PostgresSettingsRepository"]


class PostgresAggregateRepository(DomainRepository):
    """:class:`~botmox_core.ports.domains.AggregateRepository` on ``botmox.finance_aggregates``."""

    _action = "finance aggregate"

    def get(self, tenant_id: str, key: AggregateKey) -> Mapping[str, Any] | None:
        rows = self._rows(
            "select data from botmox.finance_aggregates where tenant_id = %s and key = %s",
            (tenant_id, AggregateKey(key).value),
        )
        return json_object(rows[0][0], "aggregate") if rows else None

    def put(self, tenant_id: str, key: AggregateKey, value: Mapping[str, Any]) -> None:
        self._rows(
            "insert into botmox.finance_aggregates (tenant_id, key, data) values (%s, %s, %s)"
            " on conflict (tenant_id, key) do update set data = excluded.data,"
            " updated_at = now()",
            (tenant_id, AggregateKey(key).value, jsonb_param(dict(value))),
        )


class PostgresSettingsRepository(DomainRepository):
    """:class:`~botmox_core.ports.domains.SettingsRepository` on ``botmox.app_settings`` (one
    row per tenant holding the whole tree)."""

    _action = "settings"

    def get(self, tenant_id: str) -> Mapping[str, Any] | None:
        rows = self._rows("select data from botmox.app_settings where tenant_id = %s", (tenant_id,))
        return json_object(rows[0][0], "settings") if rows else None

    def modify(
        self, tenant_id: str, change: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        # The tenant's row is locked until the unit ends. A tenant without a row gets one by an
        # insert that does nothing if a concurrent unit inserted first; then the row exists and
        # the second round reads (and waits for) it, so no update is lost either way.
        for _ in range(2):
            rows = self._rows(
                "select data from botmox.app_settings where tenant_id = %s for update",
                (tenant_id,),
            )
            current = json_object(rows[0][0], "settings") if rows else {}
            updated = dict(change(current))
            if rows:
                if updated != current:
                    self._rows(
                        "update botmox.app_settings set data = %s, updated_at = now()"
                        " where tenant_id = %s",
                        (jsonb_param(updated), tenant_id),
                    )
                return updated
            inserted = self._rows(
                "insert into botmox.app_settings (tenant_id, data) values (%s, %s)"
                " on conflict (tenant_id) do nothing returning tenant_id",
                (tenant_id, jsonb_param(updated)),
            )
            if inserted:
                return updated
        raise DatabaseError("the settings row of the tenant vanished during a modify; try again")
