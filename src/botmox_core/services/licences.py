"""Tenant licences and per-user module entitlements (operator actions)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from botmox_core.errors import BadRequestError
from botmox_core.models import Entitlement, Licence, LicenceStatus
from botmox_core.ports import DataBackend
from botmox_core.services import validation as check
from botmox_core.services.principal import Clock, utcnow


def entitlement_modules(value: Iterable[str] | Mapping[str, Any]) -> frozenset[str]:
    """Modules from the contract's list form, or its map form (``{"module": true, "*": true}``)."""
    if isinstance(value, Mapping):
        names = [key for key, enabled in value.items() if enabled]
    elif isinstance(value, str | bytes):
        raise BadRequestError("modules: must be a list or a map")
    else:
        names = list(value)
    result = set()
    for module in names:
        result.add(module if module == "*" else check.name(module, "module"))
    if not result:
        raise BadRequestError("modules: at least one module is required")
    return frozenset(result)


class LicenceAdmin:
    """Sets licences and entitlements; used by the admin CLI and operator routes."""

    def __init__(self, backend: DataBackend, clock: Clock = utcnow) -> None:
        self._backend = backend
        self._clock = clock

    def set_licence(self, tenant_id: str, status: str, expires_at: datetime | None) -> Licence:
        """Create or replace the tenant's licence (``expires_at=None``: perpetual)."""
        licence = Licence(
            tenant_id=check.identifier(tenant_id, "tenant"),
            status=check.choice(status, "status", LicenceStatus),
            updated_at=self._clock(),
            expires_at=expires_at,
        )
        with self._backend.unit_of_work() as uow:
            uow.licences.put_licence(licence)
            uow.commit()
        return licence

    def set_entitlement(
        self, tenant_id: str, user_id: str, modules: Iterable[str] | Mapping[str, Any]
    ) -> Entitlement:
        """Create or replace which modules a user may lease (``*`` allows all)."""
        entitlement = Entitlement(
            tenant_id=check.identifier(tenant_id, "tenant"),
            user_id=check.identifier(user_id, "user"),
            modules=entitlement_modules(modules),
            updated_at=self._clock(),
        )
        with self._backend.unit_of_work() as uow:
            uow.licences.put_entitlement(entitlement)
            uow.commit()
        return entitlement

    def modules_without_releases(self, tenant_id: str, modules: Iterable[str]) -> list[str]:
        """The named modules (``*`` aside) for which the tenant has no release at all: an
        entitlement to them cannot lead to a download yet (often a misspelt module name)."""
        tenant = check.identifier(tenant_id, "tenant")
        with self._backend.unit_of_work() as uow:
            return sorted(
                module for module in set(modules) - {"*"} if not uow.releases.list(tenant, module)
            )
