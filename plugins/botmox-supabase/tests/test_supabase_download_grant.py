"""``read_download_grant`` on PostgreSQL: resolve-download's reads in one statement give what
the repositories' reads, composed in a read unit, give -- for every shape of data."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from botmox_supabase.backend import PostgresDataBackend

from botmox_core.models import Assignment, Lease, LeaseStatus, Release, ReleaseScope, ReleaseStatus
from botmox_core.ports.repositories import DownloadGrant, read_unit_of_work

NOW = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
SCOPE = ReleaseScope("farm-bot", "win64", "stable")


def _composed(backend: PostgresDataBackend, tenant: str, lease_id: str) -> DownloadGrant:
    """The grant as the generic fallback reads it (one repository call at a time)."""
    with read_unit_of_work(backend) as uow:
        lease = uow.leases.get(tenant, lease_id)
        if lease is None:
            return DownloadGrant(None)
        assignment = uow.assignments.get(tenant, lease.user_id, SCOPE) or uow.assignments.get(
            tenant, None, SCOPE
        )
        if assignment is None:
            return DownloadGrant(lease)
        return DownloadGrant(lease, assignment, uow.releases.get(tenant, assignment.release_id))


def _release(tenant: str, version: str) -> Release:
    return Release(
        id=0,
        tenant_id=tenant,
        module=SCOPE.module,
        platform=SCOPE.platform,
        channel=SCOPE.channel,
        version=version,
        object_key=f"{tenant}/{version}/{secrets.token_hex(4)}.zip",
        sha256="ab" * 32,
        size_bytes=1234,
        status=ReleaseStatus.ACTIVE,
        created_at=NOW,
    )


@pytest.mark.parametrize(
    "shape", ["no-lease", "no-assignment", "default-only", "user-and-default", "user-only"]
)
def test_one_statement_reads_what_the_repositories_read(
    pg_backend: PostgresDataBackend, shape: str
) -> None:
    tenant = f"tenant-{secrets.token_hex(3)}"
    lease = Lease(
        id=f"lease_{secrets.token_hex(16)}",
        tenant_id=tenant,
        user_id="user-1",
        vm_uuid="vm-0000001",
        module=SCOPE.module,
        status=LeaseStatus.ACTIVE,
        token_hash="cd" * 32,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
    )
    with pg_backend.unit_of_work() as uow:
        if shape != "no-lease":
            uow.leases.add(lease)
        default = uow.releases.add(_release(tenant, "1.0"))
        own = uow.releases.add(_release(tenant, "2.0"))
        uow.releases.add(_release(f"{tenant}-other", "9.9"))  # another tenant's: never read
        if shape in ("default-only", "user-and-default"):
            uow.assignments.put(Assignment(tenant, *SCOPE_FIELDS, default.id, NOW))
        if shape in ("user-and-default", "user-only"):
            uow.assignments.put(Assignment(tenant, *SCOPE_FIELDS, own.id, NOW, user_id="user-1"))
        uow.commit()
    grant = pg_backend.read_download_grant(tenant, lease.id, SCOPE)
    assert grant == _composed(pg_backend, tenant, lease.id)
    expected = {
        "no-lease": None,
        "no-assignment": None,
        "default-only": default.id,
        "user-and-default": own.id,
        "user-only": own.id,
    }[shape]
    assert (grant.release.id if grant.release else None) == expected
    if shape != "no-lease":
        assert grant.lease == lease  # timestamps keep their microseconds through JSON


def test_a_missing_release_is_none(pg_backend: PostgresDataBackend, database_url: str) -> None:
    tenant = f"tenant-{secrets.token_hex(3)}"
    lease = Lease(
        id=f"lease_{secrets.token_hex(16)}",
        tenant_id=tenant,
        user_id="user-1",
        vm_uuid="vm-0000001",
        module=SCOPE.module,
        status=LeaseStatus.ACTIVE,
        token_hash="cd" * 32,
        issued_at=NOW,
        expires_at=NOW + timedelta(minutes=5),
    )
    with pg_backend.unit_of_work() as uow:
        uow.leases.add(lease)
        release = uow.releases.add(_release(tenant, "1.0"))
        uow.assignments.put(Assignment(tenant, *SCOPE_FIELDS, release.id, NOW))
        uow.commit()
    with psycopg.connect(database_url, autocommit=True) as raw:  # the operator deleted it
        raw.execute("set session_replication_role = replica")  # past the foreign key
        raw.execute("delete from botmox.releases where id = %s", (release.id,))
    grant = pg_backend.read_download_grant(tenant, lease.id, SCOPE)
    assert grant.assignment is not None and grant.release is None
    assert grant == _composed(pg_backend, tenant, lease.id)


SCOPE_FIELDS = (SCOPE.module, SCOPE.platform, SCOPE.channel)
