"""The command queue: enqueue, delivery, acknowledgement, output, results, cancellation and the
sweeper that enforces the timeouts.

States and the only legal moves between them (:data:`TRANSITIONS`)::

    queued ──claim──▶ dispatched ──ack──▶ running ──result──▶ succeeded | failed
       │                 │  ▲                │
       │                 │  └─ack timeout────┤ (re-queued, bounded attempts, then failed)
       │                 │                   ├─hand back (agent shutdown)──▶ queued
       ├─▶ expired ◀─────┘ (delivery timeout)├─▶ timed_out (execution timeout)
       ├─▶ cancelled ◀── cancel_ack ─────────┤
       └─▶ failed (agent revoked) ◀──────────┘ (agent revoked / lost)

* **Delivery timeout** ``expires_in_seconds`` (10–3600, default 300): a command still queued or
  dispatched at ``expires_at`` is ``expired``.
* **Acknowledgement timeout** (``ack_timeout_seconds``, default 30): a dispatched command the
  agent has not acknowledged is re-queued; after ``max_attempts`` (5) dispatches it is ``failed``
  with a dead-letter reason.
* **Execution timeout** ``execution_timeout_seconds`` (default 3600): running longer →
  ``timed_out``. An agent not seen for the offline window while running a command → ``failed``
  (``agent lost``), so nothing stays ``running`` forever.
* **Output** is stored in chunks numbered by ``seq`` (a resent chunk is ignored), without
  truncation up to :data:`MAX_OUTPUT_BYTES` per command; a chunk beyond it is refused with 413
  ``OUTPUT_LIMIT_EXCEEDED``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from botmox_core.errors import (
    AgentNotFoundError,
    AgentOfflineError,
    BadRequestError,
    CommandNotFoundError,
    CommandOutputLimitError,
    DuplicateError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InvalidCommandTransitionError,
)
from botmox_core.models import AgentStatus, Command, CommandStatus, Role
from botmox_core.ports.agents import AgentUnitOfWork
from botmox_core.services import validation as check
from botmox_core.services.agents import AgentService
from botmox_core.services.principal import Clock, Principal, utcnow

__all__ = [
    "MAX_OUTPUT_BYTES",
    "PROXMOX_ACTIONS",
    "SYNCTHING_ACTIONS",
    "TRANSITIONS",
    "CommandService",
    "SweepReport",
    "command_view",
    "fail_unfinished",
    "transition",
]

S = CommandStatus

#: The legal state changes; everything else is 409 ``INVALID_COMMAND_TRANSITION``.
TRANSITIONS: dict[CommandStatus, frozenset[CommandStatus]] = {
    S.QUEUED: frozenset({S.DISPATCHED, S.EXPIRED, S.CANCELLED, S.FAILED}),
    S.DISPATCHED: frozenset({S.RUNNING, S.QUEUED, S.SUCCEEDED, S.FAILED, S.EXPIRED, S.CANCELLED}),
    S.RUNNING: frozenset({S.SUCCEEDED, S.FAILED, S.TIMED_OUT, S.CANCELLED, S.QUEUED}),
    S.SUCCEEDED: frozenset(),
    S.FAILED: frozenset(),
    S.EXPIRED: frozenset(),
    S.CANCELLED: frozenset(),
    S.TIMED_OUT: frozenset(),
}

UNFINISHED = (S.QUEUED, S.DISPATCHED, S.RUNNING)
IN_FLIGHT = (S.DISPATCHED, S.RUNNING)

#: Stored output per command (UTF-8 bytes of all chunks).
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
#: One output chunk.
MAX_CHUNK_BYTES = 256 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_RESULT_BYTES = 256 * 1024
EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT = 10, 3600, 300
EXECUTION_TIMEOUT_MAX, EXECUTION_TIMEOUT_DEFAULT = 86400, 3600
COMMAND_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}(\.[a-z0-9][a-z0-9_-]{0,62}){0,4}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

#: Proxmox actions the agents know (``POST /api/v1/vm-ops/proxmox/{action}``).
PROXMOX_ACTIONS = frozenset(
    {
        "start",
        "stop",
        "shutdown",
        "reset",
        "suspend",
        "resume",
        "clone",
        "delete",
        "list",
        "status",
        "config-get",
        "config-update",
        "resize-disk",
        "task-status",
        "wait-task",
    }
)
#: Syncthing actions (``POST /api/v1/vm-ops/syncthing/{action}``).
SYNCTHING_ACTIONS = frozenset(
    {
        "status",
        "config-get",
        "config-update",
        "scan",
        "pause",
        "resume",
        "restart",
        "add-device",
        "remove-device",
        "add-folder",
        "remove-folder",
    }
)


def transition(command: Command, to: CommandStatus, now: datetime, **fields: Any) -> Command:
    """``command`` moved to ``to`` (with ``fields`` set); 409 ``INVALID_COMMAND_TRANSITION``
    when the table does not allow it."""
    if to not in TRANSITIONS[command.status]:
        raise InvalidCommandTransitionError(
            f"command {command.id} is {command.status.value}; it cannot become {to.value}",
            details={"command_id": command.id, "status": command.status.value, "to": to.value},
        )
    changes: dict[str, Any] = {"status": to, "updated_at": now, **fields}
    if to.is_final and "finished_at" not in fields:
        changes["finished_at"] = now
    if to is S.RUNNING and command.started_at is None:
        changes.setdefault("started_at", now)
    if to is S.QUEUED:
        changes.setdefault("dispatched_at", None)
        changes.setdefault("started_at", None)
    return attrs.evolve(command, **changes)


def command_view(command: Command, output: str | None = None) -> dict[str, Any]:
    """The public JSON of a command (with ``output`` when given)."""
    view: dict[str, Any] = {
        "id": command.id,
        "agent_id": command.agent_id,
        "command_type": command.command_type,
        "payload": command.payload,
        "status": command.status.value,
        "queued_at": command.queued_at,
        "expires_at": command.expires_at,
        "updated_at": command.updated_at,
        "dispatched_at": command.dispatched_at,
        "started_at": command.started_at,
        "finished_at": command.finished_at,
        "cancel_requested_at": command.cancel_requested_at,
        "execution_timeout_seconds": command.execution_timeout_seconds,
        "attempts": command.attempts,
        "max_attempts": command.max_attempts,
        "idempotency_key": command.idempotency_key,
        "result": command.result,
        "error": command.error,
        "output_bytes": command.output_bytes,
    }
    if output is not None:
        view["output"] = output
    return view


def fail_unfinished(
    uow: AgentUnitOfWork, tenant_id: str, agent_id: str, now: datetime, reason: str
) -> Sequence[Command]:
    """Fail every queued, dispatched or running command of the agent (in ``uow``)."""
    failed: list[Command] = []
    while True:
        batch = uow.commands.list(tenant_id, agent_id=agent_id, statuses=UNFINISHED, limit=500)
        if not batch:
            return failed
        for command in batch:
            done = uow.commands.modify(
                tenant_id,
                command.id,
                lambda c: (
                    transition(c, S.FAILED, now, error=reason) if c.status in UNFINISHED else c
                ),
            )
            if done is not None:
                failed.append(done)


@attrs.frozen
class SweepReport:
    """What one sweep did.

    Attributes:
        expired, requeued, dead_lettered, timed_out, lost: command ids per outcome.
        wake: (tenant, agent) pairs that got re-queued commands.
        settled: (tenant, agent, command id) of every command the sweep finished while its
            agent may still hold it (everything but the re-queued ones): the agent is told to
            stop (the ``abort`` frame).
    """

    expired: list[str] = attrs.Factory(list)
    requeued: list[str] = attrs.Factory(list)
    dead_lettered: list[str] = attrs.Factory(list)
    timed_out: list[str] = attrs.Factory(list)
    lost: list[str] = attrs.Factory(list)
    wake: set[tuple[str, str]] = attrs.Factory(set)
    settled: set[tuple[str, str, str]] = attrs.Factory(set)

    @property
    def changed(self) -> int:
        return sum(
            len(ids)
            for ids in (self.expired, self.requeued, self.dead_lettered, self.timed_out, self.lost)
        )


class CommandService:
    """Enqueues commands and moves them through their states."""

    def __init__(
        self,
        agents: AgentService,
        *,
        ack_timeout_seconds: int = 30,
        max_attempts: int = 5,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        clock: Clock = utcnow,
    ) -> None:
        self._agents = agents
        self.ack_timeout = timedelta(seconds=ack_timeout_seconds)
        self.max_attempts = max_attempts
        self.max_output_bytes = max_output_bytes
        self._clock = clock

    # -- operators ----------------------------------------------------------------------------

    def enqueue(
        self,
        principal: Principal,
        *,
        agent_id: Any,
        command_type: Any,
        payload: Any = None,
        expires_in_seconds: Any = None,
        execution_timeout_seconds: Any = None,
        idempotency_key: Any = None,
        connected: Callable[[str], bool] = lambda agent_id: False,
    ) -> tuple[Command, bool]:
        """Queue a command for an agent of the caller's tenant; ``(command, created)``.

        The same ``idempotency_key`` for the same agent returns the existing command
        (``created`` False) — 409 ``IDEMPOTENCY_KEY_REUSED`` if its type or payload differ.
        A new command needs an active agent with a live connection (``connected``) or a
        heartbeat within the offline window, else 409 ``AGENT_OFFLINE``.
        """
        if principal.role not in (Role.API, Role.ADMIN, Role.INFRA):
            raise ForbiddenError("agents cannot enqueue commands")
        if not isinstance(agent_id, str) or not agent_id or len(agent_id) > 64:
            raise _field("agent_id", "required")
        kind = _command_type(command_type)
        body = _json_object(payload, "payload", MAX_PAYLOAD_BYTES)
        expires_in = _bounded_int(
            expires_in_seconds, "expires_in_seconds", EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT
        )
        run_limit = _bounded_int(
            execution_timeout_seconds,
            "execution_timeout_seconds",
            1,
            EXECUTION_TIMEOUT_MAX,
            EXECUTION_TIMEOUT_DEFAULT,
        )
        key = None
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not IDEMPOTENCY_KEY_RE.fullmatch(
                idempotency_key
            ):
                raise _field("idempotency_key", "must be 1-128 of A-Z a-z 0-9 . _ : @ / + = -")
            key = idempotency_key
        tenant = principal.tenant_id
        now = self._clock()
        with self._agents.unit() as uow:
            if key is not None:
                existing = uow.commands.find_by_idempotency_key(tenant, agent_id, key)
                if existing is not None:
                    return _same_request(existing, kind, body), False
            agent = uow.agents.get(tenant, agent_id)
            if agent is None:
                raise AgentNotFoundError("no such agent")
            if agent.status is not AgentStatus.ACTIVE:
                raise AgentOfflineError(f"the agent is {agent.status.value}")
            if not connected(agent.id) and not self._agents.is_recently_seen(agent, now):
                seconds = int(self._agents.offline_after.total_seconds())
                raise AgentOfflineError(
                    f"the agent has no live connection and no heartbeat within {seconds} s"
                )
            command = Command(
                id="cmd_" + secrets.token_hex(16),
                tenant_id=tenant,
                agent_id=agent_id,
                command_type=kind,
                status=S.QUEUED,
                queued_at=now,
                expires_at=now + timedelta(seconds=expires_in),
                updated_at=now,
                payload=body,
                execution_timeout_seconds=run_limit,
                idempotency_key=key,
                max_attempts=self.max_attempts,
                created_by=principal.subject,
            )
            try:
                uow.commands.add(command)
                uow.commit()
            except DuplicateError:
                if key is None:
                    raise
                uow.rollback()
                existing = uow.commands.find_by_idempotency_key(tenant, agent_id, key)
                if existing is None:
                    raise
                return _same_request(existing, kind, body), False
        return command, True

    def get(
        self, principal: Principal, command_id: Any, *, with_output: bool = True
    ) -> tuple[Command, str | None]:
        """The command (and its output) of the caller's tenant; an agent sees only its own."""
        with self._agents.unit() as uow:
            command = self._visible(uow, principal, command_id)
            output = uow.commands.output(principal.tenant_id, command.id) if with_output else None
        return command, output

    def list(
        self, principal: Principal, *, agent_id: Any = None, status: Any = None, limit: int = 100
    ) -> Sequence[Command]:
        """The tenant's commands, newest first (≤ 100); agents see only their own."""
        statuses = None
        if status is not None:
            statuses = [check.choice(status, "status", CommandStatus)]
        if not 1 <= limit <= 100:
            raise _field("limit", "must be from 1 to 100")
        if principal.role is Role.AGENT:
            if agent_id is not None and agent_id != principal.subject:
                return []
            agent_id = principal.subject
        with self._agents.unit() as uow:
            return uow.commands.list(
                principal.tenant_id, agent_id=agent_id, statuses=statuses, limit=limit
            )

    def request_cancel(self, principal: Principal, command_id: Any) -> Command:
        """Cancel (operators): a queued command is cancelled at once; a dispatched or running
        one gets ``cancel_requested_at`` and is cancelled when the agent acknowledges."""
        principal.require(Role.API, Role.ADMIN, Role.INFRA)
        now = self._clock()

        def cancel(current: Command) -> Command:
            if current.status is S.QUEUED:
                return transition(current, S.CANCELLED, now, error="cancelled before delivery")
            if current.status in IN_FLIGHT:
                if current.cancel_requested_at is not None:
                    return current
                return attrs.evolve(current, cancel_requested_at=now, updated_at=now)
            raise InvalidCommandTransitionError(
                f"command {current.id} is {current.status.value}; it cannot be cancelled",
                details={"command_id": current.id, "status": current.status.value},
            )

        with self._agents.unit() as uow:
            command = self._visible(uow, principal, command_id)
            done = uow.commands.modify(principal.tenant_id, command.id, cancel)
            uow.commit()
        assert done is not None
        return done

    # -- agents -------------------------------------------------------------------------------

    def claim(
        self, tenant_id: str, agent_id: str, window: int, limit: int | None = None
    ) -> Sequence[Command]:
        """Dispatch queued commands to the agent while fewer than ``window`` are in flight
        (at most ``limit`` at once)."""
        now = self._clock()
        with self._agents.unit() as uow:
            agent = uow.agents.get(tenant_id, agent_id)
            if agent is None or agent.status is not AgentStatus.ACTIVE:
                return []
            free = window - uow.commands.count(tenant_id, agent_id, IN_FLIGHT)
            if limit is not None:
                free = min(free, limit)
            claimed = list(uow.commands.claim(tenant_id, agent_id, now, free)) if free > 0 else []
            uow.commit()
        return claimed

    def in_flight(self, tenant_id: str, agent_id: str) -> Sequence[Command]:
        """The agent's dispatched and running commands, oldest first (re-sent on reconnect)."""
        with self._agents.unit() as uow:
            found = uow.commands.list(tenant_id, agent_id=agent_id, statuses=IN_FLIGHT, limit=1000)
        return sorted(found, key=lambda c: (c.queued_at, c.id))

    def settled(
        self, tenant_id: str, agent_id: str, command_ids: Sequence[str]
    ) -> Sequence[Command]:
        """Those of ``command_ids`` (the agent's own) that are in a final state: the server
        settled them, so the agent must stop running them (at most 1000 ids are looked at)."""
        found: list[Command] = []
        with self._agents.unit() as uow:
            for command_id in list(dict.fromkeys(command_ids))[:1000]:
                if not isinstance(command_id, str) or len(command_id) > 64:
                    continue
                command = uow.commands.get(tenant_id, command_id)
                if command is not None and command.agent_id == agent_id and command.status.is_final:
                    found.append(command)
        return found

    def ack(self, tenant_id: str, agent_id: str, command_id: Any) -> Command:
        """The agent accepted the command: dispatched → running (again: no change)."""
        now = self._clock()

        def accept(current: Command) -> Command:
            if current.status is S.RUNNING:
                return current
            return transition(current, S.RUNNING, now)

        return self._agent_modify(tenant_id, agent_id, command_id, accept)

    def finish(
        self,
        tenant_id: str,
        agent_id: str,
        command_id: Any,
        *,
        status: Any,
        result: Any = None,
        error: Any = None,
    ) -> Command:
        """The agent's result: succeeded or failed. Sending the same final status again is
        a no-op (results are resent after reconnects)."""
        final = check.choice(status, "status", CommandStatus)
        if final not in (S.SUCCEEDED, S.FAILED):
            raise _field("status", "a result must be succeeded or failed")
        body = None if result is None else _json_object(result, "result", MAX_RESULT_BYTES)
        message = check.optional_text(error, "error", 4096) if error is not None else None
        now = self._clock()

        def complete(current: Command) -> Command:
            if current.status is final:
                return current
            return transition(current, final, now, result=body, error=message)

        return self._agent_modify(tenant_id, agent_id, command_id, complete)

    def cancel_ack(self, tenant_id: str, agent_id: str, command_id: Any) -> Command:
        """The agent stopped the command after a cancel request → cancelled."""
        now = self._clock()

        def cancelled(current: Command) -> Command:
            if current.status is S.CANCELLED:
                return current
            if current.cancel_requested_at is None:
                raise InvalidCommandTransitionError(
                    f"command {current.id} has no cancel request",
                    details={"command_id": current.id, "status": current.status.value},
                )
            return transition(current, S.CANCELLED, now, error="cancelled")

        return self._agent_modify(tenant_id, agent_id, command_id, cancelled)

    def hand_back(self, tenant_id: str, agent_id: str, command_id: Any) -> Command:
        """The agent gives a command back unfinished (graceful shutdown) → queued again."""
        now = self._clock()

        def requeue(current: Command) -> Command:
            if current.status is S.QUEUED:
                return current
            return transition(current, S.QUEUED, now)

        return self._agent_modify(tenant_id, agent_id, command_id, requeue)

    def append_output(
        self, tenant_id: str, agent_id: str, command_id: Any, seq: Any, data: Any
    ) -> bool:
        """Store output chunk ``seq``; False when it was already stored. 413
        ``OUTPUT_LIMIT_EXCEEDED`` past the per-command limit (the chunk is not stored)."""
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**31:
            raise _field("seq", "must be a non-negative integer")
        if not isinstance(data, str):
            raise _field("data", "must be text")
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > MAX_CHUNK_BYTES:
            raise _field("data", f"a chunk holds at most {MAX_CHUNK_BYTES} bytes")
        with self._agents.unit() as uow:
            command = self._own(uow, tenant_id, agent_id, command_id)
            if command.status.is_final:
                raise InvalidCommandTransitionError(
                    f"command {command.id} is {command.status.value}; its output is closed",
                    details={"command_id": command.id, "status": command.status.value},
                )
            if command.status is S.QUEUED:
                raise InvalidCommandTransitionError(
                    f"command {command.id} was not delivered; it has no output yet",
                    details={"command_id": command.id, "status": command.status.value},
                )
            if command.output_bytes + size > self.max_output_bytes:
                # a resent chunk at the limit is still a harmless duplicate; a new one is refused
                # (raising leaves the unit uncommitted, so the probe insert is rolled back)
                if not uow.commands.append_output(tenant_id, command.id, seq, data):
                    return False
                raise CommandOutputLimitError(
                    f"command output is limited to {self.max_output_bytes} bytes",
                    details={"command_id": command.id, "limit": self.max_output_bytes},
                )
            stored = uow.commands.append_output(tenant_id, command.id, seq, data)
            if stored:
                uow.commands.modify(
                    tenant_id,
                    command.id,
                    lambda c: attrs.evolve(c, output_bytes=c.output_bytes + size),
                )
            uow.commit()
        return stored

    def update_by_agent(
        self,
        principal: Principal,
        command_id: Any,
        *,
        status: Any = None,
        result: Any = None,
        error: Any = None,
        output: Any = None,
    ) -> Command:
        """``PATCH /vm-ops/commands/{id}`` by the agent: optional output chunks
        (``[{seq, data}]``), then a status: ``running`` (ack), ``succeeded``/``failed``
        (result), ``cancelled`` (cancel acknowledgement) or ``queued`` (hand back)."""
        if principal.role is not Role.AGENT or principal.subject is None:
            raise ForbiddenError("only the command's agent updates its status")
        tenant, agent_id = principal.tenant_id, principal.subject
        if output is not None:
            if not isinstance(output, list) or len(output) > 64:
                raise _field("output", "must be a list of at most 64 {seq, data} chunks")
            for chunk in output:
                if not isinstance(chunk, dict):
                    raise _field("output", "chunks are {seq, data} objects")
                self.append_output(
                    tenant, agent_id, command_id, chunk.get("seq"), chunk.get("data")
                )
        if status is None:
            with self._agents.unit() as uow:
                return self._own(uow, tenant, agent_id, command_id)
        wanted = check.choice(status, "status", CommandStatus)
        if wanted is S.RUNNING:
            return self.ack(tenant, agent_id, command_id)
        if wanted in (S.SUCCEEDED, S.FAILED):
            return self.finish(
                tenant, agent_id, command_id, status=wanted, result=result, error=error
            )
        if wanted is S.CANCELLED:
            return self.cancel_ack(tenant, agent_id, command_id)
        if wanted is S.QUEUED:
            return self.hand_back(tenant, agent_id, command_id)
        raise InvalidCommandTransitionError(
            f"an agent cannot set status {wanted.value}",
            details={"command_id": str(command_id), "to": wanted.value},
        )

    # -- sweeper ------------------------------------------------------------------------------

    def sweep(self, limit: int = 500) -> SweepReport:
        """Enforce delivery, acknowledgement and execution timeouts across all tenants."""
        report = SweepReport()
        if not self._agents.supported:
            return report
        now = self._clock()
        dispatched_before = now - self.ack_timeout
        seen_before = now - self._agents.offline_after
        with self._agents.unit() as uow:
            stale = uow.commands.list_stale(
                now,
                dispatched_before=dispatched_before,
                agents_seen_before=seen_before,
                limit=limit,
            )
            for found in stale:
                agent = uow.agents.get(found.tenant_id, found.agent_id)
                agent_lost = (
                    agent is None
                    or agent.last_seen_at is None
                    or (agent.last_seen_at < seen_before)
                )
                outcome: dict[str, str] = {}

                def settle(
                    current: Command,
                    agent_lost: bool = agent_lost,
                    outcome: dict[str, str] = outcome,
                ) -> Command:
                    outcome.clear()
                    if current.status in (S.QUEUED, S.DISPATCHED) and current.expires_at <= now:
                        outcome["kind"] = "expired"
                        return transition(
                            current, S.EXPIRED, now, error="delivery timeout: not delivered in time"
                        )
                    if (
                        current.status is S.DISPATCHED
                        and current.dispatched_at is not None
                        and current.dispatched_at < dispatched_before
                    ):
                        if current.attempts >= current.max_attempts:
                            outcome["kind"] = "dead_lettered"
                            return transition(
                                current,
                                S.FAILED,
                                now,
                                error=f"dead letter: not acknowledged after {current.attempts}"
                                " deliveries",
                            )
                        outcome["kind"] = "requeued"
                        return transition(current, S.QUEUED, now)
                    if current.status is S.RUNNING and current.started_at is not None:
                        deadline = current.started_at + timedelta(
                            seconds=current.execution_timeout_seconds
                        )
                        if deadline <= now:
                            outcome["kind"] = "timed_out"
                            return transition(current, S.TIMED_OUT, now, error="execution timeout")
                        if agent_lost:
                            outcome["kind"] = "lost"
                            return transition(
                                current,
                                S.FAILED,
                                now,
                                error="agent lost: not seen while running the command",
                            )
                    return current

                uow.commands.modify(found.tenant_id, found.id, settle)
                kind = outcome.get("kind")
                if kind is not None:
                    getattr(report, kind).append(found.id)
                    if kind == "requeued":
                        report.wake.add((found.tenant_id, found.agent_id))
                    else:
                        report.settled.add((found.tenant_id, found.agent_id, found.id))
            uow.commit()
        return report

    # -- helpers ------------------------------------------------------------------------------

    def _visible(self, uow: AgentUnitOfWork, principal: Principal, command_id: Any) -> Command:
        if not isinstance(command_id, str) or len(command_id) > 64:
            raise CommandNotFoundError("no such command")
        command = uow.commands.get(principal.tenant_id, command_id)
        if command is None or (
            principal.role is Role.AGENT and command.agent_id != principal.subject
        ):
            raise CommandNotFoundError("no such command")
        return command

    @staticmethod
    def _own(uow: AgentUnitOfWork, tenant_id: str, agent_id: str, command_id: Any) -> Command:
        if not isinstance(command_id, str) or len(command_id) > 64:
            raise CommandNotFoundError("no such command")
        command = uow.commands.get(tenant_id, command_id)
        if command is None or command.agent_id != agent_id:
            raise CommandNotFoundError("no such command")
        return command

    def _agent_modify(
        self,
        tenant_id: str,
        agent_id: str,
        command_id: Any,
        change: Callable[[Command], Command],
    ) -> Command:
        with self._agents.unit() as uow:
            command = self._own(uow, tenant_id, agent_id, command_id)
            done = uow.commands.modify(tenant_id, command.id, change)
            uow.commit()
        assert done is not None
        return done


def _field(field: str, message: str) -> BadRequestError:
    return BadRequestError(f"{field}: {message}", details=[{"field": field, "message": message}])


def _command_type(value: Any) -> str:
    if not isinstance(value, str) or not COMMAND_TYPE_RE.fullmatch(value):
        raise _field(
            "command_type", "must be dotted lower-case names, e.g. proxmox.start (≤ 5 parts)"
        )
    return value


def _json_object(value: Any, field: str, limit: int) -> dict[str, Any]:
    return check.json_object(value, field, limit)


def _bounded_int(value: Any, field: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _field(field, f"must be an integer from {low} to {high}")
    return value


def _same_request(existing: Command, kind: str, body: dict[str, Any]) -> Command:
    if existing.command_type != kind or existing.payload != body:
        raise IdempotencyKeyReusedError(
            "this idempotency key was used for a command with another type or payload",
            details={"command_id": existing.id},
        )
    return existing
