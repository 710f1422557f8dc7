"""The agent command bus on PostgreSQL: :class:`~botmox_core.ports.AgentRepository` and
:class:`~botmox_core.ports.CommandRepository` over ``botmox.agents``, ``botmox.commands`` and
``botmox.command_output``.

Every read and write names the tenant, except the lookups by a credential's hash and the
sweeper's :meth:`PostgresCommandRepository.list_stale` (as the port says). ``modify`` locks the
row with ``SELECT ... FOR UPDATE`` for the rest of the unit of work. :meth:`claim` takes the
agent's oldest queued commands with ``FOR UPDATE SKIP LOCKED`` and marks them dispatched in the
same statement, so server replicas claiming at once never get the same command: a row another
transaction holds is skipped, and one it already dispatched no longer matches.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from psycopg.types.json import Jsonb

from botmox_core.errors import BadRequestError
from botmox_core.models import Agent, AgentStatus, Command, CommandStatus
from botmox_supabase.repositories import _Repository, _structure, _text

__all__ = ["PostgresAgentRepository", "PostgresCommandRepository"]

_AGENT_COLUMNS = (
    "id",
    "tenant_id",
    "name",
    "status",
    "created_at",
    "pairing_code_hash",
    "pairing_expires_at",
    "version",
    "platform",
    "capabilities",
    "public_key",
    "token_hash",
    "token_expires_at",
    "registered_at",
    "last_seen_at",
    "revoked_at",
    "revoke_reason",
)

_COMMAND_COLUMNS = (
    "id",
    "tenant_id",
    "agent_id",
    "command_type",
    "payload",
    "status",
    "queued_at",
    "expires_at",
    "updated_at",
    "execution_timeout_seconds",
    "idempotency_key",
    "attempts",
    "max_attempts",
    "dispatched_at",
    "started_at",
    "finished_at",
    "cancel_requested_at",
    "result",
    "error",
    "output_bytes",
    "created_by",
)

_UNFINISHED = ("queued", "dispatched", "running")


def _enum_value(kind: type[AgentStatus] | type[CommandStatus], value: Any, field: str) -> str:
    try:
        return str(kind(value).value)
    except ValueError:
        raise BadRequestError(f"{field} {value!r} is not a known {kind.__name__}") from None


def _agent_params(agent: Agent) -> dict[str, Any]:
    if not isinstance(agent, Agent):
        raise BadRequestError(f"expected an Agent, got {type(agent).__name__}")
    if not all(isinstance(item, str) for item in agent.capabilities):
        raise BadRequestError("agent capabilities must be strings")
    params = {name: _text(getattr(agent, name)) for name in _AGENT_COLUMNS}
    params["status"] = _enum_value(AgentStatus, agent.status, "agent status")
    params["capabilities"] = list(agent.capabilities)
    return params


def _command_params(command: Command) -> dict[str, Any]:
    if not isinstance(command, Command):
        raise BadRequestError(f"expected a Command, got {type(command).__name__}")
    if not isinstance(command.payload, dict):
        raise BadRequestError("command payload must be a JSON object")
    if command.result is not None and not isinstance(command.result, dict):
        raise BadRequestError("command result must be a JSON object")
    params = {name: _text(getattr(command, name)) for name in _COMMAND_COLUMNS}
    params["status"] = _enum_value(CommandStatus, command.status, "command status")
    params["payload"] = Jsonb(command.payload)
    params["result"] = None if command.result is None else Jsonb(command.result)
    return params


def _statuses(statuses: Sequence[CommandStatus]) -> list[str]:
    return [_enum_value(CommandStatus, status, "command status") for status in statuses]


class PostgresAgentRepository(_Repository):
    """Agents in ``botmox.agents`` (pairing-code and token hashes unique across tenants)."""

    _action = "agent"

    def add(self, agent: Agent) -> None:
        """Store a new agent; :class:`DuplicateError` when the id or a hash exists."""
        columns = ", ".join(_AGENT_COLUMNS)
        values = ", ".join(f"%({name})s" for name in _AGENT_COLUMNS)
        self._count(
            f"insert into botmox.agents ({columns}) values ({values})",  # noqa: S608 - fixed names
            _agent_params(agent),
        )

    def get(self, tenant_id: str, agent_id: str) -> Agent | None:
        """The tenant's agent, or None."""
        return self._one(
            Agent,
            "select * from botmox.agents where tenant_id = %s and id = %s",
            (tenant_id, agent_id),
        )

    def get_by_pairing_hash(self, pairing_code_hash: str) -> Agent | None:
        """The agent with that unused pairing code hash (any tenant)."""
        return self._one(
            Agent,
            "select * from botmox.agents where pairing_code_hash = %s",
            (pairing_code_hash,),
        )

    def get_by_token_hash(self, token_hash: str) -> Agent | None:
        """The agent with that token hash (any tenant)."""
        return self._one(Agent, "select * from botmox.agents where token_hash = %s", (token_hash,))

    def list(self, tenant_id: str, status: AgentStatus | None = None) -> Sequence[Agent]:
        """The tenant's agents (of one stored status when given), newest first."""
        wanted = None if status is None else _enum_value(AgentStatus, status, "agent status")
        rows = self._rows(
            "select * from botmox.agents where tenant_id = %s"
            " and (%s::text is null or status = %s) order by created_at desc, id desc",
            (tenant_id, wanted, wanted),
        )
        return [_structure(row, Agent) for row in rows]

    def modify(
        self, tenant_id: str, agent_id: str, change: Callable[[Agent], Agent]
    ) -> Agent | None:
        """Replace the agent with ``change(current)``, the row locked until the unit ends."""
        current = self._one(
            Agent,
            "select * from botmox.agents where tenant_id = %s and id = %s for update",
            (tenant_id, agent_id),
        )
        if current is None:
            return None
        updated = change(current)
        if not isinstance(updated, Agent):
            raise BadRequestError(f"an agent change must return an Agent, got {updated!r}")
        if updated.id != current.id or updated.tenant_id != current.tenant_id:
            raise BadRequestError("an agent change must not alter the agent's id or tenant")
        if updated == current:
            return current
        assignments = ", ".join(f"{name} = %({name})s" for name in _AGENT_COLUMNS[2:])
        return self._one(
            Agent,
            f"update botmox.agents set {assignments}"  # noqa: S608 - fixed column names
            " where tenant_id = %(tenant_id)s and id = %(id)s returning *",
            _agent_params(updated),
        )


class PostgresCommandRepository(_Repository):
    """Commands in ``botmox.commands``, their output chunks in ``botmox.command_output``."""

    _action = "command"

    def add(self, command: Command) -> None:
        """Store a new command; :class:`DuplicateError` for a taken id or idempotency key."""
        columns = ", ".join(_COMMAND_COLUMNS)
        values = ", ".join(f"%({name})s" for name in _COMMAND_COLUMNS)
        self._count(
            f"insert into botmox.commands ({columns}) values ({values})",  # noqa: S608
            _command_params(command),
        )

    def get(self, tenant_id: str, command_id: str) -> Command | None:
        """The tenant's command, or None."""
        return self._one(
            Command,
            "select * from botmox.commands where tenant_id = %s and id = %s",
            (tenant_id, command_id),
        )

    def find_by_idempotency_key(self, tenant_id: str, agent_id: str, key: str) -> Command | None:
        """The agent's command enqueued with that key, or None."""
        return self._one(
            Command,
            "select * from botmox.commands where tenant_id = %s and agent_id = %s"
            " and idempotency_key = %s",
            (tenant_id, agent_id, key),
        )

    def list(
        self,
        tenant_id: str,
        *,
        agent_id: str | None = None,
        statuses: Sequence[CommandStatus] | None = None,
        limit: int = 100,
    ) -> Sequence[Command]:
        """The tenant's commands, newest first (``queued_at``, then id), at most ``limit``."""
        wanted = None if statuses is None else _statuses(statuses)
        rows = self._rows(
            "select * from botmox.commands where tenant_id = %s"
            " and (%s::text is null or agent_id = %s)"
            " and (%s::text[] is null or status = any(%s::text[]))"
            " order by queued_at desc, id desc limit %s",
            (tenant_id, agent_id, agent_id, wanted, wanted, max(0, int(limit))),
        )
        return [_structure(row, Command) for row in rows]

    def count(self, tenant_id: str, agent_id: str, statuses: Sequence[CommandStatus]) -> int:
        """How many of the agent's commands are in one of ``statuses``."""
        rows = self._rows(
            "select count(*) as n from botmox.commands where tenant_id = %s and agent_id = %s"
            " and status = any(%s::text[])",
            (tenant_id, agent_id, _statuses(statuses)),
        )
        return int(rows[0]["n"])

    def modify(
        self, tenant_id: str, command_id: str, change: Callable[[Command], Command]
    ) -> Command | None:
        """Replace the command with ``change(current)``, the row locked until the unit ends."""
        current = self._one(
            Command,
            "select * from botmox.commands where tenant_id = %s and id = %s for update",
            (tenant_id, command_id),
        )
        if current is None:
            return None
        updated = change(current)
        if not isinstance(updated, Command):
            raise BadRequestError(f"a command change must return a Command, got {updated!r}")
        if updated.id != current.id or updated.tenant_id != current.tenant_id:
            raise BadRequestError("a command change must not alter the command's id or tenant")
        if updated == current:
            return current
        assignments = ", ".join(f"{name} = %({name})s" for name in _COMMAND_COLUMNS[2:])
        return self._one(
            Command,
            f"update botmox.commands set {assignments}"  # noqa: S608 - fixed column names
            " where tenant_id = %(tenant_id)s and id = %(id)s returning *",
            _command_params(updated),
        )

    def claim(self, tenant_id: str, agent_id: str, now: datetime, limit: int) -> Sequence[Command]:
        """Dispatch up to ``limit`` of the agent's oldest unexpired queued commands, oldest
        first; rows locked by a concurrent claim are skipped, never returned twice."""
        if limit <= 0:
            return []
        rows = self._rows(
            "with picked as ("
            " select id from botmox.commands"
            " where tenant_id = %(tenant)s and agent_id = %(agent)s and status = 'queued'"
            " and expires_at > %(now)s"
            " order by queued_at, id limit %(limit)s"
            " for update skip locked)"
            " update botmox.commands as c set status = 'dispatched', attempts = c.attempts + 1,"
            " dispatched_at = %(now)s, updated_at = %(now)s"
            " from picked where c.tenant_id = %(tenant)s and c.id = picked.id"
            " returning c.*",
            {"tenant": tenant_id, "agent": agent_id, "now": now, "limit": int(limit)},
        )
        claimed = [_structure(row, Command) for row in rows]
        return sorted(claimed, key=lambda command: (command.queued_at, command.id))

    def list_stale(
        self,
        now: datetime,
        *,
        dispatched_before: datetime,
        agents_seen_before: datetime,
        limit: int = 500,
    ) -> Sequence[Command]:
        """Commands of every tenant the sweeper must look at (see the port)."""
        rows = self._rows(
            "select c.* from botmox.commands as c"
            " left join botmox.agents as a on a.tenant_id = c.tenant_id and a.id = c.agent_id"
            " where c.status in ('queued', 'dispatched', 'running') and ("
            "  (c.status in ('queued', 'dispatched') and c.expires_at <= %(now)s)"
            "  or (c.status = 'dispatched' and c.dispatched_at < %(dispatched_before)s)"
            "  or (c.status = 'running' and ("
            "   c.started_at + c.execution_timeout_seconds * interval '1 second' <= %(now)s"
            "   or a.last_seen_at is null or a.last_seen_at < %(seen_before)s)))"
            " order by c.updated_at, c.id limit %(limit)s",
            {
                "now": now,
                "dispatched_before": dispatched_before,
                "seen_before": agents_seen_before,
                "limit": max(0, int(limit)),
            },
        )
        return [_structure(row, Command) for row in rows]

    def append_output(self, tenant_id: str, command_id: str, seq: int, data: str) -> bool:
        """Store chunk ``seq``; False (nothing written) when it is already stored."""
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**31:
            raise BadRequestError("output seq must be a non-negative 32-bit integer")
        if not isinstance(data, str):
            raise BadRequestError("output data must be text")
        return bool(
            self._rows(
                "insert into botmox.command_output (tenant_id, command_id, seq, data)"
                " values (%s, %s, %s, %s) on conflict do nothing returning seq",
                (tenant_id, command_id, seq, data.encode("utf-8", "surrogatepass")),
            )
        )

    def output(self, tenant_id: str, command_id: str) -> str:
        """The command's chunks in ``seq`` order, concatenated."""
        rows = self._rows(
            "select data from botmox.command_output where tenant_id = %s and command_id = %s"
            " order by seq",
            (tenant_id, command_id),
        )
        return "".join(bytes(row["data"]).decode("utf-8", "surrogatepass") for row in rows)
