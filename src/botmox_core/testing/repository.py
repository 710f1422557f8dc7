"""Conformance suite for :class:`~botmox_core.ports.DataBackend` implementations.

Subclass :class:`RepositoryConformance` in a test module and provide the ``backend`` fixture::

    import pytest
    from botmox_core.testing import RepositoryConformance

    class TestMyBackend(RepositoryConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            backend = MyBackend(tmp_path / "db")   # fresh and empty for every test
            yield backend
            backend.close()

Optionally provide ``second_backend`` — another instance on the *same* store (a second
connection pool, client or process-like handle) — to let the suite check committed data and
lost-update protection across instances, not only through the instance that wrote.

The suite only uses the public ports: each test writes in one unit of work, commits, and reads
back in a new unit, so it never relies on a unit surviving an error (after a repository raises,
the test leaves that unit). Every test works on its own random tenant ids, so stray data in the
store does not break it. Capability flags (class attributes) turn off what a backend cannot do;
the affected tests skip with the reason.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, ClassVar, TypeVar

import attrs
import pytest

from botmox_core.errors import BadRequestError, BotmoxError, DuplicateError, LeaseInactiveError
from botmox_core.models import (
    ApiToken,
    Assignment,
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    Entitlement,
    Lease,
    LeaseStatus,
    Licence,
    LicenceStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Role,
    Vm,
    VmStatus,
)
from botmox_core.ports import DataBackend, HealthReport, UnitOfWork

__all__ = [
    "SCOPE",
    "T0",
    "RepositoryConformance",
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


class RepositoryConformance:
    """Pytest mixin: the behaviour every :class:`~botmox_core.ports.DataBackend` must show.

    Fixtures to provide:
        backend: yields a fresh, empty backend and closes it afterwards (required).
        second_backend: another instance on the same store as ``backend`` (optional; tests
            that need it skip without it).

    Capability flags (override as class attributes):
        supports_rollback: leaving a unit without ``commit()`` discards its writes.
        supports_multi_record_transactions: a unit's writes to several records commit
            together, and a unit reads its own uncommitted writes.
        rejects_invalid_release_values: ``releases.add`` refuses a sha256 that is not 64
            lower-case hex digits and a ``size_bytes`` below 1 with :class:`BadRequestError`.
        preserves_microseconds: timestamps keep microseconds (milliseconds are always
            required).
        concurrency_threads, modifies_per_thread: size of the lost-update test.
    """

    supports_rollback: ClassVar[bool] = True
    supports_multi_record_transactions: ClassVar[bool] = True
    rejects_invalid_release_values: ClassVar[bool] = True
    preserves_microseconds: ClassVar[bool] = True
    concurrency_threads: ClassVar[int] = 4
    modifies_per_thread: ClassVar[int] = 10

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def backend(self) -> Iterator[DataBackend]:
        """Override: yield a fresh, empty backend and close it afterwards."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `backend` fixture yielding a fresh, empty "
            "DataBackend, for example:\n\n"
            "    @pytest.fixture\n"
            "    def backend(self, tmp_path):\n"
            "        backend = MyBackend(tmp_path / 'db')\n"
            "        yield backend\n"
            "        backend.close()\n"
        )

    @pytest.fixture
    def second_backend(self, backend: DataBackend) -> Iterator[DataBackend]:
        """Override (optional): yield another instance on the same store as ``backend``."""
        pytest.skip(
            f"{type(self).__name__} has no `second_backend` fixture (a second instance on the "
            "same store), so cross-instance checks are skipped"
        )

    @pytest.fixture
    def tenant(self) -> str:
        return _uid("tenant_a")

    @pytest.fixture
    def other_tenant(self) -> str:
        return _uid("tenant_b")

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def committed(backend: DataBackend, action: Callable[[UnitOfWork], T]) -> T:
        """Run ``action`` in a new unit of work and commit it."""
        with backend.unit_of_work() as uow:
            result = action(uow)
            uow.commit()
        return result

    @staticmethod
    def read(backend: DataBackend, action: Callable[[UnitOfWork], T]) -> T:
        """Run ``action`` in a new unit of work that is left without committing."""
        with backend.unit_of_work() as uow:
            return action(uow)

    @staticmethod
    def append_each(
        backend: DataBackend, entries: list[DownloadAuditEntry]
    ) -> list[DownloadAuditEntry]:
        """Append each entry in its own committed unit, in order; the stored entries."""
        stored = []
        for entry in entries:
            with backend.unit_of_work() as uow:
                stored.append(uow.audit.append(entry))
                uow.commit()
        return stored

    def _require(self, flag: str, reason: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False: {reason}")

    # -- backend ------------------------------------------------------------------------------

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

    # -- API tokens --------------------------------------------------------------------------

    def test_token_round_trip(self, backend: DataBackend, tenant: str) -> None:
        full = make_token(tenant, revoked_at=_at(5))
        minimal = ApiToken(
            id=_uid("tok"), tenant_id=tenant, role=Role.API, token_hash=SHA_A, created_at=T0
        )
        with backend.unit_of_work() as uow:
            uow.tokens.add(full)
            uow.tokens.add(minimal)
            uow.commit()
        with backend.unit_of_work() as uow:
            for token in (full, minimal):
                got = uow.tokens.get_by_hash(token.token_hash)
                _check_equal(got, token, "tokens.get_by_hash")
                _check_utc(got, "token")

    def test_token_roles_round_trip(self, backend: DataBackend, tenant: str) -> None:
        tokens = [make_token(tenant, role=role) for role in Role]
        with backend.unit_of_work() as uow:
            for token in tokens:
                uow.tokens.add(token)
            uow.commit()
        with backend.unit_of_work() as uow:
            for token in tokens:
                got = uow.tokens.get_by_hash(token.token_hash)
                _check_equal(got, token, f"token with role {token.role}")

    def test_token_unknown_hash_is_none(self, backend: DataBackend) -> None:
        _check_equal(self.read(backend, lambda uow: uow.tokens.get_by_hash(SHA_A)), None, "get")

    def test_token_duplicate_id_is_refused(self, backend: DataBackend, tenant: str) -> None:
        original = make_token(tenant)
        self.committed(backend, lambda uow: uow.tokens.add(original))
        clash = make_token(tenant, id=original.id, label="other")
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.tokens.add(clash))
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(original.token_hash))
        _check_equal(got, original, "original token after a refused duplicate")
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(clash.token_hash))
        _check_equal(got, None, "refused token")

    def test_token_duplicate_hash_is_refused(self, backend: DataBackend, tenant: str) -> None:
        original = make_token(tenant)
        self.committed(backend, lambda uow: uow.tokens.add(original))
        clash = make_token(tenant, token_hash=original.token_hash, label="other")
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.tokens.add(clash))
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(original.token_hash))
        _check_equal(got, original, "original token after a refused duplicate")

    def test_token_revoke(self, backend: DataBackend, tenant: str) -> None:
        token = make_token(tenant)
        self.committed(backend, lambda uow: uow.tokens.add(token))
        revoked = self.committed(backend, lambda uow: uow.tokens.revoke(tenant, token.id, _at(9)))
        _check_equal(revoked, True, "revoke of an existing token")
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(token.token_hash))
        _check_equal(got, attrs.evolve(token, revoked_at=_at(9)), "revoked token")

    def test_token_revoke_unknown_is_false(self, backend: DataBackend, tenant: str) -> None:
        revoked = self.committed(backend, lambda uow: uow.tokens.revoke(tenant, "tok_nope", T0))
        _check_equal(revoked, False, "revoke of an unknown token")

    def test_token_revoke_is_tenant_scoped(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        token = make_token(tenant)
        self.committed(backend, lambda uow: uow.tokens.add(token))
        revoked = self.committed(
            backend, lambda uow: uow.tokens.revoke(other_tenant, token.id, _at(9))
        )
        _check_equal(revoked, False, "revoke through another tenant")
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(token.token_hash))
        _check_equal(got, token, "token after another tenant tried to revoke it")

    # -- VMs ---------------------------------------------------------------------------------

    def test_vm_round_trip(self, backend: DataBackend, tenant: str) -> None:
        full = make_vm(tenant)
        minimal = Vm(
            tenant_id=tenant,
            vm_uuid=_uid("vm").lower(),
            user_id="user-2",
            status=VmStatus.PAUSED,
            created_at=T0,
            updated_at=T0,
        )
        for vm in (full, minimal):
            with backend.unit_of_work() as uow:
                _check_equal(uow.vms.upsert(vm), vm, "vms.upsert result")
                uow.commit()
            with backend.unit_of_work() as uow:
                got = uow.vms.get(tenant, vm.vm_uuid)
                _check_equal(got, vm, "vms.get")
                _check_utc(got, "vm")

    def test_vm_statuses_round_trip(self, backend: DataBackend, tenant: str) -> None:
        vms = [make_vm(tenant, status=status) for status in VmStatus]
        with backend.unit_of_work() as uow:
            for vm in vms:
                uow.vms.upsert(vm)
            uow.commit()
        with backend.unit_of_work() as uow:
            for vm in vms:
                _check_equal(uow.vms.get(tenant, vm.vm_uuid), vm, f"vm with status {vm.status}")

    def test_vm_upsert_replaces_but_keeps_created_at(
        self, backend: DataBackend, tenant: str
    ) -> None:
        first = make_vm(tenant)
        self.committed(backend, lambda uow: uow.vms.upsert(first))
        second = attrs.evolve(
            first,
            user_id="user-9",
            status=VmStatus.REVOKED,
            vm_name=None,
            project_id="project-b",
            metadata={"replaced": True},
            created_at=_at(500),
            updated_at=_at(501),
        )
        expected = attrs.evolve(second, created_at=first.created_at)
        stored = self.committed(backend, lambda uow: uow.vms.upsert(second))
        _check_equal(stored, expected, "vms.upsert of an existing VM")
        got = self.read(backend, lambda uow: uow.vms.get(tenant, first.vm_uuid))
        _check_equal(got, expected, "VM after a second upsert")

    def test_vm_missing_is_none(self, backend: DataBackend, tenant: str) -> None:
        _check_equal(self.read(backend, lambda uow: uow.vms.get(tenant, "vm-none")), None, "get")

    def test_vm_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        vm = make_vm(tenant)
        self.committed(backend, lambda uow: uow.vms.upsert(vm))
        got = self.read(backend, lambda uow: uow.vms.get(other_tenant, vm.vm_uuid))
        _check_equal(got, None, "another tenant's VM")
        theirs = attrs.evolve(vm, tenant_id=other_tenant, user_id="user-x", metadata={})
        _check_equal(self.committed(backend, lambda uow: uow.vms.upsert(theirs)), theirs, "upsert")
        _check_equal(self.read(backend, lambda uow: uow.vms.get(tenant, vm.vm_uuid)), vm, "mine")
        got = self.read(backend, lambda uow: uow.vms.get(other_tenant, vm.vm_uuid))
        _check_equal(got, theirs, "the other tenant's VM with the same vm_uuid")

    # -- licences and entitlements -----------------------------------------------------------

    def test_licence_round_trip_and_replace(self, backend: DataBackend, tenant: str) -> None:
        for licence in (
            Licence(tenant, LicenceStatus.ACTIVE, updated_at=T0, expires_at=_at(86400)),
            Licence(tenant, LicenceStatus.SUSPENDED, updated_at=_at(1), expires_at=None),
            Licence(tenant, LicenceStatus.INACTIVE, updated_at=_at(2), expires_at=_at(3)),
        ):
            with backend.unit_of_work() as uow:
                uow.licences.put_licence(licence)
                uow.commit()
            with backend.unit_of_work() as uow:
                got = uow.licences.get_licence(tenant)
            _check_equal(got, licence, "licences.get_licence after put_licence")
            _check_utc(got, "licence")

    def test_licence_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        licence = Licence(tenant, LicenceStatus.ACTIVE, updated_at=T0)
        self.committed(backend, lambda uow: uow.licences.put_licence(licence))
        got = self.read(backend, lambda uow: uow.licences.get_licence(other_tenant))
        _check_equal(got, None, "another tenant's licence")

    def test_entitlement_round_trip_and_replace(self, backend: DataBackend, tenant: str) -> None:
        for modules in (frozenset({"*"}), frozenset({"fishing", "mining"}), frozenset()):
            entitlement = Entitlement(tenant, "user-1", modules, updated_at=T0)
            with backend.unit_of_work() as uow:
                uow.licences.put_entitlement(entitlement)
                uow.commit()
            with backend.unit_of_work() as uow:
                got = uow.licences.get_entitlement(tenant, "user-1")
            _check_equal(got, entitlement, "licences.get_entitlement after put_entitlement")
            assert got is not None and isinstance(got.modules, frozenset)

    def test_entitlement_isolation_per_tenant_and_user(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        mine = Entitlement(tenant, "user-1", frozenset({"fishing"}), updated_at=T0)
        self.committed(backend, lambda uow: uow.licences.put_entitlement(mine))
        with backend.unit_of_work() as uow:
            for who, user in ((other_tenant, "user-1"), (tenant, "user-2")):
                got = uow.licences.get_entitlement(who, user)
                _check_equal(got, None, f"entitlement of ({who}, {user})")

    # -- leases --------------------------------------------------------------------------------

    def test_lease_round_trip(self, backend: DataBackend, tenant: str) -> None:
        full = make_lease(tenant, status=LeaseStatus.REVOKED, revoked_at=_at(70), revoke_reason="x")
        minimal = Lease(
            id=_uid("lease"),
            tenant_id=tenant,
            user_id="user-1",
            vm_uuid="vm-0002",
            module="mining",
            status=LeaseStatus.ACTIVE,
            token_hash=SHA_B,
            issued_at=T0,
            expires_at=_at(60),
        )
        with backend.unit_of_work() as uow:
            uow.leases.add(full)
            uow.leases.add(minimal)
            uow.commit()
        with backend.unit_of_work() as uow:
            for lease in (full, minimal):
                got = uow.leases.get(tenant, lease.id)
                _check_equal(got, lease, "leases.get")
                _check_utc(got, "lease")

    def test_lease_duplicate_id_is_refused(self, backend: DataBackend, tenant: str) -> None:
        original = make_lease(tenant)
        self.committed(backend, lambda uow: uow.leases.add(original))
        clash = make_lease(tenant, id=original.id, module="other", token_hash=SHA_B)
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.leases.add(clash))
        got = self.read(backend, lambda uow: uow.leases.get(tenant, original.id))
        _check_equal(got, original, "original lease after a refused duplicate")

    def test_lease_missing_is_none(self, backend: DataBackend, tenant: str) -> None:
        calls: list[Lease] = []

        def change(lease: Lease) -> Lease:
            calls.append(lease)
            return lease

        _check_equal(self.read(backend, lambda uow: uow.leases.get(tenant, "lease_x")), None, "get")
        got = self.committed(backend, lambda uow: uow.leases.modify(tenant, "lease_x", change))
        _check_equal(got, None, "modify of a missing lease")
        _check_equal(calls, [], "change calls for a missing lease")

    def test_lease_modify_writes_and_returns_new_value(
        self, backend: DataBackend, tenant: str
    ) -> None:
        lease = make_lease(tenant, previous_token_hash=None, last_heartbeat_at=None)
        self.committed(backend, lambda uow: uow.leases.add(lease))
        expected = attrs.evolve(
            lease,
            token_hash=SHA_B,
            previous_token_hash=lease.token_hash,
            expires_at=_at(600),
            last_heartbeat_at=_at(300),
        )
        got = self.committed(
            backend,
            lambda uow: uow.leases.modify(
                tenant,
                lease.id,
                lambda cur: attrs.evolve(
                    cur,
                    token_hash=SHA_B,
                    previous_token_hash=cur.token_hash,
                    expires_at=_at(600),
                    last_heartbeat_at=_at(300),
                ),
            ),
        )
        _check_equal(got, expected, "modify result")
        _check_equal(self.read(backend, lambda uow: uow.leases.get(tenant, lease.id)), expected, "")

    def test_lease_modify_sees_latest_committed_state(
        self, backend: DataBackend, tenant: str
    ) -> None:
        lease = make_lease(tenant, revoke_reason=None)
        self.committed(backend, lambda uow: uow.leases.add(lease))
        seen: list[str | None] = []

        def append(tag: str) -> Callable[[Lease], Lease]:
            def change(cur: Lease) -> Lease:
                seen.append(cur.revoke_reason)
                return attrs.evolve(cur, revoke_reason=(cur.revoke_reason or "") + tag)

            return change

        for tag in ("a", "b", "c"):
            with backend.unit_of_work() as uow:
                uow.leases.modify(tenant, lease.id, append(tag))
                uow.commit()
        _check_equal(seen[-3:], [None, "a", "ab"], "states seen by successive changes")
        got = self.read(backend, lambda uow: uow.leases.get(tenant, lease.id))
        _check_equal(got and got.revoke_reason, "abc", "revoke_reason after three changes")

    def test_lease_modify_abort_writes_nothing(self, backend: DataBackend, tenant: str) -> None:
        lease = make_lease(tenant)
        self.committed(backend, lambda uow: uow.leases.add(lease))

        def refuse(cur: Lease) -> Lease:
            raise LeaseInactiveError("lease is not active")

        with pytest.raises(LeaseInactiveError):
            self.committed(backend, lambda uow: uow.leases.modify(tenant, lease.id, refuse))
        _check_equal(self.read(backend, lambda uow: uow.leases.get(tenant, lease.id)), lease, "")

        # The change raising inside a unit that then commits must not write the change either.
        with backend.unit_of_work() as uow:
            with pytest.raises(LeaseInactiveError):
                uow.leases.modify(tenant, lease.id, refuse)
            uow.commit()
        got = self.read(backend, lambda uow: uow.leases.get(tenant, lease.id))
        _check_equal(got, lease, "lease after an aborted modify in a committed unit")

    def test_lease_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        lease = make_lease(tenant)
        self.committed(backend, lambda uow: uow.leases.add(lease))
        calls: list[Lease] = []

        def revoke(cur: Lease) -> Lease:
            calls.append(cur)
            return attrs.evolve(cur, status=LeaseStatus.REVOKED)

        got = self.read(backend, lambda uow: uow.leases.get(other_tenant, lease.id))
        _check_equal(got, None, "another tenant's lease")
        got = self.committed(backend, lambda uow: uow.leases.modify(other_tenant, lease.id, revoke))
        _check_equal(got, None, "modify of another tenant's lease")
        _check_equal(calls, [], "change calls for another tenant's lease")
        _check_equal(self.read(backend, lambda uow: uow.leases.get(tenant, lease.id)), lease, "")

    def test_lease_modify_loses_no_update_under_concurrency(
        self, backend: DataBackend, tenant: str
    ) -> None:
        self._hammer_lease(tenant, [backend])

    def test_lease_modify_loses_no_update_across_instances(
        self, backend: DataBackend, second_backend: DataBackend, tenant: str
    ) -> None:
        self._hammer_lease(tenant, [backend, second_backend])

    def _hammer_lease(self, tenant: str, backends: list[DataBackend]) -> None:
        lease = make_lease(tenant, revoke_reason="")
        self.committed(backends[0], lambda uow: uow.leases.add(lease))
        threads, per_thread = self.concurrency_threads, self.modifies_per_thread
        start = threading.Barrier(threads)

        def worker(number: int) -> None:
            backend = backends[number % len(backends)]
            start.wait(timeout=30)
            for step in range(per_thread):
                tag = f"[{number}.{step}]"

                def change(cur: Lease, tag: str = tag) -> Lease:
                    return attrs.evolve(
                        cur,
                        revoke_reason=(cur.revoke_reason or "") + tag,
                        expires_at=cur.expires_at + timedelta(seconds=1),
                    )

                with backend.unit_of_work() as uow:
                    assert uow.leases.modify(tenant, lease.id, change) is not None
                    uow.commit()

        with ThreadPoolExecutor(threads) as pool:
            for future in [pool.submit(worker, n) for n in range(threads)]:
                future.result()
        got = self.read(backends[0], lambda uow: uow.leases.get(tenant, lease.id))
        assert got is not None
        total = threads * per_thread
        _check_equal(got.expires_at, lease.expires_at + timedelta(seconds=total), "expires_at")
        tags = sorted((got.revoke_reason or "").strip("[]").split("]["))
        expected = sorted(f"{n}.{s}" for n in range(threads) for s in range(per_thread))
        _check_equal(tags, expected, "every concurrent change applied exactly once")

    # -- releases ------------------------------------------------------------------------------

    def test_release_round_trip(self, backend: DataBackend, tenant: str) -> None:
        for status in ReleaseStatus:
            release = make_release(tenant, status=status)
            with backend.unit_of_work() as uow:
                stored = uow.releases.add(release)
                uow.commit()
            assert isinstance(stored.id, int) and stored.id > 0, f"release id {stored.id!r}"
            _check_equal(stored, attrs.evolve(release, id=stored.id), "releases.add result")
            with backend.unit_of_work() as uow:
                got = uow.releases.get(tenant, stored.id)
            _check_equal(got, stored, "releases.get")
            _check_utc(got, "release")

    def test_release_ids_are_positive_distinct_and_ignore_given_id(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        added = []
        for owner in (tenant, tenant, other_tenant, tenant):
            with backend.unit_of_work() as uow:
                added.append(uow.releases.add(make_release(owner, id=7)))
                uow.commit()
        ids = [release.id for release in added]
        assert all(isinstance(i, int) and i > 0 for i in ids), f"release ids {ids}"
        _check_equal(len(set(ids)), len(ids), f"distinct release ids ({ids})")

    def test_release_find(self, backend: DataBackend, tenant: str) -> None:
        stored = self.committed(
            backend, lambda uow: uow.releases.add(make_release(tenant, version="2.0.0"))
        )
        got = self.read(backend, lambda uow: uow.releases.find(tenant, SCOPE, "2.0.0"))
        _check_equal(got, stored, "releases.find")
        for scope, version in (
            (SCOPE, "2.0.1"),
            (ReleaseScope("fishing", "windows", "beta"), "2.0.0"),
            (ReleaseScope("fishing", "linux", "stable"), "2.0.0"),
            (ReleaseScope("mining", "windows", "stable"), "2.0.0"),
        ):
            with backend.unit_of_work() as uow:
                _check_equal(uow.releases.find(tenant, scope, version), None, f"find({scope})")

    def test_release_missing_is_none(self, backend: DataBackend, tenant: str) -> None:
        _check_equal(self.read(backend, lambda uow: uow.releases.get(tenant, 987654)), None, "get")

    def test_release_list_newest_first_and_by_module(
        self, backend: DataBackend, tenant: str
    ) -> None:
        _check_equal(list(self.read(backend, lambda uow: uow.releases.list(tenant))), [], "empty")
        added = []
        for module in ("fishing", "mining", "fishing", "mining", "fishing"):
            with backend.unit_of_work() as uow:
                added.append(uow.releases.add(make_release(tenant, module=module)))
                uow.commit()
        newest_first = sorted(added, key=lambda r: r.id, reverse=True)
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant)))
        _check_equal(got, newest_first, "releases.list")
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant, module="fishing")))
        _check_equal(got, [r for r in newest_first if r.module == "fishing"], "list(fishing)")
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant, module="nothing")))
        _check_equal(got, [], "list of a module without releases")

    def test_release_duplicate_version_is_refused(self, backend: DataBackend, tenant: str) -> None:
        original = self.committed(
            backend, lambda uow: uow.releases.add(make_release(tenant, version="3.0.0"))
        )
        clash = make_release(tenant, version="3.0.0", sha256=SHA_A, size_bytes=5)
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.releases.add(clash))
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant)))
        _check_equal(got, [original], "releases after a refused duplicate version")

    def test_release_duplicate_object_key_is_refused(
        self, backend: DataBackend, tenant: str
    ) -> None:
        original = self.committed(backend, lambda uow: uow.releases.add(make_release(tenant)))
        clash = make_release(tenant, object_key=original.object_key, channel="beta")
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.releases.add(clash))
        got = list(self.read(backend, lambda uow: uow.releases.list(tenant)))
        _check_equal(got, [original], "releases after a refused duplicate object key")

    def test_release_uniqueness_is_per_tenant_and_scope(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        original = self.committed(
            backend, lambda uow: uow.releases.add(make_release(tenant, version="4.0.0"))
        )
        same_elsewhere = attrs.evolve(original, id=0, tenant_id=other_tenant)
        other_channel = make_release(tenant, version="4.0.0", channel="beta")
        for release in (same_elsewhere, other_channel):
            with backend.unit_of_work() as uow:
                stored = uow.releases.add(release)
                uow.commit()
            _check_equal(stored, attrs.evolve(release, id=stored.id), "allowed release")

    def test_release_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        stored = self.committed(
            backend, lambda uow: uow.releases.add(make_release(tenant, version="5.0.0"))
        )
        with backend.unit_of_work() as uow:
            _check_equal(uow.releases.get(other_tenant, stored.id), None, "get")
            _check_equal(uow.releases.find(other_tenant, SCOPE, "5.0.0"), None, "find")
            _check_equal(list(uow.releases.list(other_tenant)), [], "list")
            _check_equal(list(uow.releases.list(other_tenant, module="fishing")), [], "list")

    def test_release_invalid_values_are_refused(self, backend: DataBackend, tenant: str) -> None:
        self._require("rejects_invalid_release_values", "the backend does not check values")
        for bad in (
            {"sha256": SHA_A.upper()},
            {"sha256": SHA_A[:63]},
            {"sha256": "g" * 64},
            {"size_bytes": 0},
            {"size_bytes": -1},
        ):
            with pytest.raises(BadRequestError), backend.unit_of_work() as uow:
                uow.releases.add(make_release(tenant, **bad))
                uow.commit()
        _check_equal(list(self.read(backend, lambda uow: uow.releases.list(tenant))), [], "stored")

    def test_release_adds_concurrently_get_distinct_ids(
        self, backend: DataBackend, tenant: str
    ) -> None:
        threads, per_thread = self.concurrency_threads, 5
        start = threading.Barrier(threads)

        def worker(number: int) -> list[int]:
            start.wait(timeout=30)
            ids = []
            for step in range(per_thread):
                with backend.unit_of_work() as uow:
                    ids.append(
                        uow.releases.add(make_release(tenant, version=f"9.{number}.{step}")).id
                    )
                    uow.commit()
            return ids

        with ThreadPoolExecutor(threads) as pool:
            ids = [i for f in [pool.submit(worker, n) for n in range(threads)] for i in f.result()]
        assert all(i > 0 for i in ids), f"release ids {ids}"
        _check_equal(len(set(ids)), threads * per_thread, f"distinct ids ({sorted(ids)})")
        listed = {r.id for r in self.read(backend, lambda uow: uow.releases.list(tenant))}
        _check_equal(listed, set(ids), "listed release ids")

    # -- assignments ---------------------------------------------------------------------------

    def _two_releases(self, backend: DataBackend, tenant: str) -> tuple[Release, Release]:
        return self.committed(
            backend,
            lambda uow: (
                uow.releases.add(make_release(tenant)),
                uow.releases.add(make_release(tenant)),
            ),
        )

    def test_assignment_default_and_user_are_independent(
        self, backend: DataBackend, tenant: str
    ) -> None:
        first, second = self._two_releases(backend, tenant)
        default = make_assignment(tenant, SCOPE, first.id, T0, None)
        personal = make_assignment(tenant, SCOPE, second.id, _at(1), "user-1")
        with backend.unit_of_work() as uow:
            _check_equal(uow.assignments.put(default), default, "put(default)")
            _check_equal(uow.assignments.put(personal), personal, "put(user)")
            uow.commit()
        with backend.unit_of_work() as uow:
            _check_equal(uow.assignments.get(tenant, None, SCOPE), default, "get(default)")
            _check_equal(uow.assignments.get(tenant, "user-1", SCOPE), personal, "get(user-1)")
            _check_equal(uow.assignments.get(tenant, "user-2", SCOPE), None, "get(user-2)")
            _check_utc(uow.assignments.get(tenant, None, SCOPE), "assignment")

    def test_assignment_put_replaces_per_scope(self, backend: DataBackend, tenant: str) -> None:
        first, second = self._two_releases(backend, tenant)
        beta = ReleaseScope(SCOPE.module, SCOPE.platform, "beta")

        def assign(
            user: str | None, release: Release, scope: ReleaseScope, at: float
        ) -> Assignment:
            return make_assignment(tenant, scope, release.id, _at(at), user)

        with backend.unit_of_work() as uow:
            uow.assignments.put(assign(None, first, SCOPE, 0))
            uow.assignments.put(assign("user-1", first, SCOPE, 0))
            uow.commit()
        self.committed(backend, lambda uow: uow.assignments.put(assign("user-1", first, beta, 0)))
        # Replace the default: the user's assignment and the other scope keep theirs.
        self.committed(backend, lambda uow: uow.assignments.put(assign(None, second, SCOPE, 5)))
        with backend.unit_of_work() as uow:
            _check_equal(
                uow.assignments.get(tenant, None, SCOPE), assign(None, second, SCOPE, 5), ""
            )
            user = uow.assignments.get(tenant, "user-1", SCOPE)
            _check_equal(user, assign("user-1", first, SCOPE, 0), "user's after default replaced")
            other = uow.assignments.get(tenant, "user-1", beta)
            _check_equal(other, assign("user-1", first, beta, 0), "other scope")
        # Replace the user's: the default keeps its own.
        self.committed(backend, lambda uow: uow.assignments.put(assign("user-1", second, SCOPE, 9)))
        with backend.unit_of_work() as uow:
            user = uow.assignments.get(tenant, "user-1", SCOPE)
            _check_equal(user, assign("user-1", second, SCOPE, 9), "user's after replacement")
            default = uow.assignments.get(tenant, None, SCOPE)
            _check_equal(default, assign(None, second, SCOPE, 5), "default after user's replaced")
            _check_equal(uow.assignments.get(tenant, None, beta), None, "default of other scope")

    def test_assignment_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        release, _ = self._two_releases(backend, tenant)
        with backend.unit_of_work() as uow:
            uow.assignments.put(make_assignment(tenant, SCOPE, release.id, T0, None))
            uow.assignments.put(make_assignment(tenant, SCOPE, release.id, T0, "user-1"))
            uow.commit()
        with backend.unit_of_work() as uow:
            _check_equal(uow.assignments.get(other_tenant, None, SCOPE), None, "default")
            _check_equal(uow.assignments.get(other_tenant, "user-1", SCOPE), None, "user")

    # -- download audit ------------------------------------------------------------------------

    def test_audit_append_round_trip(self, backend: DataBackend, tenant: str) -> None:
        full = make_entry(tenant)
        minimal = DownloadAuditEntry(
            tenant_id=tenant,
            event=AuditEvent.RESOLVE_DENIED,
            result=AuditResult.DENIED,
            created_at=_at(1),
            reason_code="LEASE_EXPIRED",
        )
        stored = self.append_each(backend, [full, minimal])
        for entry, got in zip((full, minimal), stored, strict=True):
            assert isinstance(got.id, int) and got.id > 0, f"audit id {got.id!r}"
            _check_equal(got, attrs.evolve(entry, id=got.id), "audit.append result")
        listed = list(self.read(backend, lambda uow: uow.audit.list(tenant)))
        _check_equal(listed, stored[::-1], "audit.list")
        for entry in listed:
            _check_utc(entry, "audit entry")

    def test_audit_enums_round_trip(self, backend: DataBackend, tenant: str) -> None:
        entries = [
            make_entry(tenant, event=event, result=result, created_at=_at(i))
            for i, (event, result) in enumerate(zip(AuditEvent, AuditResult, strict=True))
        ]
        stored = self.append_each(backend, entries)
        _check_equal(list(self.read(backend, lambda uow: uow.audit.list(tenant))), stored[::-1], "")

    def test_audit_list_newest_first_limit_and_lease_filter(
        self, backend: DataBackend, tenant: str
    ) -> None:
        entries = [
            make_entry(tenant, lease_id="lease_a" if i % 2 == 0 else "lease_b", created_at=_at(i))
            for i in range(7)
        ]
        stored = self.append_each(backend, entries)
        ids = [entry.id for entry in stored]
        _check_equal(len(set(ids)), len(ids), f"distinct audit ids ({ids})")
        newest = stored[::-1]
        with backend.unit_of_work() as uow:
            _check_equal(list(uow.audit.list(tenant)), newest, "list()")
            _check_equal(list(uow.audit.list(tenant, limit=3)), newest[:3], "list(limit=3)")
            _check_equal(list(uow.audit.list(tenant, limit=100)), newest, "list(limit=100)")
            lease_a = [e for e in newest if e.lease_id == "lease_a"]
            _check_equal(list(uow.audit.list(tenant, lease_id="lease_a")), lease_a, "lease_a")
            got = list(uow.audit.list(tenant, lease_id="lease_a", limit=2))
            _check_equal(got, lease_a[:2], "list(lease_a, limit=2)")
            _check_equal(list(uow.audit.list(tenant, lease_id="lease_z")), [], "unknown lease")

    def test_audit_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        self.committed(backend, lambda uow: uow.audit.append(make_entry(tenant)))
        with backend.unit_of_work() as uow:
            _check_equal(list(uow.audit.list(other_tenant)), [], "another tenant's audit")
            got = list(uow.audit.list(other_tenant, lease_id="lease_1"))
            _check_equal(got, [], "another tenant's audit by lease")

    # -- timestamps ----------------------------------------------------------------------------

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

    # -- unit of work --------------------------------------------------------------------------

    def test_commit_is_visible_from_a_new_unit(self, backend: DataBackend, tenant: str) -> None:
        lease = make_lease(tenant)
        with backend.unit_of_work() as uow:
            uow.leases.add(lease)
            uow.commit()
        _check_equal(self.read(backend, lambda uow: uow.leases.get(tenant, lease.id)), lease, "")

    def test_commit_is_visible_from_a_second_instance(
        self, backend: DataBackend, second_backend: DataBackend, tenant: str
    ) -> None:
        lease = make_lease(tenant)
        self.committed(backend, lambda uow: uow.leases.add(lease))
        got = self.read(second_backend, lambda uow: uow.leases.get(tenant, lease.id))
        _check_equal(got, lease, "lease read through a second instance")
        release = self.committed(second_backend, lambda uow: uow.releases.add(make_release(tenant)))
        got_release = self.read(backend, lambda uow: uow.releases.get(tenant, release.id))
        _check_equal(got_release, release, "release written through the second instance")

    def _write_one_of_each(self, uow: UnitOfWork, tenant: str) -> dict[str, Any]:
        vm = make_vm(tenant)
        lease = make_lease(tenant)
        uow.vms.upsert(vm)
        uow.leases.add(lease)
        uow.licences.put_licence(Licence(tenant, LicenceStatus.ACTIVE, updated_at=T0))
        release = uow.releases.add(make_release(tenant))
        uow.audit.append(make_entry(tenant))
        return {"vm": vm, "lease": lease, "release": release}

    def _assert_nothing_stored(
        self, backend: DataBackend, tenant: str, what: dict[str, Any]
    ) -> None:
        with backend.unit_of_work() as uow:
            _check_equal(uow.vms.get(tenant, what["vm"].vm_uuid), None, "VM")
            _check_equal(uow.leases.get(tenant, what["lease"].id), None, "lease")
            _check_equal(uow.licences.get_licence(tenant), None, "licence")
            _check_equal(list(uow.releases.list(tenant)), [], "releases")
            _check_equal(list(uow.audit.list(tenant)), [], "audit entries")

    def test_exit_without_commit_rolls_back(self, backend: DataBackend, tenant: str) -> None:
        self._require("supports_rollback", "writes are not held back until commit")
        with backend.unit_of_work() as uow:
            written = self._write_one_of_each(uow, tenant)
        self._assert_nothing_stored(backend, tenant, written)

    def test_exit_by_exception_rolls_back_and_propagates(
        self, backend: DataBackend, tenant: str
    ) -> None:
        self._require("supports_rollback", "writes are not held back until commit")

        class Boom(Exception):
            pass

        written: dict[str, Any] = {}
        with pytest.raises(Boom), backend.unit_of_work() as uow:
            written.update(self._write_one_of_each(uow, tenant))
            raise Boom
        self._assert_nothing_stored(backend, tenant, written)

    def test_explicit_rollback_discards(self, backend: DataBackend, tenant: str) -> None:
        self._require("supports_rollback", "writes are not held back until commit")
        with backend.unit_of_work() as uow:
            written = self._write_one_of_each(uow, tenant)
            uow.rollback()
            uow.commit()
        self._assert_nothing_stored(backend, tenant, written)

    def test_unit_continues_after_commit(self, backend: DataBackend, tenant: str) -> None:
        self._require("supports_rollback", "writes are not held back until commit")
        kept, dropped = make_lease(tenant), make_lease(tenant)
        with backend.unit_of_work() as uow:
            uow.leases.add(kept)
            uow.commit()
            uow.leases.add(dropped)
        with backend.unit_of_work() as uow:
            _check_equal(uow.leases.get(tenant, kept.id), kept, "lease committed first")
            _check_equal(uow.leases.get(tenant, dropped.id), None, "lease written after commit")

    def test_several_records_commit_together(self, backend: DataBackend, tenant: str) -> None:
        self._require("supports_multi_record_transactions", "units are not atomic")
        with backend.unit_of_work() as uow:
            written = self._write_one_of_each(uow, tenant)
            uow.commit()
        with backend.unit_of_work() as uow:
            _check_equal(uow.vms.get(tenant, written["vm"].vm_uuid), written["vm"], "VM")
            _check_equal(uow.leases.get(tenant, written["lease"].id), written["lease"], "lease")
            _check_equal(list(uow.releases.list(tenant)), [written["release"]], "releases")
            _check_equal(len(uow.audit.list(tenant)), 1, "audit entries")

    def test_unit_reads_its_own_writes(self, backend: DataBackend, tenant: str) -> None:
        self._require("supports_multi_record_transactions", "units do not read their own writes")
        with backend.unit_of_work() as uow:
            written = self._write_one_of_each(uow, tenant)
            _check_equal(uow.vms.get(tenant, written["vm"].vm_uuid), written["vm"], "VM")
            _check_equal(uow.leases.get(tenant, written["lease"].id), written["lease"], "lease")
            release = written["release"]
            _check_equal(uow.releases.get(tenant, release.id), release, "release")
            _check_equal(uow.releases.find(tenant, release.scope, release.version), release, "")

    def test_failed_write_leaves_other_units_working(
        self, backend: DataBackend, tenant: str
    ) -> None:
        lease = make_lease(tenant)
        self.committed(backend, lambda uow: uow.leases.add(lease))
        with pytest.raises(BotmoxError):
            self.committed(backend, lambda uow: uow.leases.add(lease))
        other = make_lease(tenant)
        self.committed(backend, lambda uow: uow.leases.add(other))
        _check_equal(self.read(backend, lambda uow: uow.leases.get(tenant, other.id)), other, "")
