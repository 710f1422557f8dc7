"""Repository conformance: leases, including ``modify`` and lost-update protection."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import attrs
import pytest

from botmox_core.errors import DuplicateError, LeaseInactiveError
from botmox_core.models import (
    Lease,
    LeaseStatus,
)
from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    SHA_B,
    T0,
    _at,
    _check_equal,
    _check_utc,
    _uid,
    make_lease,
)

__all__ = ["LeaseConformance"]


class LeaseConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: leases, including ``modify`` and lost-update protection."""

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
