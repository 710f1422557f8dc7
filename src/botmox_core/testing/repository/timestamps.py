"""Repository conformance: timestamps: UTC and precision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    _check_equal,
    _check_utc,
    make_lease,
)

__all__ = ["TimestampConformance"]


class TimestampConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: timestamps: UTC and precision."""

    def test_timestamps_in_other_offsets_come_back_as_utc(
        self, backend: DataBackend, tenant: str
    ) -> None:
        plus_two = timezone(timedelta(hours=2))
        issued = datetime(2026, 11, 24, 14, 30, 15, 250000, tzinfo=plus_two)
        lease = make_lease(tenant, issued_at=issued, expires_at=issued + timedelta(minutes=5))
        self.committed(backend, lambda uow: uow.leases.add(lease))
        got = self.read(backend, lambda uow: uow.leases.get(tenant, lease.id))
        _check_equal(got, lease, "lease with +02:00 timestamps")
        _check_utc(got, "lease")

    def test_timestamps_keep_microseconds(self, backend: DataBackend, tenant: str) -> None:
        self._require("preserves_microseconds", "timestamps are stored with less precision")
        stamp = datetime(2026, 11, 24, 12, 0, 0, 123457, tzinfo=UTC)
        lease = make_lease(tenant, issued_at=stamp, expires_at=stamp + timedelta(microseconds=1))
        self.committed(backend, lambda uow: uow.leases.add(lease))
        _check_equal(self.read(backend, lambda uow: uow.leases.get(tenant, lease.id)), lease, "")
