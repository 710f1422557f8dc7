"""Repository conformance: VMs."""

from __future__ import annotations

import attrs

from botmox_core.models import (
    Vm,
    VmStatus,
)
from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    T0,
    _at,
    _check_equal,
    _check_utc,
    _uid,
    make_vm,
)

__all__ = ["VmConformance"]


class VmConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: VMs."""

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
