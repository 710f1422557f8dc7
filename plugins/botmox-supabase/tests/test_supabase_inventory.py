"""The operator inventory (``botmox admin ... list|revoke``) and the command counts of
``/metrics`` on PostgreSQL: filters, order, tenant isolation, the two writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from botmox_supabase.backend import PostgresDataBackend

from botmox_core.models import (
    ApiToken,
    Assignment,
    Command,
    CommandStatus,
    Entitlement,
    Lease,
    LeaseStatus,
    Licence,
    LicenceStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Role,
    Vm,
    VmStatus,
)
from botmox_core.ports.inventory import inventory_of

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

T, OTHER = "tenant-a", "tenant-b"


def _fill(backend: PostgresDataBackend) -> int:
    with backend.unit_of_work() as uow:
        for n, (tenant, role, revoked) in enumerate(
            [
                (T, Role.ADMIN, False),
                (T, Role.API, False),
                (T, Role.API, True),
                (OTHER, Role.ADMIN, False),
            ]
        ):
            uow.tokens.add(
                ApiToken(
                    id=f"tok_{n}", tenant_id=tenant, role=role, token_hash=f"{n:064x}",
                    created_at=NOW + timedelta(seconds=n),
                    user_id="alice" if role is Role.API else None,
                    revoked_at=NOW if revoked else None,
                )
            )  # fmt: skip
        for n, (user, status) in enumerate([("alice", VmStatus.ACTIVE), ("bob", VmStatus.REVOKED)]):
            uow.vms.upsert(
                Vm(tenant_id=T, vm_uuid=f"vm-{user}-0001", user_id=user, status=status,
                   created_at=NOW + timedelta(seconds=n), updated_at=NOW)
            )  # fmt: skip
        uow.licences.put_licence(Licence(tenant_id=T, status=LicenceStatus.ACTIVE, updated_at=NOW))
        uow.licences.put_licence(
            Licence(tenant_id=OTHER, status=LicenceStatus.SUSPENDED, updated_at=NOW)
        )
        for user in ["alice", "bob"]:
            uow.licences.put_entitlement(
                Entitlement(tenant_id=T, user_id=user, modules=frozenset({"agent"}), updated_at=NOW)
            )
        for n, status in enumerate([LeaseStatus.ACTIVE, LeaseStatus.REVOKED]):
            uow.leases.add(
                Lease(id=f"lease_{n}", tenant_id=T, user_id="alice", vm_uuid="vm-alice-0001",
                      module="agent", status=status, token_hash=f"{n + 10:064x}",
                      issued_at=NOW + timedelta(seconds=n), expires_at=NOW + timedelta(hours=1))
            )  # fmt: skip
        release = uow.releases.add(
            Release(id=0, tenant_id=T, module="agent", platform="linux", channel="stable",
                    version="1.0.0", object_key="agent/1.0.0", sha256="a" * 64, size_bytes=10,
                    status=ReleaseStatus.ACTIVE, created_at=NOW)
        )  # fmt: skip
        for user in [None, "alice"]:
            uow.assignments.put(
                Assignment(tenant_id=T, module="agent", platform="linux", channel="stable",
                           release_id=release.id, assigned_at=NOW, user_id=user)
            )  # fmt: skip
        for n, status in enumerate(
            [CommandStatus.QUEUED, CommandStatus.QUEUED, CommandStatus.FAILED]
        ):
            uow.commands.add(
                Command(id=f"cmd_{n}", tenant_id=T if n else OTHER, agent_id="agt_1",
                        command_type="x.y", status=status, queued_at=NOW,
                        expires_at=NOW + timedelta(minutes=5), updated_at=NOW)
            )  # fmt: skip
        uow.commit()
    return release.id


def test_inventory_lists_filters_and_writes(pg_backend: PostgresDataBackend) -> None:
    release_id = _fill(pg_backend)
    scope = ReleaseScope(module="agent", platform="linux", channel="stable")
    with pg_backend.unit_of_work() as uow:
        inventory = inventory_of(uow)
        assert inventory is not None
        assert [t.id for t in inventory.tokens(T)] == ["tok_1", "tok_0"]
        assert [t.id for t in inventory.tokens(T, include_revoked=True)] == [
            "tok_2",
            "tok_1",
            "tok_0",
        ]
        assert [t.id for t in inventory.tokens(T, role="admin")] == ["tok_0"]
        assert [t.id for t in inventory.tokens(T, user_id="alice", limit=1)] == ["tok_1"]
        assert inventory.token(T, "tok_3") is None and inventory.token(OTHER, "tok_3") is not None
        assert [v.vm_uuid for v in inventory.vms(T)] == ["vm-bob-0001", "vm-alice-0001"]
        assert [v.vm_uuid for v in inventory.vms(T, status="active")] == ["vm-alice-0001"]
        assert [x.tenant_id for x in inventory.licences()] == [T, OTHER]
        assert [x.status for x in inventory.licences(OTHER)] == [LicenceStatus.SUSPENDED]
        assert [e.user_id for e in inventory.entitlements(T)] == ["alice", "bob"]
        assert [e.user_id for e in inventory.entitlements(T, user_id="bob")] == ["bob"]
        assert [x.id for x in inventory.leases(T)] == ["lease_1", "lease_0"]
        assert [x.id for x in inventory.leases(T, status="active", vm_uuid="vm-alice-0001")] == [
            "lease_0"
        ]
        assert inventory.leases(OTHER) == []
        assert sorted(a.user_id or "" for a in inventory.assignments(T)) == ["", "alice"]
        assert [a.user_id for a in inventory.assignments(T, defaults_only=True)] == [None]
        assert inventory.delete_assignment(T, "alice", scope)
        assert not inventory.delete_assignment(T, "alice", scope)
        assert not inventory.delete_assignment(OTHER, None, scope)
        changed = inventory.set_release_status(T, release_id, ReleaseStatus.DISABLED)
        assert changed is not None and changed.status is ReleaseStatus.DISABLED
        assert inventory.set_release_status(OTHER, release_id, ReleaseStatus.DISABLED) is None
        uow.commit()
    with pg_backend.unit_of_work() as uow:
        assert uow.assignments.get(T, "alice", scope) is None
        assert uow.assignments.get(T, None, scope) is not None
        stored = uow.releases.get(T, release_id)
        assert stored is not None and stored.status is ReleaseStatus.DISABLED
        assert dict(uow.commands.count_by_status()) == {
            CommandStatus.QUEUED: 2,
            CommandStatus.FAILED: 1,
        }
