"""Shared pieces of the repository conformance kit: fixed values, check helpers and model
builders (valid records with every optional field filled and fresh random ids; keyword
arguments replace fields; also handy for a backend's own extra tests)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import attrs

from botmox_core.models import (
    ApiToken,
    Assignment,
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    Lease,
    LeaseStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Role,
    Vm,
    VmStatus,
)

__all__ = [
    "METADATA",
    "SHA_A",
    "SHA_B",
    "SCOPE",
    "T0",
    "make_assignment",
    "make_entry",
    "make_lease",
    "make_release",
    "make_token",
    "make_vm",
]

T = TypeVar("T")

#: A fixed instant with millisecond precision (every backend keeps milliseconds).
T0 = datetime(2026, 11, 24, 12, 30, 15, 250000, tzinfo=UTC)

SHA_A = "a" * 64
SHA_B = "0123456789abcdef" * 4

METADATA: dict[str, Any] = {
    "agent": "runner-7",
    "nested": {"list": [1, "two", 3.5, True, None], "empty": {}},
    "unicode": "ünïcødé ✓",
    "count": 3,
    "flag": False,
}


def _uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _fail(what: str, actual: object, expected: object) -> None:
    raise AssertionError(f"{what}:\n  got      {actual!r}\n  expected {expected!r}")


def _check_equal(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        _fail(what, actual, expected)


def _check_utc(value: object, what: str) -> None:
    """Every datetime field of an attrs model is timezone-aware with a zero UTC offset."""
    if value is None or not attrs.has(type(value)):
        return
    for field in attrs.fields(type(value)):  # type: ignore[arg-type]
        stamp = getattr(value, field.name)
        if isinstance(stamp, datetime) and stamp.utcoffset() != timedelta(0):
            _fail(f"{what}.{field.name} must come back timezone-aware UTC", stamp, "UTC")


# -- model builders: valid records with every optional field filled and fresh random ids; ----
# -- keyword arguments replace fields. Also handy for a backend's own extra tests. ------------


def make_token(tenant_id: str, **changes: Any) -> ApiToken:
    token = ApiToken(
        id=_uid("tok"),
        tenant_id=tenant_id,
        role=Role.ADMIN,
        token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        created_at=T0,
        user_id="user-1",
        expires_at=_at(3600),
        revoked_at=None,
        label="deploy key",
    )
    return attrs.evolve(token, **changes)


def make_vm(tenant_id: str, **changes: Any) -> Vm:
    vm = Vm(
        tenant_id=tenant_id,
        vm_uuid=_uid("vm").lower(),
        user_id="user-1",
        status=VmStatus.ACTIVE,
        created_at=T0,
        updated_at=_at(1),
        vm_name="farm-01",
        project_id="project-a",
        metadata=dict(METADATA),
    )
    return attrs.evolve(vm, **changes)


def make_lease(tenant_id: str, **changes: Any) -> Lease:
    lease = Lease(
        id=_uid("lease"),
        tenant_id=tenant_id,
        user_id="user-1",
        vm_uuid="vm-0001",
        module="fishing",
        status=LeaseStatus.ACTIVE,
        token_hash=SHA_A,
        issued_at=T0,
        expires_at=_at(300),
        previous_token_hash=SHA_B,
        last_heartbeat_at=_at(60),
        version="1.2.3",
        agent_id="agent-1",
        runner_id="runner-1",
        revoked_at=None,
        revoke_reason=None,
    )
    return attrs.evolve(lease, **changes)


def make_release(tenant_id: str, **changes: Any) -> Release:
    version = changes.pop("version", f"1.0.{uuid.uuid4().int % 100000}")
    release = Release(
        id=0,
        tenant_id=tenant_id,
        module="fishing",
        platform="windows",
        channel="stable",
        version=version,
        object_key=f"fishing/windows/stable/{version}/{uuid.uuid4().hex}.zip",
        sha256=SHA_B,
        size_bytes=123456,
        status=ReleaseStatus.ACTIVE,
        created_at=T0,
    )
    return attrs.evolve(release, **changes)


def make_entry(tenant_id: str, **changes: Any) -> DownloadAuditEntry:
    entry = DownloadAuditEntry(
        tenant_id=tenant_id,
        event=AuditEvent.RESOLVE_SUCCESS,
        result=AuditResult.ALLOWED,
        created_at=T0,
        reason_code=None,
        lease_id="lease_1",
        user_id="user-1",
        vm_uuid="vm-0001",
        module="fishing",
        platform="windows",
        channel="stable",
        release_id=7,
        request_ip="203.0.113.9",
        url_expires_at=_at(300),
        metadata=dict(METADATA),
    )
    return attrs.evolve(entry, **changes)


SCOPE = ReleaseScope("fishing", "windows", "stable")


def make_assignment(
    tenant_id: str, scope: ReleaseScope, release_id: int, at: datetime, user_id: str | None
) -> Assignment:
    return Assignment(
        tenant_id=tenant_id,
        module=scope.module,
        platform=scope.platform,
        channel=scope.channel,
        release_id=release_id,
        assigned_at=at,
        user_id=user_id,
    )
