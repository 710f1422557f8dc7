"""Finance aggregates: ``daily_stats`` (a map by date) and ``gold_price_history`` (opaque,
deprecated), read-only from the API. Finance operations are a record collection
(:class:`~botmox_core.services.domains.records.RecordService`)."""

from __future__ import annotations

from typing import Any

from botmox_core.domain.records import AggregateKey
from botmox_core.services.domains.base import DomainService
from botmox_core.services.principal import Principal

__all__ = ["FinanceService"]


class FinanceService(DomainService):
    """``GET /finance/daily-stats`` and ``GET /finance/gold-price-history``."""

    def aggregate(self, principal: Principal, key: AggregateKey) -> dict[str, Any]:
        """The tenant's aggregate (``{}`` when it has none)."""
        with (uow := self._read_unit()):
            found = uow.aggregates.get(principal.tenant_id, key)
        return dict(found) if found is not None else {}

    def daily_stats(self, principal: Principal) -> dict[str, Any]:
        return self.aggregate(principal, AggregateKey.DAILY_STATS)

    def gold_price_history(self, principal: Principal) -> dict[str, Any]:
        return self.aggregate(principal, AggregateKey.GOLD_PRICE_HISTORY)
