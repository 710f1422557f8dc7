"""Object-storage conformance: the health check and closing."""

from __future__ import annotations

from botmox_core.ports.storage import ObjectStorage
from botmox_core.testing.storage._base import ObjectStorageConformanceBase

__all__ = ["HealthConformance"]


class HealthConformance(ObjectStorageConformanceBase):
    """Pytest mixin: ``check_health`` reports ok under the storage's name; ``close`` may be
    called twice."""

    def test_health_is_ok(self, storage: ObjectStorage) -> None:
        report = storage.check_health()
        assert report.ok, report.detail
        assert report.name == storage.name

    def test_close_is_idempotent(self, storage: ObjectStorage) -> None:
        storage.close()
        storage.close()
