"""Backend behaviour beyond the conformance suite: Supavisor transaction-mode compatibility,
the service-role path, and the unit of work's guard rails."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest
from botmox_supabase.backend import PostgresDataBackend

from botmox_core.models import (
    Assignment,
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    Lease,
    LeaseStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _lease(tenant: str) -> Lease:
    return Lease(
        id=f"lease_{secrets.token_hex(8)}",
        tenant_id=tenant,
        user_id="user-1",
        vm_uuid="vm-0000001",
        module="fishing",
        status=LeaseStatus.ACTIVE,
        token_hash="cd" * 32,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
    )


def test_no_server_side_prepared_statements(pg_backend: PostgresDataBackend) -> None:
    """Supavisor's transaction mode hands each transaction to any server connection, so a
    prepared statement made in one would be missing in the next: the backend never prepares."""
    lease = _lease("tenant-p")
    with pg_backend.unit_of_work() as uow:
        uow.leases.add(lease)
        for _ in range(20):
            assert uow.leases.get("tenant-p", lease.id) == lease
        conn = uow._connection()
        prepared = conn.execute("select count(*) from pg_prepared_statements").fetchone()
    assert prepared == (0,)


def test_unit_of_work_guard_rails(pg_backend: PostgresDataBackend) -> None:
    uow = pg_backend.unit_of_work()
    with pytest.raises(RuntimeError):
        uow.commit()
    with uow, pytest.raises(RuntimeError):
        uow.__enter__()
    with pytest.raises(RuntimeError):  # its connection went back to the pool
        uow.leases.get("tenant-p", "lease_x")


def test_role_that_does_not_bypass_rls_is_reported_unhealthy(
    login_role_dsn: str, make_backend: Callable[..., PostgresDataBackend]
) -> None:
    dsn = login_role_dsn
    plain = make_backend(dsn)
    report = plain.check_health()
    assert not report.ok and "does not bypass row-level security" in (report.detail or "")

    switched = make_backend(dsn, role="service_role")
    assert switched.check_health().ok
    lease = _lease("tenant-r")
    with switched.unit_of_work() as uow:
        uow.leases.add(lease)
        uow.commit()
        uow.leases.add(_lease("tenant-r"))  # after commit: a new transaction, role set again
        uow.commit()
    with switched.unit_of_work() as uow:
        assert uow.leases.get("tenant-r", lease.id) == lease


def test_unmigrated_database_is_reported_unhealthy(
    empty_database_url: str, make_backend: Callable[..., PostgresDataBackend]
) -> None:
    backend = make_backend(empty_database_url)
    report = backend.check_health()
    assert not report.ok and "botmox db migrate" in (report.detail or "")


def _audit_entry(tenant: str, vm_uuid: str = "vm-0000001") -> DownloadAuditEntry:
    return DownloadAuditEntry(
        tenant, AuditEvent.DOWNLOAD_URL_ISSUED, AuditResult.ALLOWED, NOW, vm_uuid=vm_uuid
    )


def _assigned(backend: PostgresDataBackend, tenant: str) -> tuple[Lease, ReleaseScope]:
    """A lease, and a release assigned as the tenant default for its scope."""
    lease, scope = _lease(tenant), ReleaseScope("fishing", "windows", "stable")
    where = (scope.module, scope.platform, scope.channel)
    release = Release(
        0, tenant, *where, "1.0.0", f"{tenant}/k", "ab" * 32, 10, ReleaseStatus.ACTIVE, NOW
    )
    with backend.unit_of_work() as uow:
        uow.leases.add(lease)
        stored = uow.releases.add(release)
        uow.assignments.put(Assignment(tenant, *where, stored.id, NOW))
        uow.commit()
    return lease, scope


@pytest.mark.parametrize(("mode", "prepares"), [("transaction", False), ("session", True)])
def test_resolve_path_prepares_only_in_session_mode(
    database_url: str, make_backend: Callable[..., PostgresDataBackend], mode: str, prepares: bool
) -> None:
    """The grant read and the audit insert run on one pooled connection here: in ``session``
    mode psycopg prepares them on the server after a few runs, in ``transaction`` mode never."""
    backend = make_backend(database_url, pool_min_size=1, pool_max_size=1, pooler_mode=mode)
    lease, scope = _assigned(backend, "tenant-m")
    for _ in range(8):
        grant = backend.read_download_grant("tenant-m", lease.id, scope)
        assert grant.lease == lease and grant.release is not None
        assert backend.append_audit(_audit_entry("tenant-m")).id is not None
    with backend._autocommit("check") as conn:
        row = conn.execute("select count(*) from pg_prepared_statements").fetchone()
    assert row is not None and (row[0] > 0) is prepares


@pytest.mark.parametrize("mode", ["transaction", "session"])
def test_role_path_of_the_grant_read_and_the_audit(
    login_role_dsn: str, make_backend: Callable[..., PostgresDataBackend], mode: str
) -> None:
    """A login role without BYPASSRLS and ``role=service_role``: the resolve path's read and
    audit act as service_role (``SET LOCAL ROLE`` per transaction, or ``SET ROLE`` once per
    connection in ``session`` mode), so they see and write every tenant's rows."""
    backend = make_backend(login_role_dsn, role="service_role", pooler_mode=mode)
    assert backend.check_health().ok
    lease, scope = _assigned(backend, "tenant-s")
    for _ in range(6):  # past the prepare threshold in session mode
        grant = backend.read_download_grant("tenant-s", lease.id, scope)
        assert grant.lease == lease and grant.release is not None
        stored = backend.append_audit(_audit_entry("tenant-s"))
    with backend.read_unit_of_work() as uow:
        assert [entry.id for entry in uow.audit.list("tenant-s", limit=1)] == [stored.id]
        assert uow._connection().execute("select current_user").fetchone() == ("service_role",)


def test_session_mode_sees_a_revocation_at_once(
    database_url: str, make_backend: Callable[..., PostgresDataBackend]
) -> None:
    """Prepared (``session`` mode) or not, the grant read sees every commit before it began."""
    backend = make_backend(database_url, pool_min_size=1, pool_max_size=1, pooler_mode="session")
    lease, scope = _assigned(backend, "tenant-v")
    for _ in range(6):
        assert backend.read_download_grant("tenant-v", lease.id, scope).lease == lease
    with backend.unit_of_work() as uow:
        uow.leases.modify(
            "tenant-v",
            lease.id,
            lambda current: attrs.evolve(current, status=LeaseStatus.REVOKED, revoked_at=NOW),
        )
        uow.commit()
    revoked = backend.read_download_grant("tenant-v", lease.id, scope).lease
    assert revoked is not None and revoked.status is LeaseStatus.REVOKED
