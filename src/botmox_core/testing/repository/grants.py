"""Repository conformance: the download grant (what resolve-download reads in one go)."""

from __future__ import annotations

import pytest

from botmox_core.errors import BadRequestError
from botmox_core.models import LeaseStatus
from botmox_core.ports import DataBackend
from botmox_core.ports.repositories import (
    DownloadGrant,
    read_download_grant,
    read_download_grant_in,
    read_unit_of_work,
)
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    SCOPE,
    T0,
    _check_equal,
    make_assignment,
    make_lease,
    make_release,
)

__all__ = ["DownloadGrantConformance"]

SHAPES = ("no-lease", "no-assignment", "default-only", "user-and-default", "user-only")


class DownloadGrantConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: :func:`~botmox_core.ports.repositories.read_download_grant` (the backend's
    own ``read_download_grant`` when it has one) reads what the repositories read one by one:
    the lease, the lease user's assignment for the scope else the tenant default, and that
    assignment's release -- never another tenant's."""

    def _composed(self, backend: DataBackend, tenant: str, lease_id: str) -> DownloadGrant:
        with read_unit_of_work(backend) as uow:
            return read_download_grant_in(uow, tenant, lease_id, SCOPE)

    @pytest.mark.parametrize("shape", SHAPES)
    def test_grant_reads_what_the_repositories_read(
        self, backend: DataBackend, tenant: str, other_tenant: str, shape: str
    ) -> None:
        lease = make_lease(tenant, module=SCOPE.module, status=LeaseStatus.ACTIVE)

        def setup(uow):  # type: ignore[no-untyped-def]
            if shape != "no-lease":
                uow.leases.add(lease)
            default = uow.releases.add(make_release(tenant))
            own = uow.releases.add(make_release(tenant))
            # another tenant's assignments for the same scope and user: never read
            theirs = uow.releases.add(make_release(other_tenant))
            uow.assignments.put(make_assignment(other_tenant, SCOPE, theirs.id, T0, None))
            uow.assignments.put(make_assignment(other_tenant, SCOPE, theirs.id, T0, "user-1"))
            if shape in ("default-only", "user-and-default"):
                uow.assignments.put(make_assignment(tenant, SCOPE, default.id, T0, None))
            if shape in ("user-and-default", "user-only"):
                uow.assignments.put(make_assignment(tenant, SCOPE, own.id, T0, lease.user_id))
            return default, own

        default, own = self.committed(backend, setup)
        grant = read_download_grant(backend, tenant, lease.id, SCOPE)
        _check_equal(grant, self._composed(backend, tenant, lease.id), "grant vs. composed reads")
        expected = {
            "no-lease": None,
            "no-assignment": None,
            "default-only": default.id,
            "user-and-default": own.id,
            "user-only": own.id,
        }[shape]
        _check_equal(grant.release.id if grant.release else None, expected, "granted release")
        if shape != "no-lease":
            _check_equal(grant.lease, lease, "granted lease")

    def test_grant_of_another_tenants_lease_is_empty(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        lease = make_lease(other_tenant, module=SCOPE.module)

        def setup(uow):  # type: ignore[no-untyped-def]
            uow.leases.add(lease)
            release = uow.releases.add(make_release(other_tenant))
            uow.assignments.put(make_assignment(other_tenant, SCOPE, release.id, T0, None))

        self.committed(backend, setup)
        _check_equal(
            read_download_grant(backend, tenant, lease.id, SCOPE),
            DownloadGrant(None),
            "another tenant's lease",
        )
        try:
            newline = read_download_grant(backend, tenant, lease.id + "\n", SCOPE)
        except BadRequestError:
            return  # refusing the malformed id is as good as matching nothing
        _check_equal(newline, DownloadGrant(None), "a lease id with a trailing newline")
