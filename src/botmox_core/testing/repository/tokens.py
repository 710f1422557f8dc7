"""Repository conformance: API tokens."""

from __future__ import annotations

import attrs
import pytest

from botmox_core.errors import DuplicateError
from botmox_core.models import (
    ApiToken,
    Role,
)
from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import B, RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    SHA_A,
    T0,
    _at,
    _check_equal,
    _check_utc,
    _uid,
    make_token,
)

__all__ = ["TokenConformance"]


class TokenConformance(RepositoryConformanceBase[B]):
    """Pytest mixin: API tokens."""

    def test_token_round_trip(self, backend: DataBackend, tenant: str) -> None:
        full = make_token(tenant, revoked_at=_at(5))
        minimal = ApiToken(
            id=_uid("tok"), tenant_id=tenant, role=Role.API, token_hash=SHA_A, created_at=T0
        )
        with backend.unit_of_work() as uow:
            uow.tokens.add(full)
            uow.tokens.add(minimal)
            uow.commit()
        with backend.unit_of_work() as uow:
            for token in (full, minimal):
                got = uow.tokens.get_by_hash(token.token_hash)
                _check_equal(got, token, "tokens.get_by_hash")
                _check_utc(got, "token")

    def test_token_roles_round_trip(self, backend: DataBackend, tenant: str) -> None:
        tokens = [make_token(tenant, role=role) for role in Role]
        with backend.unit_of_work() as uow:
            for token in tokens:
                uow.tokens.add(token)
            uow.commit()
        with backend.unit_of_work() as uow:
            for token in tokens:
                got = uow.tokens.get_by_hash(token.token_hash)
                _check_equal(got, token, f"token with role {token.role}")

    def test_token_unknown_hash_is_none(self, backend: DataBackend) -> None:
        _check_equal(self.read(backend, lambda uow: uow.tokens.get_by_hash(SHA_A)), None, "get")

    def test_token_duplicate_id_is_refused(self, backend: DataBackend, tenant: str) -> None:
        original = make_token(tenant)
        self.committed(backend, lambda uow: uow.tokens.add(original))
        clash = make_token(tenant, id=original.id, label="other")
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.tokens.add(clash))
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(original.token_hash))
        _check_equal(got, original, "original token after a refused duplicate")
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(clash.token_hash))
        _check_equal(got, None, "refused token")

    def test_token_duplicate_hash_is_refused(self, backend: DataBackend, tenant: str) -> None:
        original = make_token(tenant)
        self.committed(backend, lambda uow: uow.tokens.add(original))
        clash = make_token(tenant, token_hash=original.token_hash, label="other")
        with pytest.raises(DuplicateError):
            self.committed(backend, lambda uow: uow.tokens.add(clash))
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(original.token_hash))
        _check_equal(got, original, "original token after a refused duplicate")

    def test_token_revoke(self, backend: DataBackend, tenant: str) -> None:
        token = make_token(tenant)
        self.committed(backend, lambda uow: uow.tokens.add(token))
        revoked = self.committed(backend, lambda uow: uow.tokens.revoke(tenant, token.id, _at(9)))
        _check_equal(revoked, True, "revoke of an existing token")
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(token.token_hash))
        _check_equal(got, attrs.evolve(token, revoked_at=_at(9)), "revoked token")

    def test_token_revoke_unknown_is_false(self, backend: DataBackend, tenant: str) -> None:
        revoked = self.committed(backend, lambda uow: uow.tokens.revoke(tenant, "tok_nope", T0))
        _check_equal(revoked, False, "revoke of an unknown token")

    def test_token_revoke_is_tenant_scoped(
        self, backend: DataBackend, tenant: str, other_tenant: str
    ) -> None:
        token = make_token(tenant)
        self.committed(backend, lambda uow: uow.tokens.add(token))
        revoked = self.committed(
            backend, lambda uow: uow.tokens.revoke(other_tenant, token.id, _at(9))
        )
        _check_equal(revoked, False, "revoke through another tenant")
        got = self.read(backend, lambda uow: uow.tokens.get_by_hash(token.token_hash))
        _check_equal(got, token, "token after another tenant tried to revoke it")
