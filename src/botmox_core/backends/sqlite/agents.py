"""The SQLite repositories of the agent command bus: ``agents``, ``commands`` and
``command_output``.

Like the other SQLite repositories they run inside the unit's ``BEGIN IMMEDIATE`` transaction,
so ``modify`` and ``claim`` cannot race another connection: the write lock is held from the
first statement of the unit to its end.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from botmox_core.backends.sqlite.columns import (
    decode_json_object,
    decode_optional_timestamp,
    decode_timestamp,
    encode_enum,
    encode_json_object,
    encode_optional_timestamp,
    encode_timestamp,
)
from botmox_core.backends.sqlite.repositories import Statements, _row_decoder
from botmox_core.errors import BadRequestError
from botmox_core.models import Agent, AgentStatus, Command, CommandStatus

__all__ = ["SqliteAgentRepository", "SqliteCommandRepository"]

_AGENT_COLUMNS = (
    "id, tenant_id, name, status, created_at, pairing_code_hash, pairing_expires_at, version,"
    " platform, capabilities, public_key, token_hash, token_expires_at, registered_at,"
    " last_seen_at, revoked_at, revoke_reason"
)


def _agent_values(agent: Agent) -> tuple[Any, ...]:
    if not all(isinstance(item, str) for item in agent.capabilities):
        raise BadRequestError("agent capabilities must be strings")
    return (
        agent.id,
        agent.tenant_id,
        agent.name,
        encode_enum(AgentStatus, agent.status, field="status"),
        encode_timestamp(agent.created_at),
        agent.pairing_code_hash,
        encode_timestamp(agent.pairing_expires_at),
        agent.version,
        agent.platform,
        json.dumps(list(agent.capabilities), ensure_ascii=False),
        agent.public_key,
        agent.token_hash,
        encode_optional_timestamp(agent.token_expires_at),
        encode_optional_timestamp(agent.registered_at),
        encode_optional_timestamp(agent.last_seen_at),
        encode_optional_timestamp(agent.revoked_at),
        agent.revoke_reason,
    )


@_row_decoder
def _agent_from_row(row: sqlite3.Row) -> Agent:
    capabilities = json.loads(row["capabilities"])
    if not isinstance(capabilities, list):
        raise ValueError("capabilities is not a list")
    return Agent(
        id=row["id"],
        tenant_id=row["tenant_id"],
        name=row["name"],
        status=AgentStatus(row["status"]),
        created_at=decode_timestamp(row["created_at"]),
        pairing_code_hash=row["pairing_code_hash"],
        pairing_expires_at=decode_timestamp(row["pairing_expires_at"]),
        version=row["version"],
        platform=row["platform"],
        capabilities=tuple(str(item) for item in capabilities),
        public_key=row["public_key"],
        token_hash=row["token_hash"],
        token_expires_at=decode_optional_timestamp(row["token_expires_at"]),
        registered_at=decode_optional_timestamp(row["registered_at"]),
        last_seen_at=decode_optional_timestamp(row["last_seen_at"]),
        revoked_at=decode_optional_timestamp(row["revoked_at"]),
        revoke_reason=row["revoke_reason"],
    )


class SqliteAgentRepository:
    """Agents in table ``agents`` (pairing-code and token hashes unique)."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, agent: Agent) -> None:
        """Store a new agent; :class:`DuplicateError` when the id or a hash exists."""
        self._sql.run(
            f"INSERT INTO agents ({_AGENT_COLUMNS}) VALUES ({', '.join('?' * 17)})",  # noqa: S608
            _agent_values(agent),
        )

    def get(self, tenant_id: str, agent_id: str) -> Agent | None:
        """The tenant's agent, or None."""
        found = self._sql.rows(
            "SELECT * FROM agents WHERE tenant_id = ? AND id = ?", (tenant_id, agent_id)
        )
        return _agent_from_row(found[0]) if found else None

    def get_by_pairing_hash(self, pairing_code_hash: str) -> Agent | None:
        """The agent with that unused pairing code hash (any tenant)."""
        found = self._sql.rows(
            "SELECT * FROM agents WHERE pairing_code_hash = ?", (pairing_code_hash,)
        )
        return _agent_from_row(found[0]) if found else None

    def get_by_token_hash(self, token_hash: str) -> Agent | None:
        """The agent with that token hash (any tenant)."""
        found = self._sql.rows("SELECT * FROM agents WHERE token_hash = ?", (token_hash,))
        return _agent_from_row(found[0]) if found else None

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
                (tenant_id, encode_enum(AgentStatus, status, field="status")),
            )
        return [_agent_from_row(row) for row in rows]

    def modify(
        self, tenant_id: str, agent_id: str, change: Callable[[Agent], Agent]
    ) -> Agent | None:
        """Replace the agent with ``change(current)`` under the unit's write lock."""
        current = self.get(tenant_id, agent_id)
        if current is None:
            return None
        updated = change(current)
        if not isinstance(updated, Agent):
            raise BadRequestError(f"an agent change must return an Agent, got {updated!r}")
        if updated.id != current.id or updated.tenant_id != current.tenant_id:
            raise BadRequestError("an agent change must not alter the agent's id or tenant")
        if updated == current:
            return current
        values = _agent_values(updated)
        columns = _AGENT_COLUMNS.split(", ")[2:]
        assignments = ", ".join(f"{column.strip()} = ?" for column in columns)
        found = self._sql.rows(
            f"UPDATE agents SET {assignments} WHERE tenant_id = ? AND id = ? RETURNING *",  # noqa: S608
            (*values[2:], tenant_id, agent_id),
        )
        return _agent_from_row(found[0])


_COMMAND_COLUMNS = (
    "id, tenant_id, agent_id, command_type, payload, status, queued_at, expires_at, updated_at,"
    " execution_timeout_seconds, run_deadline_at, idempotency_key, attempts, max_attempts,"
    " dispatched_at, started_at, finished_at, cancel_requested_at, result, error, output_bytes,"
    " created_by"
)


def _command_values(command: Command) -> tuple[Any, ...]:
    deadline = (
        command.started_at + timedelta(seconds=command.execution_timeout_seconds)
        if command.started_at is not None
        else None
    )
    return (
        command.id,
        command.tenant_id,
        command.agent_id,
        command.command_type,
        encode_json_object(command.payload, field="payload"),
        encode_enum(CommandStatus, command.status, field="status"),
        encode_timestamp(command.queued_at),
        encode_timestamp(command.expires_at),
        encode_timestamp(command.updated_at),
        command.execution_timeout_seconds,
        encode_optional_timestamp(deadline),
        command.idempotency_key,
        command.attempts,
        command.max_attempts,
        encode_optional_timestamp(command.dispatched_at),
        encode_optional_timestamp(command.started_at),
        encode_optional_timestamp(command.finished_at),
        encode_optional_timestamp(command.cancel_requested_at),
        None if command.result is None else encode_json_object(command.result, field="result"),
        command.error,
        command.output_bytes,
        command.created_by,
    )


@_row_decoder
def _command_from_row(row: sqlite3.Row) -> Command:
    return Command(
        id=row["id"],
        tenant_id=row["tenant_id"],
        agent_id=row["agent_id"],
        command_type=row["command_type"],
        payload=decode_json_object(row["payload"]),
        status=CommandStatus(row["status"]),
        queued_at=decode_timestamp(row["queued_at"]),
        expires_at=decode_timestamp(row["expires_at"]),
        updated_at=decode_timestamp(row["updated_at"]),
        execution_timeout_seconds=int(row["execution_timeout_seconds"]),
        idempotency_key=row["idempotency_key"],
        attempts=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        dispatched_at=decode_optional_timestamp(row["dispatched_at"]),
        started_at=decode_optional_timestamp(row["started_at"]),
        finished_at=decode_optional_timestamp(row["finished_at"]),
        cancel_requested_at=decode_optional_timestamp(row["cancel_requested_at"]),
        result=None if row["result"] is None else decode_json_object(row["result"]),
        error=row["error"],
        output_bytes=int(row["output_bytes"]),
        created_by=row["created_by"],
    )


def _status_list(statuses: Sequence[CommandStatus]) -> list[str]:
    return [encode_enum(CommandStatus, status, field="status") for status in statuses]


class SqliteCommandRepository:
    """Commands in table ``commands``, their output chunks in ``command_output``."""

    def __init__(self, statements: Statements) -> None:
        self._sql = statements

    def add(self, command: Command) -> None:
        """Store a new command; :class:`DuplicateError` for a taken id or idempotency key."""
        self._sql.run(
            f"INSERT INTO commands ({_COMMAND_COLUMNS}) VALUES ({', '.join('?' * 22)})",  # noqa: S608
            _command_values(command),
        )

    def get(self, tenant_id: str, command_id: str) -> Command | None:
        """The tenant's command, or None."""
        found = self._sql.rows(
            "SELECT * FROM commands WHERE tenant_id = ? AND id = ?", (tenant_id, command_id)
        )
        return _command_from_row(found[0]) if found else None

    def find_by_idempotency_key(self, tenant_id: str, agent_id: str, key: str) -> Command | None:
        """The agent's command enqueued with that key, or None."""
        found = self._sql.rows(
            "SELECT * FROM commands WHERE tenant_id = ? AND agent_id = ? AND idempotency_key = ?",
            (tenant_id, agent_id, key),
        )
        return _command_from_row(found[0]) if found else None

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
        return [_command_from_row(row) for row in rows]

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

    def modify(
        self, tenant_id: str, command_id: str, change: Callable[[Command], Command]
    ) -> Command | None:
        """Replace the command with ``change(current)`` under the unit's write lock."""
        current = self.get(tenant_id, command_id)
        if current is None:
            return None
        updated = change(current)
        if not isinstance(updated, Command):
            raise BadRequestError(f"a command change must return a Command, got {updated!r}")
        if updated.id != current.id or updated.tenant_id != current.tenant_id:
            raise BadRequestError("a command change must not alter the command's id or tenant")
        if updated == current:
            return current
        self._write(updated)
        return updated

    def _write(self, command: Command) -> None:
        values = _command_values(command)
        columns = [column.strip() for column in _COMMAND_COLUMNS.split(",")][2:]
        assignments = ", ".join(f"{column} = ?" for column in columns)
        self._sql.run(
            f"UPDATE commands SET {assignments} WHERE tenant_id = ? AND id = ?",  # noqa: S608
            (*values[2:], command.tenant_id, command.id),
        )

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
        claimed = [_command_from_row(row) for row in rows]
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
        return [_command_from_row(row) for row in rows]

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
