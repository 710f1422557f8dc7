"""Vault conformance: secret records (``uow.secrets`` add, get, modify, scan; tenant isolation)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import timedelta

import attrs
import pytest

from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.ports.vault import VaultUnitOfWork
from botmox_core.testing.vault._base import B, VaultConformanceBase
from botmox_core.testing.vault._support import T0, _same_version, make_secret
from botmox_core.vault.models import Secret

__all__ = ["SecretRecordConformance"]


class SecretRecordConformance(VaultConformanceBase[B]):
    """Pytest mixin: a secret's record reads back equal, only for its tenant; duplicates are
    refused; ``modify`` replaces or aborts; ``scan`` pages in id order."""

    def test_a_secret_reads_back_equal(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        version = self.store(backend, secret)
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == secret
        _same_version(
            version, self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        )

    def test_unknown_and_other_tenant_ids_are_none(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        secret = make_secret(tenant)
        self.store(backend, secret)
        assert self.read_unit(backend, lambda u: u.secrets.get(other_tenant, secret.id)) is None
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, str(uuid.uuid4()))) is None
        assert (
            self.read_unit(backend, lambda u: u.secrets.get_version(other_tenant, secret.id, 1))
            is None
        )
        assert self.read_unit(backend, lambda u: u.secrets.versions(other_tenant, secret.id)) in (
            [],
            (),
        )
        assert (
            self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 2)) is None
        )

    def test_two_tenants_may_hold_the_same_id(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        mine = make_secret(tenant)
        theirs = make_secret(other_tenant, id=mine.id, label="theirs")
        self.store(backend, mine)
        self.store(backend, theirs)
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, mine.id)) == mine
        assert self.read_unit(backend, lambda u: u.secrets.get(other_tenant, mine.id)) == theirs

    def test_a_duplicate_id_is_refused(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        self.store(backend, secret)
        with pytest.raises(DuplicateError):
            self.write_unit(backend, lambda u: u.secrets.add(attrs.evolve(secret, label="y")))
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == secret

    def test_modify_replaces_and_missing_is_none(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        self.store(backend, secret)
        later = T0 + timedelta(minutes=5)
        rotated = attrs.evolve(
            secret,
            version=2,
            rotated_at=later,
            updated_at=later,
            alg="aes-256-gcm",
            key_id="k2",
            recipients=(),
        )
        result = self.write_unit(
            backend, lambda u: u.secrets.modify(tenant, secret.id, lambda _: rotated)
        )
        assert result == rotated
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == rotated
        assert (
            self.write_unit(
                backend, lambda u: u.secrets.modify(tenant, str(uuid.uuid4()), lambda s: s)
            )
            is None
        )

    def test_modify_keeps_identity_and_aborts_on_raise(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        secret = make_secret(tenant)
        self.store(backend, secret)

        def boom(_: Secret) -> Secret:
            raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            self.write_unit(backend, lambda u: u.secrets.modify(tenant, secret.id, boom))
        with pytest.raises(BadRequestError):
            self.write_unit(
                backend,
                lambda u: u.secrets.modify(
                    tenant, secret.id, lambda s: attrs.evolve(s, tenant_id=other_tenant)
                ),
            )
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == secret
        assert self.read_unit(backend, lambda u: u.secrets.get(other_tenant, secret.id)) is None

    def test_scan_pages_in_id_order(self, backend: B, tenant: str, other_tenant: str) -> None:
        secrets = [make_secret(tenant) for _ in range(7)]
        for secret in secrets:
            self.store(backend, secret)
        self.store(backend, make_secret(other_tenant))
        seen: list[str] = []
        after: str | None = None
        for _ in range(10):
            page = self.read_unit(backend, _scanner(tenant, after))
            if not page:
                break
            seen.extend(s.id for s in page)
            after = page[-1].id
        assert seen == sorted(s.id for s in secrets)


def _scanner(tenant: str, after: str | None) -> Callable[[VaultUnitOfWork], Sequence[Secret]]:
    return lambda uow: uow.secrets.scan(tenant, after=after, limit=3)
