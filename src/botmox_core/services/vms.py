"""VM registry: runners register their VM before asking for a lease."""

from __future__ import annotations

from typing import Any

import attrs

from botmox_core.errors import ForbiddenError, NotFoundError, VmOwnerMismatchError
from botmox_core.models import Role, Vm, VmStatus
from botmox_core.ports import DataBackend
from botmox_core.services import validation as check
from botmox_core.services.principal import Clock, Principal, utcnow


class VmRegistry:
    """Registers and resolves VMs of the caller's tenant."""

    def __init__(self, backend: DataBackend, clock: Clock = utcnow) -> None:
        self._backend = backend
        self._clock = clock

    def register(
        self,
        principal: Principal,
        *,
        vm_uuid: Any,
        user_id: Any = None,
        vm_name: Any = None,
        project_id: Any = None,
        status: Any = None,
        metadata: Any = None,
    ) -> Vm:
        """Create or update the VM record.

        Ownership: a caller bound to a user registers only that user's VMs (see
        :meth:`Principal.acting_user`); a VM already registered to another user is refused with
        ``VM_OWNER_MISMATCH`` unless the caller is an operator (admin/infra).

        Status: re-registering never changes a VM's status, so a runner cannot reactivate a
        paused or revoked VM: a ``status`` other than the stored one is ``FORBIDDEN`` (the same
        one is accepted, for clients that always send it). A new VM starts ``active``; only an
        operator may register it with another status. Operators change status with
        :meth:`set_status`.
        """
        uuid = check.vm_uuid(vm_uuid)
        owner = principal.acting_user(check.optional_identifier(user_id, "user_id"))
        wanted_status = None if status is None else check.choice(status, "status", VmStatus)
        now = self._clock()
        vm = Vm(
            tenant_id=principal.tenant_id,
            vm_uuid=uuid,
            user_id=owner,
            status=wanted_status or VmStatus.ACTIVE,
            created_at=now,
            updated_at=now,
            vm_name=check.optional_text(vm_name, "vm_name"),
            project_id=check.optional_text(project_id, "project_id"),
            metadata=check.metadata(metadata),
        )
        with self._backend.unit_of_work() as uow:
            existing = uow.vms.get(principal.tenant_id, uuid)
            if existing is not None:
                if existing.user_id != owner and not principal.is_operator:
                    raise VmOwnerMismatchError("the VM is registered to another user")
                if wanted_status is not None and wanted_status is not existing.status:
                    raise ForbiddenError(
                        "registering never changes a VM's status; use the status route"
                    )
                vm = attrs.evolve(vm, created_at=existing.created_at, status=existing.status)
            elif wanted_status not in (None, VmStatus.ACTIVE) and not principal.is_operator:
                raise ForbiddenError("only admin or infra may register a VM that is not active")
            stored = uow.vms.upsert(vm)
            uow.commit()
        return stored

    def set_status(self, principal: Principal, vm_uuid: Any, status: Any) -> Vm:
        """Change a VM's status (admin/infra only); ``NOT_FOUND`` for an unknown VM."""
        principal.require(Role.ADMIN, Role.INFRA)
        uuid = check.vm_uuid(vm_uuid)
        wanted = check.choice(status, "status", VmStatus)
        with self._backend.unit_of_work() as uow:
            existing = uow.vms.get(principal.tenant_id, uuid)
            if existing is None:
                raise NotFoundError("VM not found")
            stored = uow.vms.upsert(attrs.evolve(existing, status=wanted, updated_at=self._clock()))
            uow.commit()
        return stored

    def resolve(self, principal: Principal, vm_uuid: Any) -> Vm:
        """The VM record, or ``NOT_FOUND`` (also for another user's VM when the caller is bound
        to a user and is not an operator)."""
        uuid = check.vm_uuid(vm_uuid)
        with self._backend.unit_of_work() as uow:
            vm = uow.vms.get(principal.tenant_id, uuid)
        if vm is None or not self._may_see(principal, vm):
            raise NotFoundError("VM not found")
        return vm

    @staticmethod
    def _may_see(principal: Principal, vm: Vm) -> bool:
        return principal.is_operator or principal.user_id in (None, vm.user_id)
