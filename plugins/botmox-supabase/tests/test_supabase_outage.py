"""The database stopped mid-run: health reports it, operations answer 503/502 botmox errors (never
psycopg exceptions), an interrupted unit of work leaves nothing half-written, and the pool
recovers once PostgreSQL is back. Uses its own throwaway cluster, since it stops it."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from botmox_supabase.backend import PostgresDataBackend
from botmox_supabase.migrations import apply_migrations
from botmox_supabase.testing import PostgresUnavailable, TemporaryPostgres, require_postgres

from botmox_core.errors import DatabaseError, ServiceUnavailableError
from botmox_core.models import (
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    Lease,
    LeaseStatus,
    Release,
    ReleaseStatus,
    Vm,
    VmStatus,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
HASH = "ab" * 32
OUTAGE_ERRORS = (ServiceUnavailableError, DatabaseError)


@pytest.fixture(scope="module")
def cluster() -> Iterator[TemporaryPostgres]:
    try:
        pg = TemporaryPostgres()
    except PostgresUnavailable as exc:
        require_postgres(str(exc))
    try:
        pg.start()
        apply_migrations(pg.dsn)
        yield pg
    finally:
        pg.destroy()


@pytest.fixture
def dsn(cluster: TemporaryPostgres) -> Iterator[str]:
    if not cluster.running:
        cluster.start()
    yield cluster.dsn
    if not cluster.running:
        cluster.start()


@pytest.fixture
def fast_backend(dsn: str, make_backend: Callable[..., PostgresDataBackend]) -> PostgresDataBackend:
    return make_backend(dsn, pool_timeout=1.0, connect_timeout=1.0, pool_max_size=4)


def _tenant() -> str:
    return f"tenant-{secrets.token_hex(4)}"


def _lease(tenant: str) -> Lease:
    return Lease(
        id=f"lease_{secrets.token_hex(8)}",
        tenant_id=tenant,
        user_id="user-1",
        vm_uuid="vm-0000001",
        module="fishing",
        status=LeaseStatus.ACTIVE,
        token_hash=HASH,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
    )


def _write_everything(uow: Any, tenant: str) -> None:
    uow.vms.upsert(Vm(tenant, "vm-0000001", "user-1", VmStatus.ACTIVE, NOW, NOW))
    uow.leases.add(_lease(tenant))
    uow.releases.add(
        Release(
            0,
            tenant,
            "fishing",
            "windows",
            "stable",
            "1.0.0",
            "k/1",
            HASH,
            10,
            ReleaseStatus.ACTIVE,
            NOW,
        )
    )
    uow.audit.append(
        DownloadAuditEntry(tenant, AuditEvent.RESOLVE_SUCCESS, AuditResult.ALLOWED, NOW)
    )


def _rows_of(dsn: str, tenant: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(
                f"select count(*) from botmox.{table} where tenant_id = %s",
                (tenant,),
            ).fetchone()[0]
            for table in ("vms", "leases", "releases", "download_audit")
        }


def _wait_healthy(backend: PostgresDataBackend, seconds: float = 20) -> float:
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        if backend.check_health().ok:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"backend did not recover: {backend.check_health()}")


def test_stopped_database_is_reported_and_the_pool_recovers(
    cluster: TemporaryPostgres, dsn: str, fast_backend: PostgresDataBackend
) -> None:
    tenant = _tenant()
    lease = _lease(tenant)
    with fast_backend.unit_of_work() as uow:
        uow.leases.add(lease)
        uow.commit()
    assert fast_backend.check_health().ok

    cluster.stop()
    report = fast_backend.check_health()
    assert not report.ok
    assert report.detail and report.detail.startswith("SERVICE_UNAVAILABLE")
    assert "password" not in report.detail and cluster.dsn not in report.detail
    for _ in range(3):  # every pooled connection is dead: each attempt maps cleanly
        with pytest.raises(OUTAGE_ERRORS) as caught, fast_backend.unit_of_work() as uow:
            uow.leases.get(tenant, lease.id)
        assert caught.value.status in (502, 503)
        assert not isinstance(caught.value, psycopg.Error)

    cluster.start()
    _wait_healthy(fast_backend)
    with fast_backend.unit_of_work() as uow:
        assert uow.leases.get(tenant, lease.id) == lease


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_unit_of_work_interrupted_mid_way_leaves_nothing(
    mode: str, cluster: TemporaryPostgres, dsn: str, fast_backend: PostgresDataBackend
) -> None:
    kept, interrupted = _tenant(), _tenant()
    with fast_backend.unit_of_work() as uow:
        _write_everything(uow, kept)
        uow.commit()

    with pytest.raises(OUTAGE_ERRORS), fast_backend.unit_of_work() as uow:
        _write_everything(uow, interrupted)
        cluster.stop(mode)  # the database goes away before the commit
        uow.commit()

    cluster.start()
    assert _rows_of(dsn, interrupted) == {
        t: 0 for t in ("vms", "leases", "releases", "download_audit")
    }
    assert _rows_of(dsn, kept) == {t: 1 for t in ("vms", "leases", "releases", "download_audit")}
    _wait_healthy(fast_backend)
    with fast_backend.unit_of_work() as uow:  # and the backend writes again
        _write_everything(uow, interrupted)
        uow.commit()
    assert _rows_of(dsn, interrupted) == {
        t: 1 for t in ("vms", "leases", "releases", "download_audit")
    }


def test_backend_built_while_the_database_is_down(
    cluster: TemporaryPostgres, dsn: str, make_backend: Callable[..., PostgresDataBackend]
) -> None:
    cluster.stop()
    backend = make_backend(dsn, pool_timeout=1.0, connect_timeout=1.0)
    assert not backend.check_health().ok
    started = time.monotonic()
    with pytest.raises(ServiceUnavailableError), backend.unit_of_work():
        pass
    assert time.monotonic() - started < 5
    cluster.start()
    _wait_healthy(backend)
    with backend.unit_of_work() as uow:
        assert uow.leases.get("tenant-x", "lease_none") is None


def test_server_readiness_and_envelopes_follow_the_database(
    cluster: TemporaryPostgres, dsn: str, tmp_path: Path
) -> None:
    jwt = pytest.importorskip("jwt")
    testing = pytest.importorskip("litestar.testing")
    from botmox_core.config import load_settings
    from botmox_server.app import create_app

    secret = secrets.token_hex(32)
    settings = load_settings(
        environ={
            "DATA_BACKEND": "supabase",
            "BOTMOX_SUPABASE_DATABASE_URL": dsn,
            "BOTMOX_SUPABASE_POOL_TIMEOUT": "1",
            "BOTMOX_SUPABASE_CONNECT_TIMEOUT": "1",
            "BOTMOX_DATA_DIR": str(tmp_path / "data"),
            "BOTMOX_JWT_SECRET": secret,
        }
    )
    token = jwt.encode(
        {
            "sub": "user-1",
            "aud": "authenticated",
            "iss": "supabase",
            "exp": int(time.time()) + 600,
            "app_metadata": {"tenant_id": _tenant(), "botmox_role": "admin"},
        },
        secret,
        algorithm="HS256",
    )
    headers = {"Authorization": f"Bearer {token}"}
    body = {"vm_uuid": f"vm-{secrets.token_hex(6)}", "user_id": "user-1"}
    with testing.TestClient(create_app(settings)) as client:
        health = client.get("/api/v1/health").json()["data"]
        assert health["data_backend"] == "supabase" and health["supabase_ready"] is True
        assert client.get("/api/v1/health/ready").status_code == 200
        assert client.post("/api/v1/vm/register", json=body, headers=headers).status_code == 201

        cluster.stop()
        ready = client.get("/api/v1/health/ready")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        assert client.get("/api/v1/health").json()["data"]["supabase_ready"] is False
        down = client.post("/api/v1/vm/register", json=body, headers=headers)
        assert down.status_code in (502, 503), down.text
        envelope = down.json()
        assert envelope["success"] is False
        assert envelope["error"]["code"] in ("SERVICE_UNAVAILABLE", "DATABASE_ERROR")
        assert "psycopg" not in down.text and "Traceback" not in down.text

        cluster.start()
        deadline = time.monotonic() + 20
        while client.get("/api/v1/health/ready").status_code != 200:
            assert time.monotonic() < deadline, "readiness did not come back"
            time.sleep(0.2)
        resolved = client.get(f"/api/v1/vm/{body['vm_uuid']}/resolve", headers=headers)
        assert resolved.status_code == 200, resolved.text
