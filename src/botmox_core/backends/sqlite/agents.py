"""The SQLite repositories of the agent command bus: ``agents``, ``commands`` and
``command_output``.

Like the other SQLite repositories they run inside the unit's ``BEGIN IMMEDIATE`` transaction,
so ``modify`` and ``claim`` cannot race another connection: the write lock is held from the
first statement of the unit to its end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from botmox_core.backends.sqlite.columns import CODEC, encode_timestamp, enum_value
from botmox_core.backends.sqlite.repositories import (
    Statements,
    first,
    insert_sql,
    scan_rows,
    set_sql,
    structured,
)
from botmox_core.errors import BadRequestError
from botmox_core.models import Agent, AgentStatus, Command, CommandStatus
from botmox_core.ports.modify import modify_record

__all__ = ["SqliteAgentRepository", "SqliteCommandRepository"]

_AGENT_COLUMNS = CODEC.fields(Agent)


class SqliteAgentRepository:
    """Agents in table ``agents`` (pairing-code and token hashes unique)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, agent: Agent) -> None:
        """Store a new agent; :class:`DuplicateError` when the id or a hash exists."""
        self._sql.run(insert_sql("agents", _AGENT_COLUMNS), CODEC.record(agent))

    def get(self, tenant_id: str, agent_id: str) -> Agent | None:
        """The tenant's agent, or None."""
        found = self._sql.rows(
            "SELECT * FROM agents WHERE tenant_id = ? AND id = ?", (tenant_id, agent_id)
        )
        return first(found, Agent)

    def get_by_pairing_hash(self, pairing_code_hash: str) -> Agent | None:
        """The agent with that unused pairing code hash (any tenant)."""
        found = self._sql.rows(
            "SELECT * FROM agents WHERE pairing_code_hash = ?", (pairing_code_hash,)
        )
        return first(found, Agent)

    def get_by_token_hash(self, token_hash: str) -> Agent | None:
        """The agent with that token hash (any tenant)."""
        found = self._sql.rows("SELECT * FROM agents WHERE token_hash = ?", (token_hash,))
        return first(found, Agent)

    def list(self, tenant_id: str, status: AgentStatus | None = None) -> Sequence[Agent]:
        """The tenant's agents (of one status when given), newest first."""
        if status is None:
            rows = self._sql.rows(
                "SELECT * FROM agents WHERE tenant_id = ? ORDER BY created_at DESC, id DESC",
                (tenant_id,),
            )
        else:
            rows = self._sql.rows(
                "SELECT * FROM agents WHERE tenant_id = ? AND status = ?"
                " ORDER BY created_at DESC, id DESC",
                (tenant_id, enum_value(AgentStatus, status, field="status")),
            )
        return [structured(row, Agent) for row in rows]

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Agent]:
        """The tenant's agents after the id ``after``, by id, at most ``limit``."""
        return scan_rows(self._sql, "agents", "id", Agent, tenant_id, after, limit)

    def modify(
        self, tenant_id: str, agent_id: str, change: Callable[[Agent], Agent]
    ) -> Agent | None:
        """Replace the agent with ``change(current)`` under the unit's write lock (checked by
        :func:`~botmox_core.ports.modify.modify_record`)."""
        return modify_record(self.get(tenant_id, agent_id), change, self._write)

    def _write(self, agent: Agent) -> Agent:
        found = self._sql.rows(
            f"UPDATE agents SET {set_sql(_AGENT_COLUMNS[2:])}"  # noqa: S608 - fixed names
            " WHERE tenant_id = :tenant_id AND id = :id RETURNING *",
            CODEC.record(agent),
        )
        return structured(found[0], Agent)


_COMMAND_COLUMNS = (*CODEC.fields(Command), "run_deadline_at")


def _command_record(command: Command) -> dict[str, Any]:
    """The codec's record plus ``run_deadline_at`` (start + timeout), which the sweeper's
    query compares."""
    record = CODEC.record(command)
    started = command.started_at
    deadline = (
        None if started is None else started + timedelta(seconds=command.execution_timeout_seconds)
    )
    record["run_deadline_at"] = None if deadline is None else encode_timestamp(deadline)
    return record


def _status_list(statuses: Sequence[CommandStatus]) -> list[str]:
    return [enum_value(CommandStatus, status, field="status") for status in statuses]


class SqliteCommandRepository:
    """Commands in table ``commands``, their output chunks in ``command_output``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, command: Command) -> None:
        """Store a new command; :class:`DuplicateError` for a taken id or idempotency key."""
        self._sql.run(insert_sql("commands", _COMMAND_COLUMNS), _command_record(command))

    def get(self, tenant_id: str, command_id: str) -> Command | None:
        """The tenant's command, or None."""
        found = self._sql.rows(
            "SELECT * FROM commands WHERE tenant_id = ? AND id = ?", (tenant_id, command_id)
        )
        return first(found, Command)

    def find_by_idempotency_key(self, tenant_id: str, agent_id: str, key: str) -> Command | None:
        """The agent's command enqueued with that key, or None."""
        found = self._sql.rows(
            "SELECT * FROM commands WHERE tenant_id = ? AND agent_id = ? AND idempotency_key = ?",
            (tenant_id, agent_id, key),
        )
        return first(found, Command)

    def list(
        self,
        tenant_id: str,
        *,
        agent_id: str | None = None,
        statuses: Sequence[CommandStatus] | None = None,
        limit: int = 100,
    ) -> Sequence[Command]:
        """The tenant's commands, newest first, at most ``limit``."""
        where = ["tenant_id = ?"]
        params: list[Any] = [tenant_id]
        if agent_id is not None:
            where.append("agent_id = ?")
            params.append(agent_id)
        if statuses is not None:
            values = _status_list(statuses)
            where.append(f"status IN ({', '.join('?' * len(values))})" if values else "0")
            params.extend(values)
        params.append(max(0, int(limit)))
        rows = self._sql.rows(
            f"SELECT * FROM commands WHERE {' AND '.join(where)}"  # noqa: S608
            " ORDER BY queued_at DESC, id DESC LIMIT ?",
            params,
        )
        return [structured(row, Command) for row in rows]

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Command]:
        """The tenant's commands after the id ``after``, by id, at most ``limit``."""
        return scan_rows(self._sql, "commands", "id", Command, tenant_id, after, limit)

    def count(self, tenant_id: str, agent_id: str, statuses: Sequence[CommandStatus]) -> int:
        """How many of the agent's commands are in one of ``statuses``."""
        values = _status_list(statuses)
        if not values:
            return 0
        found = self._sql.rows(
            "SELECT count(*) FROM commands WHERE tenant_id = ? AND agent_id = ?"  # noqa: S608
            f" AND status IN ({', '.join('?' * len(values))})",
            (tenant_id, agent_id, *values),
        )
        return int(found[0][0])

    def count_by_status(self) -> dict[CommandStatus, int]:
        """How many commands every tenant holds in each state."""
        found = self._sql.rows("SELECT status, count(*) FROM commands GROUP BY status", ())
        return {CommandStatus(status): int(n) for status, n in found}

    def modify(
        self, tenant_id: str, command_id: str, change: Callable[[Command], Command]
    ) -> Command | None:
        """Replace the command with ``change(current)`` under the unit's write lock (checked
        by :func:`~botmox_core.ports.modify.modify_record`)."""
        return modify_record(self.get(tenant_id, command_id), change, self._write)

    def _write(self, command: Command) -> Command:
        self._sql.run(
            f"UPDATE commands SET {set_sql(_COMMAND_COLUMNS[2:])}"  # noqa: S608 - fixed names
            " WHERE tenant_id = :tenant_id AND id = :id",
            _command_record(command),
        )
        return command

    def claim(self, tenant_id: str, agent_id: str, now: datetime, limit: int) -> Sequence[Command]:
        """Dispatch up to ``limit`` of the agent's oldest unexpired queued commands."""
        if limit <= 0:
            return []
        stamp = encode_timestamp(now)
        rows = self._sql.rows(
            "UPDATE commands SET status = 'dispatched', attempts = attempts + 1,"
            " dispatched_at = ?, updated_at = ? WHERE id IN ("
            " SELECT id FROM commands WHERE tenant_id = ? AND agent_id = ?"
            " AND status = 'queued' AND expires_at > ? ORDER BY queued_at, id LIMIT ?)"
            " RETURNING *",
            (stamp, stamp, tenant_id, agent_id, stamp, limit),
        )
        claimed = [structured(row, Command) for row in rows]
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
        stamp = encode_timestamp(now)
        rows = self._sql.rows(
            "SELECT c.* FROM commands AS c"
            " LEFT JOIN agents AS a ON a.tenant_id = c.tenant_id AND a.id = c.agent_id"
            " WHERE c.status IN ('queued', 'dispatched', 'running') AND ("
            " (c.status IN ('queued', 'dispatched') AND c.expires_at <= ?)"
            " OR (c.status = 'dispatched' AND c.dispatched_at < ?)"
            " OR (c.status = 'running' AND (c.run_deadline_at <= ?"
            "     OR a.last_seen_at IS NULL OR a.last_seen_at < ?)))"
            " ORDER BY c.updated_at LIMIT ?",
            (
                stamp,
                encode_timestamp(dispatched_before),
                stamp,
                encode_timestamp(agents_seen_before),
                max(0, int(limit)),
            ),
        )
        return [structured(row, Command) for row in rows]

    def append_output(self, tenant_id: str, command_id: str, seq: int, data: str) -> bool:
        """Store chunk ``seq``; False when it is already stored."""
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise BadRequestError("output seq must be a non-negative integer")
        if not isinstance(data, str):
            raise BadRequestError("output data must be text")
        cursor = self._sql.run(
            "INSERT INTO command_output (tenant_id, command_id, seq, data) VALUES (?, ?, ?, ?)"
            " ON CONFLICT DO NOTHING",
            (tenant_id, command_id, seq, data),
        )
        return cursor.rowcount > 0

    def output(self, tenant_id: str, command_id: str) -> str:
        """The command's chunks in ``seq`` order, concatenated."""
        rows = self._sql.rows(
            "SELECT data FROM command_output WHERE tenant_id = ? AND command_id = ? ORDER BY seq",
            (tenant_id, command_id),
        )
        return "".join(row[0] for row in rows)
