"""Operator-issued API tokens: create (shown once), authenticate (by hash) and revoke.

Verified tokens are cached for at most :data:`TOKEN_CACHE_SECONDS` (the **revocation bound**):
a token revoked on any replica, or by ``botmox admin token revoke`` straight in the database,
is refused everywhere within that bound. Revoking through this service forgets every cached
token of this process at once; :meth:`TokenService.forget_cached` does the same on another
replica when it hears of the revocation on the agent transport's channel
:data:`REVOCATION_CHANNEL`. Only successful look-ups are cached: an unknown, revoked or
expired token always goes to the database. A cached token's own ``expires_at`` is still checked
on every use.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

import attrs

from botmox_core.errors import UnauthorizedError
from botmox_core.models import ApiToken, Role
from botmox_core.ports import AgentTransport, DataBackend
from botmox_core.ports.repositories import read_unit_of_work
from botmox_core.security import generate_api_token, hash_secret, hashes_match
from botmox_core.services import validation as check
from botmox_core.services.principal import Clock, Principal, utcnow

#: Longest a verified API token is served from the cache: the revocation bound, in seconds.
TOKEN_CACHE_SECONDS = 1.0
#: Most tokens cached at once (past it the cache starts afresh).
TOKEN_CACHE_ENTRIES = 10_000
#: The agent transport key on which replicas announce API token revocations (a message
#: ``{"type": "api-token-revoked", "tenant_id": ..., "token_id": ...}``, ids only).
REVOCATION_CHANNEL = "botmox.revocations"


@attrs.frozen
class _Cached:
    principal: Principal
    expires_at: datetime | None
    until: float  # time.monotonic() past which the entry is not used


@attrs.frozen
class CreatedToken:
    """A new API token record and its secret (shown once, never stored)."""

    record: ApiToken
    secret: str = attrs.field(repr=False)


class TokenService:
    """Issues and checks operator API tokens."""

    def __init__(
        self,
        backend: DataBackend,
        clock: Clock = utcnow,
        *,
        cache_seconds: float = TOKEN_CACHE_SECONDS,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self.cache_seconds = cache_seconds
        self._cache: dict[str, _Cached] = {}
        self._cache_lock = threading.Lock()
        self._generation = 0  # bumped by every forget: a look-up that raced it is not cached

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
        """Revoke a token; this process forgets its cached tokens at once (announce the
        revocation on :data:`REVOCATION_CHANNEL` so that other replicas do too)."""
        with self._backend.unit_of_work() as uow:
            done = uow.tokens.revoke(tenant_id, token_id, self._clock())
            uow.commit()
        self.forget_cached()
        return done

    def forget_cached(self) -> None:
        """Drop every cached token (a revocation happened somewhere)."""
        with self._cache_lock:
            self._generation += 1
            self._cache.clear()

    def cached(self, secret: str) -> Principal | None:
        """The principal of ``secret`` when it was verified less than the revocation bound ago
        and has not expired since; ``None`` (look it up with :meth:`authenticate`) otherwise.
        Cheap enough for the event loop: no I/O."""
        entry = self._cache.get(hash_secret(secret)) if secret.startswith("bmx_") else None
        if entry is None or time.monotonic() >= entry.until:
            return None
        if entry.expires_at is not None and entry.expires_at <= self._clock():
            return None
        return entry.principal

    def authenticate(self, secret: str) -> Principal:
        """The principal of a valid, unrevoked, unexpired API token; ``UNAUTHORIZED`` otherwise.
        Served from the cache when :meth:`cached` has it, else read (read-only unit)."""
        if not secret.startswith("bmx_") or len(secret) > 256:
            raise UnauthorizedError("invalid token")
        hit = self.cached(secret)
        if hit is not None:
            return hit
        generation = self._generation
        started = time.monotonic()  # the bound runs from before the read
        token_hash = hash_secret(secret)
        with read_unit_of_work(self._backend) as uow:
            record = uow.tokens.get_by_hash(token_hash)
        if record is None or not hashes_match(secret, record.token_hash):
            raise UnauthorizedError("invalid token")
        if record.revoked_at is not None:
            raise UnauthorizedError("token revoked")
        if record.expires_at is not None and record.expires_at <= self._clock():
            raise UnauthorizedError("token expired")
        principal = Principal(
            tenant_id=record.tenant_id, role=record.role, user_id=record.user_id, subject=record.id
        )
        if self.cache_seconds > 0:
            with self._cache_lock:
                if generation == self._generation:
                    if len(self._cache) >= TOKEN_CACHE_ENTRIES:
                        self._cache.clear()
                    self._cache[token_hash] = _Cached(
                        principal, record.expires_at, started + self.cache_seconds
                    )
        return principal


async def announce_revocation(transport: AgentTransport, tenant_id: str, token_id: str) -> None:
    """Tell every replica listening on ``transport`` (see :func:`revocation_message`) that an
    API token was revoked, so that each forgets its cached tokens at once instead of within the
    revocation bound. Ids only, never the secret or its hash."""
    await transport.publish(REVOCATION_CHANNEL, revocation_message(tenant_id, token_id))


def revocation_message(tenant_id: str, token_id: str) -> dict[str, str]:
    return {"type": "api-token-revoked", "tenant_id": tenant_id, "token_id": token_id}
