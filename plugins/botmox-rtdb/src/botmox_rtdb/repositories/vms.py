"""VMs on RTDB: ``tenants/{t}/vm_registry/{vm_uuid}``."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from botmox_core.models import Vm
from botmox_rtdb import layout
from botmox_rtdb.layout import checked_key, tenant_path
from botmox_rtdb.records import from_record, to_record
from botmox_rtdb.repositories._support import _page, _tenant_children
from botmox_rtdb.write_buffer import WriteBuffer

__all__ = ["RtdbVmRepository"]


class RtdbVmRepository:
    """VMs at ``tenants/{t}/vm_registry/{vm_uuid}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def upsert(self, vm: Vm) -> Vm:
        """Stage the record, keeping ``created_at`` of an existing one."""
        path = tenant_path(vm.tenant_id, layout.VM_REGISTRY, checked_key(vm.vm_uuid, "vm_uuid"))
        checked_key(vm.user_id, "user_id")
        existing = self._buffer.read(path)
        if existing is not None:
            vm = attrs.evolve(vm, created_at=from_record(existing, Vm).created_at)
        self._buffer.stage_write(path, to_record(vm, path))
        return vm

    def get(self, tenant_id: str, vm_uuid: str) -> Vm | None:
        """The VM, or None."""
        record = self._buffer.read(
            tenant_path(tenant_id, layout.VM_REGISTRY, checked_key(vm_uuid, "vm_uuid"))
        )
        return None if record is None else from_record(record, Vm, tenant_id=tenant_id)

    def scan(self, tenant_id: str, *, after: str | None = None, limit: int = 500) -> Sequence[Vm]:
        """The tenant's VMs after ``after``, by ``vm_uuid`` (read whole)."""
        children = _tenant_children(self._buffer, tenant_path(tenant_id, layout.VM_REGISTRY))
        return _page(
            (
                (key, from_record(record, Vm, tenant_id=tenant_id, vm_uuid=key))
                for key, record in children.items()
            ),
            after,
            limit,
        )
