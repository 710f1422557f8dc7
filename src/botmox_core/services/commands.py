"""The command queue: enqueue, delivery, acknowledgement, output, results, cancellation and the
sweeper that enforces the timeouts.

The states and the legal moves between them are the domain's
(:mod:`botmox_core.domain.commands`); this service loads, checks and stores:

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

import secrets
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import attrs

from botmox_core.domain import commands as machine
from botmox_core.domain.commands import IN_FLIGHT
from botmox_core.errors import (
    AgentNotFoundError,
    AgentOfflineError,
    BadRequestError,
    CommandNotFoundError,
    CommandOutputLimitError,
    DuplicateError,
    ForbiddenError,
    InvalidCommandTransitionError,
)
from botmox_core.models import AgentStatus, Command, CommandStatus, Role
from botmox_core.ports.agents import AgentUnitOfWork
from botmox_core.services import validation as check
from botmox_core.services.agent_store import AgentRepositories
from botmox_core.services.command_requests import (
    ACTIONS,
    COMMAND_TYPE_RE,
    IDEMPOTENCY_KEY_RE,
    MAX_CHUNK_BYTES,
    MAX_OUTPUT_BYTES,
    MAX_PAYLOAD_BYTES,
    MAX_RESULT_BYTES,
    PROXMOX_ACTIONS,
    SYNCTHING_ACTIONS,
    CommandRequest,
    field_error,
)
from botmox_core.services.command_sweep import SweepReport, sweep
from botmox_core.services.principal import (
    CANCEL_COMMANDS,
    ENQUEUE_ANY_COMMAND,
    ENQUEUE_COMMANDS,
    UPDATE_COMMAND_STATUS,
    Clock,
    Principal,
    utcnow,
)

__all__ = [
    "ACTIONS",
    "COMMAND_TYPE_RE",
    "IDEMPOTENCY_KEY_RE",
    "MAX_OUTPUT_BYTES",
    "MAX_PAYLOAD_BYTES",
    "PROXMOX_ACTIONS",
    "SYNCTHING_ACTIONS",
    "CommandService",
    "SweepReport",
]

S = CommandStatus


class CommandService:
    """Enqueues commands and moves them through their states (the moves are the domain's,
    :mod:`botmox_core.domain.commands`; this service loads, checks and stores them).

    ``agents`` gives the agent and command repositories and the offline window; the
    :class:`~botmox_core.services.agents.AgentService` is one, an
    :class:`~botmox_core.services.agent_store.AgentStore` another.
    """

    def __init__(
        self,
        agents: AgentRepositories,
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
        """Queue a command of any type for an agent of the caller's tenant (admin/infra);
        ``(command, created)``.

        The same ``idempotency_key`` for the same agent returns the existing command
        (``created`` False) — 409 ``IDEMPOTENCY_KEY_REUSED`` if its type or payload differ.
        A new command needs an active agent with a live connection (``connected``) or a
        heartbeat within the offline window, else 409 ``AGENT_OFFLINE``.
        """
        principal.authorize(ENQUEUE_ANY_COMMAND)
        return self._enqueue(
            principal,
            agent_id=agent_id,
            command_type=command_type,
            payload=payload,
            payload_field="payload",
            expires_in_seconds=expires_in_seconds,
            execution_timeout_seconds=execution_timeout_seconds,
            idempotency_key=idempotency_key,
            connected=connected,
        )

    def enqueue_action(
        self, principal: Principal, family: str, action: str, *, params: Any = None, **fields: Any
    ) -> tuple[Command, bool]:
        """Queue ``<family>.<action>`` (a known Proxmox or Syncthing action, see
        :data:`ACTIONS`; any role but agent) with ``params`` as its payload; ``fields`` as
        for :meth:`enqueue`. 400 for an unknown action."""
        allowed = ACTIONS[family]
        if action not in allowed:
            raise BadRequestError(
                f"unknown {family} action {action[:40]!r}",
                details=[{"field": "action", "message": "one of " + ", ".join(sorted(allowed))}],
            )
        return self._enqueue(
            principal,
            command_type=f"{family}.{action}",
            payload=params,
            payload_field="params",
            **fields,
        )

    def _enqueue(
        self,
        principal: Principal,
        *,
        agent_id: Any,
        command_type: Any,
        payload: Any,
        payload_field: str,
        expires_in_seconds: Any = None,
        execution_timeout_seconds: Any = None,
        idempotency_key: Any = None,
        connected: Callable[[str], bool] = lambda agent_id: False,
    ) -> tuple[Command, bool]:
        # bounded (size and depth) under the name the caller used (`params` on the action routes)
        body = check.json_object(payload, payload_field, MAX_PAYLOAD_BYTES)
        principal.authorize(ENQUEUE_COMMANDS)
        request = CommandRequest.parse(
            agent_id=agent_id,
            command_type=command_type,
            payload=body,
            expires_in_seconds=expires_in_seconds,
            execution_timeout_seconds=execution_timeout_seconds,
            idempotency_key=idempotency_key,
        )
        agent_id, kind, key = request.agent_id, request.command_type, request.idempotency_key
        tenant = principal.tenant_id
        now = self._clock()
        liveness = self._agents.liveness
        with self._agents.unit() as uow:
            if key is not None:
                existing = uow.commands.find_by_idempotency_key(tenant, agent_id, key)
                if existing is not None:
                    return request.same_as(existing), False
            agent = uow.agents.get(tenant, agent_id)
            if agent is None:
                raise AgentNotFoundError("no such agent")
            if agent.status is not AgentStatus.ACTIVE:
                raise AgentOfflineError(f"the agent is {agent.status.value}")
            if not connected(agent.id) and not liveness.is_recently_seen(agent, now):
                seconds = int(liveness.offline_after.total_seconds())
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
                expires_at=now + timedelta(seconds=request.expires_in_seconds),
                updated_at=now,
                payload=body,
                execution_timeout_seconds=request.execution_timeout_seconds,
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
                return request.same_as(existing), False
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
            raise field_error("limit", "must be from 1 to 100")
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
        principal.authorize(CANCEL_COMMANDS)
        now = self._clock()
        with self._agents.unit() as uow:
            command = self._visible(uow, principal, command_id)
            done = uow.commands.modify(
                principal.tenant_id, command.id, lambda c: machine.request_cancel(c, now)
            )
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
        return self._agent_modify(tenant_id, agent_id, command_id, lambda c: machine.accept(c, now))

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
            raise field_error("status", "a result must be succeeded or failed")
        body = None if result is None else check.json_object(result, "result", MAX_RESULT_BYTES)
        message = check.optional_text(error, "error", 4096) if error is not None else None
        now = self._clock()
        return self._agent_modify(
            tenant_id,
            agent_id,
            command_id,
            lambda c: machine.complete(c, final, now, result=body, error=message),
        )

    def cancel_ack(self, tenant_id: str, agent_id: str, command_id: Any) -> Command:
        """The agent stopped the command after a cancel request → cancelled."""
        now = self._clock()
        return self._agent_modify(
            tenant_id, agent_id, command_id, lambda c: machine.cancel_acknowledged(c, now)
        )

    def hand_back(self, tenant_id: str, agent_id: str, command_id: Any) -> Command:
        """The agent gives a command back unfinished (graceful shutdown) → queued again."""
        now = self._clock()
        return self._agent_modify(
            tenant_id, agent_id, command_id, lambda c: machine.hand_back(c, now)
        )

    def append_output(
        self, tenant_id: str, agent_id: str, command_id: Any, seq: Any, data: Any
    ) -> bool:
        """Store output chunk ``seq``; False when it was already stored. 413
        ``OUTPUT_LIMIT_EXCEEDED`` past the per-command limit (the chunk is not stored)."""
        if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq < 2**31:
            raise field_error("seq", "must be a non-negative integer")
        if not isinstance(data, str):
            raise field_error("data", "must be text")
        size = len(data.encode("utf-8", "surrogatepass"))
        if size > MAX_CHUNK_BYTES:
            raise field_error("data", f"a chunk holds at most {MAX_CHUNK_BYTES} bytes")
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
        principal.authorize(UPDATE_COMMAND_STATUS)
        if principal.subject is None:
            raise ForbiddenError(UPDATE_COMMAND_STATUS.refusal)
        tenant, agent_id = principal.tenant_id, principal.subject
        if output is not None:
            if not isinstance(output, list) or len(output) > 64:
                raise field_error("output", "must be a list of at most 64 {seq, data} chunks")
            for chunk in output:
                if not isinstance(chunk, dict):
                    raise field_error("output", "chunks are {seq, data} objects")
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
        """Enforce delivery, acknowledgement and execution timeouts across all tenants (at
        most ``limit`` stale commands per call; see :func:`.command_sweep.sweep`)."""
        return sweep(self._agents, self._clock(), ack_timeout=self.ack_timeout, limit=limit)

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
