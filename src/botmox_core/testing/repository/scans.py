"""Repository conformance: the per-tenant ordered scans (``scan``, ``scan_entitlements``) and
the id-keeping writes (``releases.put``, ``audit.import_``) a migration reads and writes with."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import attrs
import pytest

from botmox_core.errors import DuplicateError
from botmox_core.models import Entitlement, ReleaseStatus
from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    SCOPE,
    T0,
    _check_equal,
    make_assignment,
    make_entry,
    make_lease,
    make_release,
    make_token,
    make_vm,
)

__all__ = ["ScanConformance"]


def _pages(scan: Callable[..., Any], tenant: str, key: Callable[[Any], Any]) -> list[Any]:
    """Every record read two at a time, each page after the previous one's last key."""
    found: list[Any] = []
    after = None
    for _ in range(100):
        page = list(scan(tenant, after=after, limit=2))
        found += page
        if len(page) < 2:
            return found
        after = key(page[-1])
    raise AssertionError("scan did not end")


class ScanConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: ordered per-tenant scans and id-keeping writes."""

    def test_scans_read_one_tenant_in_key_order_page_by_page(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        users = ["u-b", "u-a", "ü-c", "u-Z", "u-10"]

        def seed(uow: Any) -> None:
            for owner in (other_tenant, tenant):
                for user in users:
                    uow.tokens.add(make_token(owner, id=f"tok-{owner}-{user}", user_id=user))
                    uow.vms.upsert(make_vm(owner, vm_uuid=f"vm-{owner}-{user}".lower()))
                    uow.leases.add(make_lease(owner, id=f"lease-{owner}-{user}"))
                    uow.licences.put_entitlement(Entitlement(owner, user, frozenset({"m"}), T0))

        self.committed(backend, seed)
        with backend.unit_of_work() as uow:
            scans: list[tuple[str, Callable[..., Any], Callable[[Any], Any]]] = [
                ("tokens", uow.tokens.scan, lambda r: r.id),
                ("vms", uow.vms.scan, lambda r: r.vm_uuid),
                ("leases", uow.leases.scan, lambda r: r.id),
                ("entitlements", uow.licences.scan_entitlements, lambda r: r.user_id),
            ]
            for name, scan, key in scans:
                found = _pages(scan, tenant, key)
                keys = [key(r) for r in found]
                _check_equal(len(keys), len(users), f"{name} scan count")
                _check_equal(keys, sorted(keys), f"{name} scan order (code points)")
                assert all(r.tenant_id == tenant for r in found), f"{name}: another tenant's"
                _check_equal(list(scan(tenant, limit=0)), [], f"{name} scan limit 0")
                _check_equal(list(scan("no-such-tenant", limit=10)), [], f"{name} other tenant")

    def test_assignment_scan_defaults_first_then_user_and_scope(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        def seed(uow: Any) -> list[int]:
            ids = []
            for owner in (other_tenant, tenant):
                release = uow.releases.add(make_release(owner))
                ids.append(release.id)
                for user in ("u-b", None, "u-a"):
                    for scope in (SCOPE, attrs.evolve(SCOPE, channel="beta")):
                        uow.assignments.put(make_assignment(owner, scope, release.id, T0, user))
            return ids

        self.committed(backend, seed)
        with backend.unit_of_work() as uow:
            found = _pages(
                uow.assignments.scan,
                tenant,
                lambda a: (a.user_id, a.module, a.platform, a.channel),
            )
        _check_equal(
            [(a.user_id, a.channel) for a in found],
            [
                (None, "beta"),
                (None, "stable"),
                ("u-a", "beta"),
                ("u-a", "stable"),
                ("u-b", "beta"),
                ("u-b", "stable"),
            ],
            "assignment scan order",
        )
        assert all(a.tenant_id == tenant for a in found), "another tenant's assignment"

    def test_release_put_keeps_the_id_and_add_allocates_above(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        first = self.committed(backend, lambda uow: uow.releases.add(make_release(tenant)))
        kept = attrs.evolve(make_release(tenant), id=first.id + 1000)
        stored = self.committed(backend, lambda uow: uow.releases.put(kept))
        _check_equal(stored, kept, "releases.put result")
        _check_equal(
            self.read(backend, lambda uow: uow.releases.get(tenant, kept.id)),
            kept,
            "release stored under its own id",
        )
        changed = attrs.evolve(
            kept, status=ReleaseStatus.DISABLED, object_key=kept.object_key + ".v2"
        )
        self.committed(backend, lambda uow: uow.releases.put(changed))
        _check_equal(
            self.read(backend, lambda uow: uow.releases.get(tenant, kept.id)),
            changed,
            "releases.put replaces",
        )
        later = self.committed(backend, lambda uow: uow.releases.add(make_release(tenant)))
        assert later.id > kept.id, f"add allocated {later.id}, not above the kept {kept.id}"
        # Backends whose release ids are unique across tenants refuse another tenant's id;
        # RTDB keys releases per tenant and may hold it in both. Either way the tenant's own
        # release is untouched.
        with contextlib.suppress(DuplicateError), backend.unit_of_work() as uow:
            uow.releases.put(attrs.evolve(make_release(other_tenant), id=kept.id))
            uow.commit()
        _check_equal(
            self.read(backend, lambda uow: uow.releases.get(tenant, kept.id)),
            changed,
            "a release after another tenant's put of its id",
        )
        with backend.unit_of_work() as uow:
            scanned = [r.id for r in uow.releases.scan(tenant, after=first.id, limit=10)]
        _check_equal(scanned, [kept.id, later.id], "release scan after an id")

    def test_audit_import_keeps_the_id_and_append_allocates_above(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        first = self.committed(backend, lambda uow: uow.audit.append(make_entry(tenant)))
        self.committed(backend, lambda uow: uow.audit.append(make_entry(other_tenant)))
        kept = attrs.evolve(make_entry(tenant), id=first.id + 1000)
        _check_equal(
            self.committed(backend, lambda uow: uow.audit.import_(kept)),
            kept,
            "audit.import_ result",
        )
        with pytest.raises(DuplicateError), backend.unit_of_work() as uow:
            uow.audit.import_(kept)
            uow.commit()
        later = self.committed(backend, lambda uow: uow.audit.append(make_entry(tenant)))
        assert later.id > kept.id, f"append allocated {later.id}, not above the kept {kept.id}"
        with backend.unit_of_work() as uow:
            found = _pages(uow.audit.scan, tenant, lambda e: e.id)
        _check_equal([e.id for e in found], [first.id, kept.id, later.id], "audit scan")
