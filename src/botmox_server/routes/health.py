"""Health, liveness and readiness (no auth)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from botmox_core import __version__
from botmox_core.ports import HealthReport
from botmox_server.dependencies import Core
from botmox_server.envelope import ok

_READY_FLAGS = {
    "supabase": "supabase_ready",
    "rtdb": "firebase_ready",
    "s3": "s3_ready",
    "minio": "s3_ready",
}


def _report(report: HealthReport) -> dict[str, Any]:
    return {
        "name": report.name,
        "ok": report.ok,
        "detail": report.detail,
        "latency_ms": None if report.latency_ms is None else round(report.latency_ms, 2),
    }


@get("/api/v1/health", sync_to_thread=True, tags=["health"])
def health(core: Core) -> Response[Any]:
    """Service, configured backends and per-dependency health."""
    reports = core.health()
    body: dict[str, Any] = {
        "service": "botmox",
        "version": __version__,
        "data_backend": core.settings.data_backend,
        "storage": core.settings.storage,
        "supabase_ready": None,
        "s3_ready": None,
        "dependencies": {role: _report(report) for role, report in reports.items()},
    }
    for role, name in (
        ("data_backend", core.settings.data_backend),
        ("storage", core.settings.storage),
    ):
        flag = _READY_FLAGS.get(name)
        if flag:
            body[flag] = reports[role].ok
    body["ready"] = all(report.ok for report in reports.values())
    return ok(body)


@get("/api/v1/health/live", tags=["health"])
async def live() -> Response[Any]:
    """The process answers."""
    return ok({"status": "live"})


@get("/api/v1/health/ready", sync_to_thread=True, tags=["health"])
def ready(core: Core) -> Response[Any]:
    """200 when every required dependency answers, else a 503 envelope naming the failures."""
    reports = core.health()
    checks = {role: _report(report) for role, report in reports.items()}
    if all(report.ok for report in reports.values()):
        return ok({"status": "ready", "checks": checks})
    down = [role for role, report in reports.items() if not report.ok]
    return Response(
        {
            "success": False,
            "error": {
                "code": "SERVICE_UNAVAILABLE",
                "message": f"not ready: {', '.join(down)} down",
                "details": checks,
            },
        },
        status_code=503,
    )
