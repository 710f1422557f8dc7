"""Finance aggregate routes (``/finance/daily-stats``, ``/finance/gold-price-history``)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from botmox_core.domain.records import AggregateKey
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok


@get("/api/v1/finance/daily-stats", sync_to_thread=True, tags=["finance"])
def finance_daily_stats(core: Core, principal: Caller) -> Response[Any]:
    """The daily stats by date (``{}`` when none)."""
    return ok(core.domains.finance.aggregate(principal, AggregateKey.DAILY_STATS))


@get("/api/v1/finance/gold-price-history", sync_to_thread=True, tags=["finance"])
def finance_gold_price_history(core: Core, principal: Caller) -> Response[Any]:
    """The gold price history (``{}`` when none; deprecated)."""
    return ok(core.domains.finance.aggregate(principal, AggregateKey.GOLD_PRICE_HISTORY))


ROUTES: list[Any] = [finance_daily_stats, finance_gold_price_history]
