"""Repository conformance: assignments."""

from __future__ import annotations

from botmox_core.models import (
    Assignment,
    Release,
    ReleaseScope,
)
from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    SCOPE,
    T0,
    _at,
    _check_equal,
    _check_utc,
    make_assignment,
    make_release,
)

__all__ = ["AssignmentConformance"]


class AssignmentConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: assignments."""

    def _two_releases(self, backend: DataBackend, tenant: str) -> tuple[Release, Release]:
        return self.committed(
            backend,
            lambda uow: (
                uow.releases.add(make_release(tenant)),
                uow.releases.add(make_release(tenant)),
            ),
        )

    def test_assignment_default_and_user_are_independent(
        self, backend: DataBackend, tenant: str
    ) -> None:
        first, second = self._two_releases(backend, tenant)
        default = make_assignment(tenant, SCOPE, first.id, T0, None)
        personal = make_assignment(tenant, SCOPE, second.id, _at(1), "user-1")
        with backend.unit_of_work() as uow:
            _check_equal(uow.assignments.put(default), default, "put(default)")
            _check_equal(uow.assignments.put(personal), personal, "put(user)")
            uow.commit()
        with backend.unit_of_work() as uow:
            _check_equal(uow.assignments.get(tenant, None, SCOPE), default, "get(default)")
            _check_equal(uow.assignments.get(tenant, "user-1", SCOPE), personal, "get(user-1)")
            _check_equal(uow.assignments.get(tenant, "user-2", SCOPE), None, "get(user-2)")
            _check_utc(uow.assignments.get(tenant, None, SCOPE), "assignment")

    def test_assignment_put_replaces_per_scope(self, backend: DataBackend, tenant: str) -> None:
        first, second = self._two_releases(backend, tenant)
        beta = ReleaseScope(SCOPE.module, SCOPE.platform, "beta")

        def assign(
            user: str | None, release: Release, scope: ReleaseScope, at: float
        ) -> Assignment:
            return make_assignment(tenant, scope, release.id, _at(at), user)

        with backend.unit_of_work() as uow:
            uow.assignments.put(assign(None, first, SCOPE, 0))
            uow.assignments.put(assign("user-1", first, SCOPE, 0))
            uow.commit()
        self.committed(backend, lambda uow: uow.assignments.put(assign("user-1", first, beta, 0)))
        # Replace the default: the user's assignment and the other scope keep theirs.
        self.committed(backend, lambda uow: uow.assignments.put(assign(None, second, SCOPE, 5)))
        with backend.unit_of_work() as uow:
            _check_equal(
                uow.assignments.get(tenant, None, SCOPE), assign(None, second, SCOPE, 5), ""
            )
            user = uow.assignments.get(tenant, "user-1", SCOPE)
            _check_equal(user, assign("user-1", first, SCOPE, 0), "user's after default replaced")
            other = uow.assignments.get(tenant, "user-1", beta)
            _check_equal(other, assign("user-1", first, beta, 0), "other scope")
        # Replace the user's: the default keeps its own.
        self.committed(backend, lambda uow: uow.assignments.put(assign("user-1", second, SCOPE, 9)))
        with backend.unit_of_work() as uow:
            user = uow.assignments.get(tenant, "user-1", SCOPE)
            _check_equal(user, assign("user-1", second, SCOPE, 9), "user's after replacement")
            default = uow.assignments.get(tenant, None, SCOPE)
            _check_equal(default, assign(None, second, SCOPE, 5), "default after user's replaced")
            _check_equal(uow.assignments.get(tenant, None, beta), None, "default of other scope")

    def test_assignment_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        release, _ = self._two_releases(backend, tenant)
        with backend.unit_of_work() as uow:
            uow.assignments.put(make_assignment(tenant, SCOPE, release.id, T0, None))
            uow.assignments.put(make_assignment(tenant, SCOPE, release.id, T0, "user-1"))
            uow.commit()
        with backend.unit_of_work() as uow:
            _check_equal(uow.assignments.get(other_tenant, None, SCOPE), None, "default")
            _check_equal(uow.assignments.get(other_tenant, "user-1", SCOPE), None, "user")
