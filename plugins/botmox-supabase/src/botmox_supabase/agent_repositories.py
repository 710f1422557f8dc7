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

from botmox_core.errors import BadRequestError
from botmox_core.models import Agent, AgentStatus, Command, CommandStatus
from botmox_core.ports.modify import modify_record
from botmox_core.records import enum_value
from botmox_supabase.repositories import CODEC, _Repository, insert_sql, set_sql

__all__ = ["PostgresAgentRepository", "PostgresCommandRepository"]

_AGENT_COLUMNS = CODEC.fields(Agent)
_COMMAND_COLUMNS = CODEC.fields(Command)
_UNFINISHED = ("queued", "dispatched", "running")


def _record(value: Any, model: type[Any]) -> dict[str, Any]:
    if not isinstance(value, model):
        raise BadRequestError(f"expected {model.__name__}, got {type(value).__name__}")
    return CODEC.record(value)


def _statuses(statuses: Sequence[CommandStatus]) -> list[str]:
    return [enum_value(CommandStatus, status, field="command status") for status in statuses]


class PostgresAgentRepository(_Repository):
    """Agents in ``botmox.agents`` (pairing-code and token hashes unique across tenants)."""

    _action = "agent"

    def add(self, agent: Agent) -> None:
        """Store a new agent; :class:`DuplicateError` when the id or a hash exists."""
        self._count(insert_sql("botmox.agents", _AGENT_COLUMNS), _record(agent, Agent))

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
        wanted = None if status is None else enum_value(AgentStatus, status, field="agent status")
        rows = self._rows(
            "select * from botmox.agents where tenant_id = %s"
            " and (%s::text is null or status = %s) order by created_at desc, id desc",
            (tenant_id, wanted, wanted),
        )
        return [CODEC.value(row, Agent) for row in rows]

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Agent]:
        """The tenant's agents after the id ``after``, by id (``COLLATE "C"``)."""
        return self._scan(Agent, "botmox.agents", "id", tenant_id, after, limit)

    def modify(
        self, tenant_id: str, agent_id: str, change: Callable[[Agent], Agent]
    ) -> Agent | None:
        """Replace the agent with ``change(current)``, the row locked until the unit ends."""
        current = self._one(
            Agent,
            "select * from botmox.agents where tenant_id = %s and id = %s for update",
            (tenant_id, agent_id),
        )
        return modify_record(current, change, self._write)

    def _write(self, agent: Agent) -> Agent:
        stored = self._one(
            Agent,
            f"update botmox.agents set {set_sql(_AGENT_COLUMNS[2:])}"  # noqa: S608 - fixed names
            " where tenant_id = %(tenant_id)s and id = %(id)s returning *",
            CODEC.record(agent),
        )
        assert stored is not None  # the row is locked by this transaction
        return stored


class PostgresCommandRepository(_Repository):
    """Commands in ``botmox.commands``, their output chunks in ``botmox.command_output``."""

    _action = "command"

    def add(self, command: Command) -> None:
        """Store a new command; :class:`DuplicateError` for a taken id or idempotency key."""
        self._count(insert_sql("botmox.commands", _COMMAND_COLUMNS), _record(command, Command))

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
        return [CODEC.value(row, Command) for row in rows]

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Command]:
        """The tenant's commands after the id ``after``, by id (``COLLATE "C"``)."""
        return self._scan(Command, "botmox.commands", "id", tenant_id, after, limit)

    def count(self, tenant_id: str, agent_id: str, statuses: Sequence[CommandStatus]) -> int:
        """How many of the agent's commands are in one of ``statuses``."""
        rows = self._rows(
            "select count(*) as n from botmox.commands where tenant_id = %s and agent_id = %s"
            " and status = any(%s::text[])",
            (tenant_id, agent_id, _statuses(statuses)),
        )
        return int(rows[0]["n"])

    def count_by_status(self) -> dict[CommandStatus, int]:
        """How many commands every tenant holds in each state."""
        rows = self._rows("select status, count(*) as n from botmox.commands group by status", ())
        return {CommandStatus(row["status"]): int(row["n"]) for row in rows}

    def modify(
        self, tenant_id: str, command_id: str, change: Callable[[Command], Command]
    ) -> Command | None:
        """Replace the command with ``change(current)``, the row locked until the unit ends."""
        current = self._one(
            Command,
            "select * from botmox.commands where tenant_id = %s and id = %s for update",
            (tenant_id, command_id),
        )
        return modify_record(current, change, self._write)

    def _write(self, command: Command) -> Command:
        stored = self._one(
            Command,
            f"update botmox.commands set {set_sql(_COMMAND_COLUMNS[2:])}"  # noqa: S608
            " where tenant_id = %(tenant_id)s and id = %(id)s returning *",
            CODEC.record(command),
        )
        assert stored is not None  # the row is locked by this transaction
        return stored

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
        claimed = [CODEC.value(row, Command) for row in rows]
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
        return [CODEC.value(row, Command) for row in rows]

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
