"""Conformance of ``uow.aggregates``: one JSON object per tenant and finance aggregate."""

from __future__ import annotations

from typing import Any, TypeVar

from botmox_core.domain.records import AggregateKey
from botmox_core.ports import DataBackend
from botmox_core.testing.domains._base import DomainConformanceBase
from botmox_core.testing.domains._support import EDGE_NUMBERS, check_same_json

__all__ = ["AggregateConformance"]

B = TypeVar("B", bound=DataBackend)

DAILY: dict[str, Any] = {
    "2026-01-01": {"income": 12.5, "expense": 3, "gold": 2**53 + 1, "note": "ünï ✓ \U0001f600"},
    "2026-01-02": {"income": 0, "expense": -0.5, "tags": ["a", None, {}]},
}


class AggregateConformance(DomainConformanceBase[B]):
    """Pytest mixin: what ``uow.aggregates`` must do."""

    def test_an_absent_aggregate_is_none(self, backend: B, tenant: str) -> None:
        for key in AggregateKey:
            with backend.unit_of_work() as uow:
                assert uow.aggregates.get(tenant, key) is None  # type: ignore[attr-defined]

    def test_put_and_get_round_trip_and_replace(self, backend: B, tenant: str) -> None:
        self.write_unit(
            backend, lambda uow: uow.aggregates.put(tenant, AggregateKey.DAILY_STATS, DAILY)
        )
        found = self.read_unit(
            backend, lambda uow: uow.aggregates.get(tenant, AggregateKey.DAILY_STATS)
        )
        assert found is not None
        check_same_json(DAILY, dict(found))
        history = {"points": list(EDGE_NUMBERS)}
        self.write_unit(
            backend,
            lambda uow: uow.aggregates.put(tenant, AggregateKey.GOLD_PRICE_HISTORY, history),
        )
        replaced = {"2026-02-01": {"income": 1}}
        self.write_unit(
            backend, lambda uow: uow.aggregates.put(tenant, AggregateKey.DAILY_STATS, replaced)
        )
        found = self.read_unit(
            backend, lambda uow: uow.aggregates.get(tenant, AggregateKey.DAILY_STATS)
        )
        assert found is not None
        check_same_json(replaced, dict(found))
        other = self.read_unit(
            backend, lambda uow: uow.aggregates.get(tenant, AggregateKey.GOLD_PRICE_HISTORY)
        )
        assert other is not None
        check_same_json(history, dict(other))

    def test_aggregates_are_per_tenant(self, backend: B, tenant: str, other_tenant: str) -> None:
        self.write_unit(
            backend, lambda uow: uow.aggregates.put(tenant, AggregateKey.DAILY_STATS, DAILY)
        )
        assert (
            self.read_unit(
                backend, lambda uow: uow.aggregates.get(other_tenant, AggregateKey.DAILY_STATS)
            )
            is None
        )
        self.write_unit(
            backend,
            lambda uow: uow.aggregates.put(other_tenant, AggregateKey.DAILY_STATS, {"x": 1}),
        )
        found = self.read_unit(
            backend, lambda uow: uow.aggregates.get(tenant, AggregateKey.DAILY_STATS)
        )
        assert found is not None
        check_same_json(DAILY, dict(found))

    def test_an_empty_object_round_trips(self, backend: B, tenant: str) -> None:
        self.write_unit(
            backend, lambda uow: uow.aggregates.put(tenant, AggregateKey.DAILY_STATS, {})
        )
        found = self.read_unit(
            backend, lambda uow: uow.aggregates.get(tenant, AggregateKey.DAILY_STATS)
        )
        assert found is not None and dict(found) == {}
