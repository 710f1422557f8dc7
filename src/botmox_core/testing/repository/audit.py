"""Repository conformance: the download audit."""

from __future__ import annotations

import attrs

from botmox_core.models import (
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
)
from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    _at,
    _check_equal,
    _check_utc,
    make_entry,
)

__all__ = ["AuditConformance"]


class AuditConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: the download audit."""

    def test_audit_append_round_trip(self, backend: DataBackend, tenant: str) -> None:
        full = make_entry(tenant)
        minimal = DownloadAuditEntry(
            tenant_id=tenant,
            event=AuditEvent.RESOLVE_DENIED,
            result=AuditResult.DENIED,
            created_at=_at(1),
            reason_code="LEASE_EXPIRED",
        )
        stored = self.append_each(backend, [full, minimal])
        for entry, got in zip((full, minimal), stored, strict=True):
            assert isinstance(got.id, int) and got.id > 0, f"audit id {got.id!r}"
            _check_equal(got, attrs.evolve(entry, id=got.id), "audit.append result")
        listed = list(self.read(backend, lambda uow: uow.audit.list(tenant)))
        _check_equal(listed, stored[::-1], "audit.list")
        for entry in listed:
            _check_utc(entry, "audit entry")

    def test_audit_enums_round_trip(self, backend: DataBackend, tenant: str) -> None:
        entries = [
            make_entry(tenant, event=event, result=result, created_at=_at(i))
            for i, (event, result) in enumerate(zip(AuditEvent, AuditResult, strict=True))
        ]
        stored = self.append_each(backend, entries)
        _check_equal(list(self.read(backend, lambda uow: uow.audit.list(tenant))), stored[::-1], "")

    def test_audit_list_newest_first_limit_and_lease_filter(
        self, backend: DataBackend, tenant: str
    ) -> None:
        entries = [
            make_entry(tenant, lease_id="lease_a" if i % 2 == 0 else "lease_b", created_at=_at(i))
            for i in range(7)
        ]
        stored = self.append_each(backend, entries)
        ids = [entry.id for entry in stored]
        _check_equal(len(set(ids)), len(ids), f"distinct audit ids ({ids})")
        newest = stored[::-1]
        with backend.unit_of_work() as uow:
            _check_equal(list(uow.audit.list(tenant)), newest, "list()")
            _check_equal(list(uow.audit.list(tenant, limit=3)), newest[:3], "list(limit=3)")
            _check_equal(list(uow.audit.list(tenant, limit=100)), newest, "list(limit=100)")
            lease_a = [e for e in newest if e.lease_id == "lease_a"]
            _check_equal(list(uow.audit.list(tenant, lease_id="lease_a")), lease_a, "lease_a")
            got = list(uow.audit.list(tenant, lease_id="lease_a", limit=2))
            _check_equal(got, lease_a[:2], "list(lease_a, limit=2)")
            _check_equal(list(uow.audit.list(tenant, lease_id="lease_z")), [], "unknown lease")

    def test_audit_tenant_isolation(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        self.committed(backend, lambda uow: uow.audit.append(make_entry(tenant)))
        with backend.unit_of_work() as uow:
            _check_equal(list(uow.audit.list(other_tenant)), [], "another tenant's audit")
            got = list(uow.audit.list(other_tenant, lease_id="lease_1"))
            _check_equal(got, [], "another tenant's audit by lease")
