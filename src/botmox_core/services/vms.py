"""VM registry: runners register their VM before asking for a lease."""

from __future__ import annotations

from typing import Any

import attrs

from botmox_core.errors import NotFoundError, VmOwnerMismatchError
from botmox_core.models import Vm, VmStatus
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
        """Create or update the VM record. A VM already registered to another user is refused
        with ``VM_OWNER_MISMATCH`` unless the caller is an operator (admin/infra)."""
        uuid = check.vm_uuid(vm_uuid)
        owner = principal.acting_user(check.optional_identifier(user_id, "user_id"))
        now = self._clock()
        vm = Vm(
            tenant_id=principal.tenant_id,
            vm_uuid=uuid,
            user_id=owner,
            status=check.choice(status, "status", VmStatus, VmStatus.ACTIVE),
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
                vm = attrs.evolve(vm, created_at=existing.created_at)
            stored = uow.vms.upsert(vm)
            uow.commit()
        return stored

    def resolve(self, principal: Principal, vm_uuid: Any) -> Vm:
        """The VM record, or ``NOT_FOUND``."""
        uuid = check.vm_uuid(vm_uuid)
        with self._backend.unit_of_work() as uow:
            vm = uow.vms.get(principal.tenant_id, uuid)
        if vm is None:
            raise NotFoundError("VM not found")
        return vm
