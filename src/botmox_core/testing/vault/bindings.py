"""Vault conformance: secret bindings (``uow.bindings``: upsert on the four-part unique key,
filters, order, delete, tenant isolation)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import attrs

from botmox_core.ports.vault import VaultUnitOfWork
from botmox_core.testing.vault._base import B, VaultConformanceBase
from botmox_core.testing.vault._support import T0, make_binding
from botmox_core.vault.models import ScopeType, SecretBinding

__all__ = ["SecretBindingConformance"]


class SecretBindingConformance(VaultConformanceBase[B]):
    """Pytest mixin: what ``uow.bindings`` must do."""

    def test_upsert_creates_and_reads_back(self, backend: B, tenant: str) -> None:
        binding = make_binding(tenant, self.secret_ref(backend, tenant))
        assert self.write_unit(backend, lambda u: u.bindings.upsert(binding)) == binding
        got = self.read_unit(
            backend,
            lambda u: u.bindings.get(
                tenant, ScopeType.VM_SETTINGS, "vmgenerator", "proxmox.password"
            ),
        )
        assert got == binding

    def test_upsert_repoints_and_keeps_id_and_created_at(self, backend: B, tenant: str) -> None:
        first = make_binding(tenant, self.secret_ref(backend, tenant))
        self.write_unit(backend, lambda u: u.bindings.upsert(first))
        later = T0 + timedelta(hours=1)
        again = make_binding(
            tenant, self.secret_ref(backend, tenant), created_at=later, updated_at=later
        )
        stored = self.write_unit(backend, lambda u: u.bindings.upsert(again))
        expected = attrs.evolve(first, secret_ref=again.secret_ref, updated_at=later)
        assert stored == expected
        assert list(self.read_unit(backend, lambda u: u.bindings.list(tenant))) == [expected]

    def test_the_unique_key_has_four_parts(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        ref = self.secret_ref(backend, tenant)
        self.secret_ref(backend, other_tenant, ref)
        variants = [
            make_binding(tenant, ref),
            make_binding(tenant, ref, scope_type=ScopeType.VM),
            make_binding(tenant, ref, scope_id="other"),
            make_binding(tenant, ref, field_name="ssh.password"),
            make_binding(other_tenant, ref),
        ]
        for binding in variants:
            self.write_unit(backend, _upserter(binding))
        assert len(self.read_unit(backend, lambda u: u.bindings.list(tenant))) == 4
        assert list(self.read_unit(backend, lambda u: u.bindings.list(other_tenant))) == [
            variants[-1]
        ]

    def test_list_filters_and_orders(self, backend: B, tenant: str) -> None:
        ref_a, ref_b = self.secret_ref(backend, tenant), self.secret_ref(backend, tenant)
        made = []
        for index, (scope_type, scope_id, field, ref) in enumerate(
            [
                (ScopeType.VM_SETTINGS, "vmgenerator", "proxmox.password", ref_a),
                (ScopeType.VM_SETTINGS, "vmgenerator", "ssh.password", ref_b),
                (ScopeType.BOT, "bot-1", "account.password", ref_a),
                (ScopeType.BOT, "bot-2", "account.password", ref_b),
                (ScopeType.TENANT, "t", "api_keys.ggg", ref_a),
            ]
        ):
            at = T0 + timedelta(seconds=index // 2)
            binding = make_binding(
                tenant,
                ref,
                scope_type=scope_type,
                scope_id=scope_id,
                field_name=field,
                created_at=at,
                updated_at=at,
            )
            self.write_unit(backend, _upserter(binding))
            made.append(binding)

        def order(items: list[SecretBinding]) -> list[SecretBinding]:
            by_id = sorted(items, key=lambda b: b.id)
            return sorted(by_id, key=lambda b: b.created_at, reverse=True)

        def listed(**filters: Any) -> list[SecretBinding]:
            return list(self.read_unit(backend, lambda u: u.bindings.list(tenant, **filters)))

        assert listed() == order(made)
        assert listed(scope_type=ScopeType.VM_SETTINGS) == order(made[:2])
        assert listed(scope_type=ScopeType.BOT, scope_id="bot-2") == [made[3]]
        assert listed(scope_id="vmgenerator") == order(made[:2])
        assert listed(secret_ref=ref_a) == order([made[0], made[2], made[4]])
        assert listed(limit=2) == order(made)[:2]
        assert listed(scope_type=ScopeType.AGENT) == []

    def test_delete(self, backend: B, tenant: str, other_tenant: str) -> None:
        binding = make_binding(tenant, self.secret_ref(backend, tenant))
        theirs = make_binding(
            other_tenant, self.secret_ref(backend, other_tenant, binding.secret_ref)
        )
        for item in (binding, theirs):
            self.write_unit(backend, _upserter(item))
        key = (ScopeType.VM_SETTINGS, "vmgenerator", "proxmox.password")
        assert self.write_unit(backend, lambda u: u.bindings.delete(tenant, *key)) is True
        assert self.write_unit(backend, lambda u: u.bindings.delete(tenant, *key)) is False
        assert self.read_unit(backend, lambda u: u.bindings.get(tenant, *key)) is None
        assert self.read_unit(backend, lambda u: u.bindings.get(other_tenant, *key)) == theirs

    def test_texts_round_trip(self, backend: B, tenant: str) -> None:
        binding = make_binding(
            tenant,
            self.secret_ref(backend, tenant),
            scope_id="vm ünï/#$[].x" + "y" * 180,
            field_name="services.tinyFmPassword ✓",
        )
        self.write_unit(backend, lambda u: u.bindings.upsert(binding))
        got = self.read_unit(
            backend,
            lambda u: u.bindings.get(
                tenant, binding.scope_type, binding.scope_id, binding.field_name
            ),
        )
        assert got == binding


def _upserter(binding: SecretBinding) -> Callable[[VaultUnitOfWork], SecretBinding]:
    return lambda uow: uow.bindings.upsert(binding)
