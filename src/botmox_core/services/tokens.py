"""Operator-issued API tokens: create (shown once) and authenticate (by hash)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from botmox_core.errors import UnauthorizedError
from botmox_core.models import ApiToken, Role
from botmox_core.ports import DataBackend
from botmox_core.security import generate_api_token, hash_secret, hashes_match
from botmox_core.services import validation as check
from botmox_core.services.principal import Clock, Principal, utcnow


@attrs.frozen
class CreatedToken:
    """A new API token record and its secret (shown once, never stored)."""

    record: ApiToken
    secret: str = attrs.field(repr=False)


class TokenService:
    """Issues and checks operator API tokens."""

    def __init__(self, backend: DataBackend, clock: Clock = utcnow) -> None:
        self._backend = backend
        self._clock = clock

    def create(
        self,
        tenant_id: Any,
        role: Any,
        *,
        user_id: Any = None,
        expires_at: datetime | None = None,
        label: Any = None,
    ) -> CreatedToken:
        token_id, secret = generate_api_token()
        record = ApiToken(
            id=token_id,
            tenant_id=check.identifier(tenant_id, "tenant"),
            role=check.choice(role, "role", Role),
            token_hash=hash_secret(secret),
            created_at=self._clock(),
            user_id=check.optional_identifier(user_id, "user"),
            expires_at=expires_at,
            label=check.optional_text(label, "label"),
        )
        with self._backend.unit_of_work() as uow:
            uow.tokens.add(record)
            uow.commit()
        return CreatedToken(record, secret)

    def revoke(self, tenant_id: str, token_id: str) -> bool:
        with self._backend.unit_of_work() as uow:
            done = uow.tokens.revoke(tenant_id, token_id, self._clock())
            uow.commit()
        return done

    def authenticate(self, secret: str) -> Principal:
        """The principal of a valid, unrevoked, unexpired API token; ``UNAUTHORIZED`` otherwise."""
        if not secret.startswith("bmx_") or len(secret) > 256:
            raise UnauthorizedError("invalid token")
        with self._backend.unit_of_work() as uow:
            record = uow.tokens.get_by_hash(hash_secret(secret))
        if record is None or not hashes_match(secret, record.token_hash):
            raise UnauthorizedError("invalid token")
        if record.revoked_at is not None:
            raise UnauthorizedError("token revoked")
        if record.expires_at is not None and record.expires_at <= self._clock():
            raise UnauthorizedError("token expired")
        return Principal(
            tenant_id=record.tenant_id, role=record.role, user_id=record.user_id, subject=record.id
        )
