"""Repository conformance: licences and entitlements."""

from __future__ import annotations

from botmox_core.models import (
    Entitlement,
    Licence,
    LicenceStatus,
)
from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    T0,
    _at,
    _check_equal,
    _check_utc,
)

__all__ = ["LicenceConformance"]


class LicenceConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: licences and entitlements."""

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
