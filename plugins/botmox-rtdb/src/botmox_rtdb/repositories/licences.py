"""Licences and entitlements on RTDB: ``tenants/{t}/licenses/current`` and
``tenants/{t}/entitlements/{user_id}``."""

from __future__ import annotations

from collections.abc import Sequence

from botmox_core.models import Entitlement, Licence
from botmox_rtdb import layout
from botmox_rtdb.layout import checked_key, tenant_path
from botmox_rtdb.records import entitlement_from_record, from_record, to_record
from botmox_rtdb.repositories._support import _page, _tenant_children
from botmox_rtdb.write_buffer import WriteBuffer

__all__ = ["RtdbLicenceRepository"]


class RtdbLicenceRepository:
    """The licence at ``tenants/{t}/licenses/current``; entitlements at
    ``tenants/{t}/entitlements/{user_id}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def put_licence(self, licence: Licence) -> None:
        """Stage the tenant's licence."""
        path = tenant_path(licence.tenant_id, layout.LICENCES, layout.CURRENT_LICENCE)
        self._buffer.stage_write(path, to_record(licence, path))

    def get_licence(self, tenant_id: str) -> Licence | None:
        """The tenant's licence, or None."""
        record = self._buffer.read(tenant_path(tenant_id, layout.LICENCES, layout.CURRENT_LICENCE))
        return None if record is None else from_record(record, Licence, tenant_id=tenant_id)

    def put_entitlement(self, entitlement: Entitlement) -> None:
        """Stage a user's entitlement (module names must be valid keys)."""
        path = tenant_path(
            entitlement.tenant_id, layout.ENTITLEMENTS, checked_key(entitlement.user_id, "user_id")
        )
        self._buffer.stage_write(path, to_record(entitlement, path))

    def get_entitlement(self, tenant_id: str, user_id: str) -> Entitlement | None:
        """The user's entitlement, or None."""
        record = self._buffer.read(
            tenant_path(tenant_id, layout.ENTITLEMENTS, checked_key(user_id, "user_id"))
        )
        if record is None:
            return None
        return entitlement_from_record(record, tenant_id, user_id)

    def scan_entitlements(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Entitlement]:
        """The tenant's entitlements after the user id ``after``, by user id (read whole)."""
        children = _tenant_children(self._buffer, tenant_path(tenant_id, layout.ENTITLEMENTS))
        return _page(
            (
                (key, entitlement_from_record(record, tenant_id, key))
                for key, record in children.items()
            ),
            after,
            limit,
        )
