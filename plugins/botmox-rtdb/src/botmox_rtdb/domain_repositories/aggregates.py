"""Finance aggregates on RTDB: ``finance/daily_stats`` and ``finance/gold_price_history``,
below the tenant's base."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botmox_core.domain.records import AggregateKey
from botmox_rtdb.domain_codec import decode, encode
from botmox_rtdb.domain_repositories.paths import AGGREGATE_PATHS
from botmox_rtdb.domain_repositories.writes import DomainWrites

__all__ = ["RtdbAggregateRepository"]


class RtdbAggregateRepository:
    """Finance aggregates at ``finance/daily_stats`` and ``finance/gold_price_history``."""

    def __init__(self, writes: DomainWrites) -> None:
        self._writes = writes

    def _path(self, tenant_id: str, key: AggregateKey) -> str:
        return self._writes.layout.path(tenant_id, AGGREGATE_PATHS[AggregateKey(key)])

    def get(self, tenant_id: str, key: AggregateKey) -> Mapping[str, Any] | None:
        """The stored object, or ``None``."""
        raw = self._writes.read(self._path(tenant_id, key))
        return None if raw is None else decode(raw)

    def put(self, tenant_id: str, key: AggregateKey, value: Mapping[str, Any]) -> None:
        """Stage the object (replacing the stored one) for the unit's multi-path update."""
        self._writes.stage_write(self._path(tenant_id, key), encode(value, "aggregate"))
