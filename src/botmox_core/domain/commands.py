"""The command state machine: the legal moves, the sets of states the queue works on, and each
move an agent, an operator or the sweeper makes, as pure functions of a command and the time.

States and the only legal moves between them (:data:`TRANSITIONS`)::

    queued ──claim──▶ dispatched ──ack──▶ running ──result──▶ succeeded | failed
       │                 │  ▲                │
       │                 │  └─ack timeout────┤ (re-queued, bounded attempts, then failed)
       │                 │                   ├─hand back (agent shutdown)──▶ queued
       ├─▶ expired ◀─────┘ (delivery timeout)├─▶ timed_out (execution timeout)
       ├─▶ cancelled ◀── cancel_ack ─────────┤
       └─▶ failed (agent revoked) ◀──────────┘ (agent revoked / lost)

Every function here either returns the command moved (a new value, see :func:`transition`),
returns it unchanged when the move was already made (agents resend after reconnects), or
raises 409 ``INVALID_COMMAND_TRANSITION``. The services run them inside a repository's
``modify``, so a move is decided on the stored command under its lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import attrs

from botmox_core.errors import InvalidCommandTransitionError
from botmox_core.models import Command, CommandStatus
from botmox_core.ports.agents import CommandRepository

__all__ = [
    "IN_FLIGHT",
    "TRANSITIONS",
    "UNFINISHED",
    "SweepOutcome",
    "accept",
    "cancel_acknowledged",
    "complete",
    "fail_unfinished",
    "hand_back",
    "request_cancel",
    "settle_stale",
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

#: Not finished yet: what revoking an agent fails.
UNFINISHED = (S.QUEUED, S.DISPATCHED, S.RUNNING)
#: Delivered and not finished: counted against the agent's window, re-sent on reconnect.
IN_FLIGHT = (S.DISPATCHED, S.RUNNING)

#: What the sweeper did to one stale command.
SweepOutcome = Literal["expired", "requeued", "dead_lettered", "timed_out", "lost"]


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


# -- operators --------------------------------------------------------------------------------


def request_cancel(command: Command, now: datetime) -> Command:
    """An operator's cancel: a queued command is cancelled at once; a dispatched or running one
    gets ``cancel_requested_at`` (once) and is cancelled when the agent acknowledges."""
    if command.status is S.QUEUED:
        return transition(command, S.CANCELLED, now, error="cancelled before delivery")
    if command.status in IN_FLIGHT:
        if command.cancel_requested_at is not None:
            return command
        return attrs.evolve(command, cancel_requested_at=now, updated_at=now)
    raise InvalidCommandTransitionError(
        f"command {command.id} is {command.status.value}; it cannot be cancelled",
        details={"command_id": command.id, "status": command.status.value},
    )


def fail_unfinished(
    commands: CommandRepository, tenant_id: str, agent_id: str, now: datetime, reason: str
) -> Sequence[Command]:
    """Fail every queued, dispatched or running command of the agent (in the caller's unit of
    work, which commits)."""
    failed: list[Command] = []
    while True:
        batch = commands.list(tenant_id, agent_id=agent_id, statuses=UNFINISHED, limit=500)
        if not batch:
            return failed
        for command in batch:
            done = commands.modify(
                tenant_id,
                command.id,
                lambda c: (
                    transition(c, S.FAILED, now, error=reason) if c.status in UNFINISHED else c
                ),
            )
            if done is not None:
                failed.append(done)


# -- the agent ----------------------------------------------------------------------------------


def accept(command: Command, now: datetime) -> Command:
    """The agent acknowledged the command: dispatched → running (again: no change)."""
    if command.status is S.RUNNING:
        return command
    return transition(command, S.RUNNING, now)


def complete(
    command: Command,
    final: CommandStatus,
    now: datetime,
    *,
    result: dict[str, Any] | None,
    error: str | None,
) -> Command:
    """The agent's result (``final`` is succeeded or failed); the same final status again is
    no change (results are resent after reconnects)."""
    if command.status is final:
        return command
    return transition(command, final, now, result=result, error=error)


def cancel_acknowledged(command: Command, now: datetime) -> Command:
    """The agent stopped the command after a cancel request → cancelled."""
    if command.status is S.CANCELLED:
        return command
    if command.cancel_requested_at is None:
        raise InvalidCommandTransitionError(
            f"command {command.id} has no cancel request",
            details={"command_id": command.id, "status": command.status.value},
        )
    return transition(command, S.CANCELLED, now, error="cancelled")


def hand_back(command: Command, now: datetime) -> Command:
    """The agent gives the command back unfinished (graceful shutdown) → queued again."""
    if command.status is S.QUEUED:
        return command
    return transition(command, S.QUEUED, now)


# -- the sweeper --------------------------------------------------------------------------------


def settle_stale(
    command: Command, now: datetime, *, dispatched_before: datetime, agent_lost: bool
) -> tuple[Command, SweepOutcome | None]:
    """The timeouts, in order: delivery (queued or dispatched past ``expires_at`` →
    expired), acknowledgement (dispatched before ``dispatched_before`` → re-queued, or failed
    as a dead letter after ``max_attempts``), execution (running past its timeout →
    timed_out) and a running command whose agent is lost (→ failed). ``(command, None)`` when
    none applies."""
    if command.status in (S.QUEUED, S.DISPATCHED) and command.expires_at <= now:
        error = "delivery timeout: not delivered in time"
        return transition(command, S.EXPIRED, now, error=error), "expired"
    if (
        command.status is S.DISPATCHED
        and command.dispatched_at is not None
        and command.dispatched_at < dispatched_before
    ):
        if command.attempts >= command.max_attempts:
            error = f"dead letter: not acknowledged after {command.attempts} deliveries"
            return transition(command, S.FAILED, now, error=error), "dead_lettered"
        return transition(command, S.QUEUED, now), "requeued"
    if command.status is S.RUNNING and command.started_at is not None:
        deadline = command.started_at + timedelta(seconds=command.execution_timeout_seconds)
        if deadline <= now:
            return transition(command, S.TIMED_OUT, now, error="execution timeout"), "timed_out"
        if agent_lost:
            error = "agent lost: not seen while running the command"
            return transition(command, S.FAILED, now, error=error), "lost"
    return command, None
