"""Execution leases on RTDB: ``tenants/{t}/execution_leases/{lease_id}``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from botmox_core.errors import DuplicateError
from botmox_core.models import Lease
from botmox_core.ports.modify import checked_change, modify_record
from botmox_rtdb import layout
from botmox_rtdb.layout import checked_key, tenant_path
from botmox_rtdb.records import from_record, to_record
from botmox_rtdb.repositories._support import _page, _tenant_children
from botmox_rtdb.transactions import UNCHANGED, run_transaction
from botmox_rtdb.write_buffer import WriteBuffer, create_if_absent

__all__ = ["RtdbLeaseRepository"]


class RtdbLeaseRepository:
    """Leases at ``tenants/{t}/execution_leases/{lease_id}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def _path(self, tenant_id: str, lease_id: str) -> str:
        return tenant_path(tenant_id, layout.LEASES, checked_key(lease_id, "lease_id"))

    def add(self, lease: Lease) -> None:
        """Stage a new lease; :class:`DuplicateError` now or, if raced, at commit."""
        path = self._path(lease.tenant_id, lease.id)
        for value, what in (
            (lease.user_id, "user_id"),
            (lease.vm_uuid, "vm_uuid"),
            (lease.module, "module"),
        ):
            checked_key(value, what)
        if self._buffer.read(path) is not None:
            raise DuplicateError(f"lease {lease.id!r} exists")
        self._buffer.stage_conditional(
            create_if_absent(
                path,
                to_record(lease, path),
                lambda: DuplicateError(f"lease {lease.id!r} exists"),
                "add lease",
            )
        )

    def get(self, tenant_id: str, lease_id: str) -> Lease | None:
        """The lease, or None."""
        record = self._buffer.read(self._path(tenant_id, lease_id))
        return None if record is None else from_record(record, Lease, tenant_id=tenant_id)

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Lease]:
        """The tenant's leases after ``after``, by id (read whole)."""
        children = _tenant_children(self._buffer, tenant_path(tenant_id, layout.LEASES))
        return _page(
            (
                (key, from_record(record, Lease, tenant_id=tenant_id))
                for key, record in children.items()
            ),
            after,
            limit,
        )

    def modify(
        self, tenant_id: str, lease_id: str, change: Callable[[Lease], Lease]
    ) -> Lease | None:
        """Compare-and-set ``change(current)`` on the lease now (retried on conflict), checked
        by :mod:`botmox_core.ports.modify` (an unchanged lease is not written)."""
        path = self._path(tenant_id, lease_id)
        pending = self._buffer.pending_conditional(path)
        if pending is not None:  # created in this unit, not yet committed

            def restage(changed: Lease) -> Lease:
                pending.pending_value = to_record(changed, path)
                return changed

            current = from_record(pending.pending_value, Lease, tenant_id=tenant_id)
            return modify_record(current, change, restage)
        result: list[Lease] = []

        def update(stored: Any) -> Any:
            result.clear()
            if stored is None:
                return UNCHANGED
            current = from_record(stored, Lease, tenant_id=tenant_id)
            changed = checked_change(current, change)
            result.append(changed)
            return UNCHANGED if changed == current else to_record(changed, path)

        run_transaction(self._buffer.ref(path), update, "modify lease")
        return result[0] if result else None
