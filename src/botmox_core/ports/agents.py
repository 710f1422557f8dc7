"""Repository ports of the agent command bus: agents and their command queue.

A data backend supports agents when its units of work also carry ``agents`` and ``commands``
(:class:`AgentUnitOfWork`), and it says so by declaring ``capabilities.agents``
(:class:`~botmox_core.ports.repositories.BackendCapabilities`); :func:`supports_agents` reads
that declaration. Backends without agents keep working for everything else; the server then
answers the agent routes with 501 ``AGENTS_NOT_SUPPORTED``.

Every method names the tenant, except the lookups by a credential's hash (the hash *is* the
credential) and :meth:`CommandRepository.list_stale`, which the server's sweeper uses across
tenants. State changes go through ``modify``/``claim``, which are atomic per record: SQLite holds
its write lock for the unit; PostgreSQL implements ``claim`` with ``FOR UPDATE SKIP LOCKED`` so
replicas never claim the same command twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Protocol, TypeGuard, runtime_checkable

from botmox_core.models import Agent, AgentStatus, Command, CommandStatus
from botmox_core.ports.repositories import DataBackend, UnitOfWork


class AgentRepository(Protocol):
    """Agents (pending pairings, active and revoked agents)."""

    def add(self, agent: Agent) -> None:
        """Store a new agent. :class:`DuplicateError` if the id or a hash exists."""

    def get(self, tenant_id: str, agent_id: str) -> Agent | None:
        """The tenant's agent, or None."""

    def get_by_pairing_hash(self, pairing_code_hash: str) -> Agent | None:
        """The agent whose unused pairing code hashes to this (any tenant)."""

    def get_by_token_hash(self, token_hash: str) -> Agent | None:
        """The agent whose token hashes to this (any tenant)."""

    def list(self, tenant_id: str, status: AgentStatus | None = None) -> Sequence[Agent]:
        """The tenant's agents (optionally of one stored status), newest first."""

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Agent]:
        """Up to ``limit`` of the tenant's agents after the id ``after``, by id (code point
        order): the whole set read page by page (migration)."""

    def modify(
        self, tenant_id: str, agent_id: str, change: Callable[[Agent], Agent]
    ) -> Agent | None:
        """Atomically replace the agent with ``change(current)`` (same rules as
        :meth:`LeaseRepository.modify`); None when no such agent exists."""


class CommandRepository(Protocol):
    """The command queue and the commands' output."""

    def add(self, command: Command) -> None:
        """Store a new command. :class:`DuplicateError` if the id exists or another command of
        the same (tenant, agent) has the same ``idempotency_key``."""

    def get(self, tenant_id: str, command_id: str) -> Command | None:
        """The tenant's command, or None."""

    def find_by_idempotency_key(self, tenant_id: str, agent_id: str, key: str) -> Command | None:
        """The command enqueued for the agent with that key, or None."""

    def list(
        self,
        tenant_id: str,
        *,
        agent_id: str | None = None,
        statuses: Sequence[CommandStatus] | None = None,
        limit: int = 100,
    ) -> Sequence[Command]:
        """The tenant's commands, newest first (by ``queued_at``, then id), at most ``limit``."""

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Command]:
        """Up to ``limit`` of the tenant's commands after the id ``after``, by id (code point
        order): the whole set read page by page (migration)."""

    def count(self, tenant_id: str, agent_id: str, statuses: Sequence[CommandStatus]) -> int:
        """How many of the agent's commands are in one of ``statuses``."""

    def count_by_status(self) -> Mapping[CommandStatus, int]:
        """How many commands every tenant holds in each state (states with none may be
        absent); read by ``/metrics`` (commands by state, queue depth)."""

    def modify(
        self, tenant_id: str, command_id: str, change: Callable[[Command], Command]
    ) -> Command | None:
        """Atomically replace the command with ``change(current)``; None when missing."""

    def claim(self, tenant_id: str, agent_id: str, now: datetime, limit: int) -> Sequence[Command]:
        """Move up to ``limit`` of the agent's oldest queued commands whose ``expires_at`` is
        after ``now`` to ``dispatched`` (``attempts`` + 1, ``dispatched_at`` = ``updated_at`` =
        ``now``) and return them, oldest first. Concurrent claims never return the same
        command twice."""

    def list_stale(
        self,
        now: datetime,
        *,
        dispatched_before: datetime,
        agents_seen_before: datetime,
        limit: int = 500,
    ) -> Sequence[Command]:
        """Commands of every tenant the sweeper must look at: queued or dispatched with
        ``expires_at`` ≤ ``now``; dispatched with ``dispatched_at`` < ``dispatched_before``;
        running for longer than their execution timeout; running on an agent whose
        ``last_seen_at`` is before ``agents_seen_before`` (or never set)."""

    def append_output(self, tenant_id: str, command_id: str, seq: int, data: str) -> bool:
        """Store output chunk ``seq`` of the command; False (nothing written) when that chunk
        is already stored, so a resent chunk is harmless."""

    def output(self, tenant_id: str, command_id: str) -> str:
        """The command's stored output: its chunks in ``seq`` order, concatenated."""


class AgentUnitOfWork(UnitOfWork, Protocol):
    """A unit of work of a backend that supports the agent command bus."""

    agents: AgentRepository
    commands: CommandRepository

    def __enter__(self) -> AgentUnitOfWork: ...


@runtime_checkable
class AgentDataBackend(DataBackend, Protocol):
    """A data backend whose units of work carry the agent repositories.

    Runtime-checkable, but ``isinstance`` only sees the members every backend has; whether a
    backend *is* one is its declaration, ``capabilities.agents`` (see :func:`supports_agents`).
    """

    def unit_of_work(self) -> AgentUnitOfWork:
        """A new unit of work; use it as a context manager."""


def supports_agents(backend: DataBackend) -> TypeGuard[AgentDataBackend]:
    """Whether ``backend`` declares the agent repositories (``capabilities.agents``).

    Reads the declaration only: no unit of work is made, no connection opened. The agent
    conformance suite checks that a backend claiming it keeps the claim.
    """
    return isinstance(backend, AgentDataBackend) and backend.capabilities.agents
