"""Repository conformance: the backend itself: name, health, close."""

from __future__ import annotations

from botmox_core.ports import DataBackend, HealthReport
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    _check_equal,
)

__all__ = ["BackendBasicsConformance"]


class BackendBasicsConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: the backend itself: name, health, close."""

    def test_backend_has_a_name(self, backend: DataBackend) -> None:
        assert isinstance(backend.name, str) and backend.name, "DataBackend.name must be set"

    def test_check_health_reports_ok(self, backend: DataBackend) -> None:
        report = backend.check_health()
        assert isinstance(report, HealthReport)
        _check_equal(report.ok, True, f"check_health().ok (detail: {report.detail!r})")
        _check_equal(report.name, backend.name, "check_health().name")
        assert report.latency_ms is None or report.latency_ms >= 0

    def test_close_is_idempotent(self, backend: DataBackend) -> None:
        backend.close()
        backend.close()
