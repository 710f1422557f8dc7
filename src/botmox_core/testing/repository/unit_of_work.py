"""Repository conformance: the unit of work: commit, rollback, isolation."""

from __future__ import annotations

from typing import Any

import pytest

from botmox_core.errors import BotmoxError
from botmox_core.models import (
    Licence,
    LicenceStatus,
)
from botmox_core.ports import DataBackend, UnitOfWork
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    T0,
    _check_equal,
    make_entry,
    make_lease,
    make_release,
    make_vm,
)

__all__ = ["UnitOfWorkConformance"]


class UnitOfWorkConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: the unit of work: commit, rollback, isolation."""

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
