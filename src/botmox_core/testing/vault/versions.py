"""Vault conformance: secret versions and their envelopes (round trips of every envelope kind, the
wire document, newest-first listing, dropping old envelopes)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import attrs
import pytest

from botmox_core.errors import DuplicateError
from botmox_core.ports.vault import VaultUnitOfWork
from botmox_core.testing.vault._base import B, VaultConformanceBase
from botmox_core.testing.vault._support import (
    T0,
    _same_version,
    make_aes_envelope,
    make_hpke_envelope,
    make_secret,
    make_version,
)
from botmox_core.vault.envelopes import envelope_document, parse_envelope
from botmox_core.vault.models import Secret, SecretVersion

__all__ = ["SecretVersionConformance"]


class SecretVersionConformance(VaultConformanceBase[B]):
    """Pytest mixin: what ``uow.secrets`` keeps of each version: its envelope exactly, listed
    newest first, dropped below a version on request (the metadata stays)."""

    def test_an_aes_gcm_secret_reads_back_equal(self, backend: B, tenant: str) -> None:
        envelope = make_aes_envelope()
        secret = make_secret(tenant, envelope, aad_meta={}, created_by=None, label="x")
        version = self.store(backend, secret, envelope)
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == secret
        _same_version(
            version, self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        )

    def test_the_stored_envelope_is_the_wire_document(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        version = self.store(backend, secret)
        got = self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        assert got is not None and got.envelope is not None
        assert parse_envelope(envelope_document(got.envelope)) == version.envelope

    def test_the_largest_envelope_reads_back(self, backend: B, tenant: str) -> None:
        agents = [f"agt_{i:02d}" for i in range(32)]
        envelope = make_hpke_envelope(*agents, size=2048)
        secret = make_secret(tenant, envelope)
        version = self.store(backend, secret, envelope)
        _same_version(
            version, self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        )

    def test_a_duplicate_version_is_refused(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        version = self.store(backend, secret)
        with pytest.raises(DuplicateError):
            self.write_unit(backend, lambda u: u.secrets.add_version(make_version(secret)))
        _same_version(
            version, self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        )

    def test_versions_are_newest_first_and_envelopes_drop_below(
        self, backend: B, tenant: str
    ) -> None:
        secret = make_secret(tenant)
        stored = [self.store(backend, secret)]
        for number in (2, 3, 4):
            rotated = attrs.evolve(
                secret, version=number, rotated_at=T0 + timedelta(seconds=number)
            )
            version = make_version(rotated)
            self.write_unit(backend, _adder(version))
            stored.append(version)
        listed = self.read_unit(backend, lambda u: u.secrets.versions(tenant, secret.id))
        assert [v.version for v in listed] == [4, 3, 2, 1]
        for expected, got in zip(reversed(stored), listed, strict=True):
            _same_version(expected, got)

        dropped = self.write_unit(
            backend, lambda u: u.secrets.drop_envelopes(tenant, secret.id, below=3)
        )
        assert dropped == 2
        assert (
            self.write_unit(backend, lambda u: u.secrets.drop_envelopes(tenant, secret.id, below=3))
            == 0
        )
        listed = self.read_unit(backend, lambda u: u.secrets.versions(tenant, secret.id))
        assert [v.envelope is None for v in listed] == [False, False, True, True]
        for expected, got in zip(reversed(stored), listed, strict=True):
            keep = expected.version >= 3
            _same_version(expected if keep else attrs.evolve(expected, envelope=None), got)
        one = self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        assert one is not None and one.envelope is None and one.recipients == stored[0].recipients

    def test_dropping_touches_only_that_secret(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        first, second = make_secret(tenant), make_secret(tenant)
        theirs = make_secret(other_tenant, id=first.id)
        for secret in (first, second, theirs):
            self.store(backend, secret)
        self.write_unit(backend, lambda u: u.secrets.drop_envelopes(tenant, first.id, below=9))
        for secret, dropped in ((first, True), (second, False), (theirs, False)):
            got = self.read_unit(backend, _first_version(secret))
            assert got is not None
            assert (got.envelope is None) is dropped


def _adder(version: SecretVersion) -> Callable[[VaultUnitOfWork], None]:
    return lambda uow: uow.secrets.add_version(version)


def _first_version(secret: Secret) -> Callable[[VaultUnitOfWork], SecretVersion | None]:
    return lambda uow: uow.secrets.get_version(secret.tenant_id, secret.id, 1)
