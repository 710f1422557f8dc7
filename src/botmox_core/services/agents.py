"""Agent lifecycle: pairing → registration (agent token) → heartbeats → revocation.

A pairing creates a *pending* agent and a one-time pairing code (32 hex characters, 128 bits from
the OS CSPRNG, stored only as a sha256 hash). Registering with the code makes the agent *active*
and returns its agent token (``bma_`` + 256 random bits, stored hashed, compared in constant
time), valid for ``token_ttl_days``. An active agent not seen for ``offline_after_seconds`` is
reported as ``offline``. Revocation refuses the token and fails the agent's unfinished commands
(the server also closes its live socket).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from botmox_core.domain.agents import AgentLiveness
from botmox_core.domain.commands import fail_unfinished
from botmox_core.errors import (
    AgentNotActiveError,
    AgentNotFoundError,
    AgentRevokedError,
    AlreadyRevokedError,
    BadRequestError,
    ForbiddenError,
    PairingExpiredError,
    PairingNotFoundError,
    UnauthorizedError,
)
from botmox_core.models import Agent, AgentStatus, Role
from botmox_core.ports import DataBackend
from botmox_core.ports.agents import AgentUnitOfWork
from botmox_core.security import hash_secret, hashes_match
from botmox_core.services import validation as check
from botmox_core.services.agent_store import AgentStore
from botmox_core.services.principal import (
    HEARTBEAT_OTHER_AGENTS,
    LIST_AGENTS,
    PAIR_AGENTS,
    REVOKE_AGENTS,
    Clock,
    Principal,
    utcnow,
)

__all__ = [
    "AGENT_TOKEN_PREFIX",
    "AgentService",
    "AgentTokenRefusedError",
    "CreatedPairing",
    "RegisteredAgent",
]

AGENT_TOKEN_PREFIX = "bma_"  # noqa: S105 - a public prefix, not a secret
PAIRING_MINUTES_MIN, PAIRING_MINUTES_MAX, PAIRING_MINUTES_DEFAULT = 5, 1440, 15
MAX_CAPABILITIES = 50
PAIRING_CODE_RE = re.compile(r"^[0-9a-f]{32}$")
CAPABILITY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:*-]{0,127}$")
#: A heartbeat or frame updates ``last_seen_at`` at most this often per agent (or a quarter of
#: the offline window, when that is shorter).
TOUCH_INTERVAL = timedelta(seconds=15)


class AgentTokenRefusedError(UnauthorizedError):
    """An agent token the server refuses (401 ``UNAUTHORIZED`` over HTTP, as the contract says).

    Attributes:
        reason: ``unknown`` (no such token, or not an agent token), ``expired``, ``revoked`` or
            ``not_active``; the agent channel turns it into the ``error`` frame's code.
        agent_id: the agent the token belongs to (``None`` when unknown); for logs only.
    """

    def __init__(self, message: str, *, reason: str, agent_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.agent_id = agent_id


@attrs.frozen
class CreatedPairing:
    """A pending agent and its pairing code (shown once, stored hashed)."""

    agent: Agent
    code: str = attrs.field(repr=False)


@attrs.frozen
class RegisteredAgent:
    """An agent that just registered and its token (shown once, stored hashed)."""

    agent: Agent
    token: str = attrs.field(repr=False)


class AgentService:
    """Pairs, registers, authenticates, lists and revokes agents.

    Its ``supported``, ``liveness`` and ``unit()`` are those of :attr:`store`, so it is also
    the :class:`~botmox_core.services.agent_store.AgentRepositories` of the command service.
    """

    def __init__(
        self,
        backend: DataBackend,
        *,
        offline_after_seconds: int = 120,
        token_ttl_days: int = 365,
        clock: Clock = utcnow,
    ) -> None:
        self.liveness = AgentLiveness(timedelta(seconds=offline_after_seconds))
        self.store = AgentStore(backend, self.liveness)
        self.offline_after = self.liveness.offline_after
        self.touch_interval = min(TOUCH_INTERVAL, self.offline_after / 4)
        self._token_ttl = timedelta(days=token_ttl_days)
        self._clock = clock
        self._touched: dict[str, datetime] = {}
        self._touched_lock = threading.Lock()

    @property
    def supported(self) -> bool:
        """Whether the data backend stores agents and commands."""
        return self.store.supported

    def unit(self) -> AgentUnitOfWork:
        """A unit of work with the agent repositories; 501 ``AGENTS_NOT_SUPPORTED`` when the
        data backend has none."""
        return self.store.unit()

    def now(self) -> datetime:
        return self._clock()

    # -- pairing and registration ----------------------------------------------------------

    def create_pairing(
        self, principal: Principal, *, name: Any = None, expires_in_minutes: Any = None
    ) -> CreatedPairing:
        """A pending agent with a fresh pairing code (admin/infra)."""
        principal.authorize(PAIR_AGENTS)
        label = check.optional_text(name, "name", 128)
        minutes = PAIRING_MINUTES_DEFAULT if expires_in_minutes is None else expires_in_minutes
        if (
            isinstance(minutes, bool)
            or not isinstance(minutes, int)
            or not PAIRING_MINUTES_MIN <= minutes <= PAIRING_MINUTES_MAX
        ):
            raise _field(
                "expires_in_minutes",
                f"must be an integer from {PAIRING_MINUTES_MIN} to {PAIRING_MINUTES_MAX}",
            )
        now = self._clock()
        code = secrets.token_hex(16)
        agent = Agent(
            id="agt_" + secrets.token_hex(12),
            tenant_id=principal.tenant_id,
            status=AgentStatus.PENDING,
            created_at=now,
            pairing_expires_at=now + timedelta(minutes=minutes),
            name=label,
            pairing_code_hash=hash_secret(code),
        )
        with self.unit() as uow:
            uow.agents.add(agent)
            uow.commit()
        return CreatedPairing(agent, code)

    def register(
        self,
        *,
        pairing_code: Any,
        version: Any = None,
        platform: Any = None,
        capabilities: Any = None,
        public_key: Any = None,
    ) -> RegisteredAgent:
        """Redeem a pairing code (the code is the credential): the agent becomes active and
        gets its token. 404 ``PAIRING_NOT_FOUND`` for an unknown or used code, 410
        ``PAIRING_EXPIRED`` past its expiry."""
        if not isinstance(pairing_code, str) or not PAIRING_CODE_RE.fullmatch(pairing_code.lower()):
            raise _field("pairing_code", "must be 32 hexadecimal characters")
        code_hash = hash_secret(pairing_code.lower())
        version_text = check.optional_text(version, "version", 64)
        platform_text = check.optional_text(platform, "platform", 64)
        caps = _capabilities(capabilities)
        key = _x25519_public_key(public_key)
        now = self._clock()
        token = AGENT_TOKEN_PREFIX + secrets.token_urlsafe(32)

        def activate(current: Agent) -> Agent:
            if current.status is not AgentStatus.PENDING or current.pairing_code_hash != code_hash:
                raise PairingNotFoundError("no unused pairing with this code")
            if current.pairing_expires_at <= now:
                raise PairingExpiredError("the pairing code has expired")
            return attrs.evolve(
                current,
                status=AgentStatus.ACTIVE,
                pairing_code_hash=None,
                version=version_text,
                platform=platform_text,
                capabilities=caps,
                public_key=key,
                token_hash=hash_secret(token),
                token_expires_at=now + self._token_ttl,
                registered_at=now,
                # not seen until it connects, polls or heartbeats: enqueueing for an agent that
                # registered but never came online answers AGENT_OFFLINE
                last_seen_at=None,
            )

        with self.unit() as uow:
            found = uow.agents.get_by_pairing_hash(code_hash)
            if found is None or not hashes_match(pairing_code.lower(), found.pairing_code_hash):
                raise PairingNotFoundError("no unused pairing with this code")
            agent = uow.agents.modify(found.tenant_id, found.id, activate)
            if agent is None:
                raise PairingNotFoundError("no unused pairing with this code")
            uow.commit()
        return RegisteredAgent(agent, token)

    # -- authentication and liveness --------------------------------------------------------

    def authenticate(self, token: str) -> Principal:
        """The principal (role ``agent``, subject = agent id) of a valid agent token;
        ``UNAUTHORIZED`` for unknown, expired or revoked agents."""
        agent = self.agent_for_token(token)
        return Principal(tenant_id=agent.tenant_id, role=Role.AGENT, subject=agent.id)

    def agent_for_token(self, token: str) -> Agent:
        """The active agent a token belongs to; :class:`AgentTokenRefusedError` (401
        ``UNAUTHORIZED``, with the reason) otherwise."""
        if (
            not isinstance(token, str)
            or not token.startswith(AGENT_TOKEN_PREFIX)
            or len(token) > 256
        ):
            raise AgentTokenRefusedError("invalid token", reason="unknown")
        with self.unit() as uow:
            agent = uow.agents.get_by_token_hash(hash_secret(token))
        if agent is None or not hashes_match(token, agent.token_hash):
            raise AgentTokenRefusedError("invalid token", reason="unknown")
        if agent.status is AgentStatus.REVOKED:
            raise AgentTokenRefusedError("agent revoked", reason="revoked", agent_id=agent.id)
        if agent.status is not AgentStatus.ACTIVE:
            raise AgentTokenRefusedError("agent not active", reason="not_active", agent_id=agent.id)
        if agent.token_expires_at is not None and agent.token_expires_at <= self._clock():
            raise AgentTokenRefusedError("agent token expired", reason="expired", agent_id=agent.id)
        return agent

    def heartbeat(self, principal: Principal, agent_id: Any) -> Agent:
        """Record that the agent is alive. An agent may heartbeat only itself; operators any
        agent of their tenant."""
        aid = _agent_id(agent_id)
        if principal.role is Role.AGENT:
            if principal.subject != aid:
                raise ForbiddenError("an agent may only heartbeat itself")
        else:
            principal.authorize(HEARTBEAT_OTHER_AGENTS)
        now = self._clock()

        def seen(current: Agent) -> Agent:
            if current.status is AgentStatus.REVOKED:
                raise AgentRevokedError("the agent is revoked")
            if current.status is not AgentStatus.ACTIVE:
                raise AgentNotActiveError("the agent has not registered")
            return attrs.evolve(current, last_seen_at=now)

        with self.unit() as uow:
            agent = uow.agents.modify(principal.tenant_id, aid, seen)
            if agent is None:
                raise AgentNotFoundError("no such agent")
            uow.commit()
        with self._touched_lock:
            self._touched[aid] = now
        return agent

    def touch(self, tenant_id: str, agent_id: str) -> None:
        """Update ``last_seen_at`` for a live connection, at most every ``touch_interval``."""
        now = self._clock()
        with self._touched_lock:
            last = self._touched.get(agent_id)
            if last is not None and now - last < self.touch_interval:
                return
            self._touched[agent_id] = now

        def seen(current: Agent) -> Agent:
            if current.status is not AgentStatus.ACTIVE:
                return current
            return attrs.evolve(current, last_seen_at=now)

        with self.unit() as uow:
            uow.agents.modify(tenant_id, agent_id, seen)
            uow.commit()

    def forget(self, agent_id: str) -> None:
        """Drop the touch throttle of an agent (its connection closed)."""
        with self._touched_lock:
            self._touched.pop(agent_id, None)

    @property
    def heartbeat_interval_seconds(self) -> int:
        """How often agents should heartbeat: 30 s, or a quarter of the offline window."""
        return max(1, min(30, int(self.offline_after.total_seconds() // 4)))

    def is_recently_seen(self, agent: Agent, now: datetime | None = None) -> bool:
        """Active and seen within the offline window."""
        return self.liveness.is_recently_seen(agent, now or self._clock())

    # -- operator views ---------------------------------------------------------------------

    def get(self, principal: Principal, agent_id: Any) -> Agent:
        """One agent of the caller's tenant (an agent may read only itself)."""
        aid = _agent_id(agent_id)
        if principal.role is Role.AGENT and principal.subject != aid:
            raise AgentNotFoundError("no such agent")
        with self.unit() as uow:
            agent = uow.agents.get(principal.tenant_id, aid)
        if agent is None:
            raise AgentNotFoundError("no such agent")
        return agent

    def list(
        self, principal: Principal, *, status: Any = None, page: int = 1, limit: int = 50
    ) -> tuple[Sequence[Agent], int]:
        """One page of the tenant's agents (``status`` pending|active|offline|revoked) and the
        total count. Agents cannot list."""
        principal.authorize(LIST_AGENTS)
        wanted = None if status is None else str(status)
        if wanted is not None and wanted not in ("pending", "active", "offline", "revoked"):
            raise _field("status", "must be one of pending|active|offline|revoked")
        if not 1 <= limit <= 200:
            raise _field("limit", "must be from 1 to 200")
        if page < 1:
            raise _field("page", "must be at least 1")
        stored = None
        if wanted in ("pending", "revoked"):
            stored = AgentStatus(wanted)
        elif wanted in ("active", "offline"):
            stored = AgentStatus.ACTIVE
        with self.unit() as uow:
            agents = uow.agents.list(principal.tenant_id, stored)
        now = self._clock()
        if wanted is not None:
            agents = [a for a in agents if self.liveness.status(a, now) == wanted]
        start = (page - 1) * limit
        return agents[start : start + limit], len(agents)

    def revoke(self, principal: Principal, agent_id: Any, reason: Any = None) -> Agent:
        """Revoke the agent (admin/infra): its token stops working and its queued, dispatched
        and running commands fail with ``agent revoked``. 409 ``ALREADY_REVOKED`` twice."""
        principal.authorize(REVOKE_AGENTS)
        aid = _agent_id(agent_id)
        reason_text = check.optional_text(reason, "reason", 512)
        now = self._clock()

        def revoke(current: Agent) -> Agent:
            if current.status is AgentStatus.REVOKED:
                raise AlreadyRevokedError("the agent is already revoked")
            return attrs.evolve(
                current,
                status=AgentStatus.REVOKED,
                revoked_at=now,
                revoke_reason=reason_text,
                pairing_code_hash=None,
            )

        with self.unit() as uow:
            agent = uow.agents.modify(principal.tenant_id, aid, revoke)
            if agent is None:
                raise AgentNotFoundError("no such agent")
            fail_unfinished(uow.commands, principal.tenant_id, aid, now, "agent revoked")
            uow.commit()
        self.forget(aid)
        return agent


def _field(field: str, message: str) -> BadRequestError:
    return BadRequestError(f"{field}: {message}", details=[{"field": field, "message": message}])


def _agent_id(value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 64:
        raise AgentNotFoundError("no such agent")
    return value


def _capabilities(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _field("capabilities", "must be a list of strings")
    if len(value) > MAX_CAPABILITIES:
        raise _field("capabilities", f"at most {MAX_CAPABILITIES} entries")
    for item in value:
        if not isinstance(item, str) or not CAPABILITY_RE.fullmatch(item):
            raise _field("capabilities", "entries must be 1-128 of A-Z a-z 0-9 . _ : * -")
    return tuple(dict.fromkeys(value))


def _x25519_public_key(value: Any) -> str | None:
    """The agent's X25519 public key: base64 (standard or URL-safe) of exactly 32 bytes."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise _field("public_key", "must be base64 of a 32-byte X25519 public key")
    text = value.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        X25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise _field("public_key", "must be base64 of a 32-byte X25519 public key") from None
    return base64.b64encode(raw).decode("ascii")
