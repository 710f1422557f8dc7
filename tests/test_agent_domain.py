"""The command state machine and the agent liveness rule as pure domain values, the role
policy table, and the command service running on bare agent repositories (no AgentService)."""

from __future__ import annotations

from datetime import timedelta

import attrs
import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.domain import commands as machine
from botmox_core.domain.agents import AgentLiveness
from botmox_core.errors import ForbiddenError, InvalidCommandTransitionError
from botmox_core.models import Agent, AgentStatus, CommandStatus, Role
from botmox_core.services import Principal
from botmox_core.services import principal as policy
from botmox_core.services.agent_store import AgentStore
from botmox_core.services.commands import CommandService
from botmox_core.testing.agents import T0, make_command

S = CommandStatus
LATER = T0 + timedelta(seconds=5)


def test_settle_stale_applies_the_timeouts_in_order() -> None:
    before = T0 + timedelta(seconds=1)
    expired = make_command("t", "a", status=S.DISPATCHED, expires_at=T0, dispatched_at=T0)
    assert machine.settle_stale(expired, T0, dispatched_before=before, agent_lost=True)[1] == (
        "expired"
    )
    unacked = make_command("t", "a", status=S.DISPATCHED, dispatched_at=T0, attempts=1)
    moved, outcome = machine.settle_stale(unacked, T0, dispatched_before=before, agent_lost=False)
    assert (moved.status, outcome, moved.dispatched_at) == (S.QUEUED, "requeued", None)
    dead = attrs.evolve(unacked, attempts=5)
    moved, outcome = machine.settle_stale(dead, T0, dispatched_before=before, agent_lost=False)
    assert (moved.status, outcome) == (S.FAILED, "dead_lettered")
    assert moved.error == "dead letter: not acknowledged after 5 deliveries"
    running = make_command("t", "a", status=S.RUNNING, started_at=T0 - timedelta(seconds=60))
    assert machine.settle_stale(running, T0, dispatched_before=before, agent_lost=False) == (
        running,
        None,
    )
    assert machine.settle_stale(running, T0, dispatched_before=before, agent_lost=True)[1] == "lost"
    overdue = attrs.evolve(running, execution_timeout_seconds=60)
    assert machine.settle_stale(overdue, T0, dispatched_before=before, agent_lost=True)[1] == (
        "timed_out"
    )


def test_agent_moves_repeat_without_change_and_refuse_illegal_ones() -> None:
    running = machine.accept(make_command("t", "a", status=S.DISPATCHED), T0)
    assert running.status is S.RUNNING and running.started_at == T0
    assert machine.accept(running, LATER) is running
    done = machine.complete(running, S.SUCCEEDED, LATER, result={"ok": True}, error=None)
    assert done.finished_at == LATER
    assert machine.complete(done, S.SUCCEEDED, LATER, result=None, error=None) is done
    with pytest.raises(InvalidCommandTransitionError):
        machine.hand_back(done, LATER)
    with pytest.raises(InvalidCommandTransitionError):
        machine.cancel_acknowledged(running, LATER)  # no cancel request
    requested = machine.request_cancel(running, LATER)
    assert requested.cancel_requested_at == LATER
    assert machine.request_cancel(requested, LATER + timedelta(1)) is requested
    assert machine.cancel_acknowledged(requested, LATER).status is S.CANCELLED
    queued = make_command("t", "a")
    assert machine.request_cancel(queued, LATER).error == "cancelled before delivery"


def test_liveness_counts_an_agent_offline_after_the_window() -> None:
    liveness = AgentLiveness(timedelta(seconds=10))
    agent = Agent(
        id="agt_1", tenant_id="t", status=AgentStatus.ACTIVE, created_at=T0,
        pairing_expires_at=T0, last_seen_at=T0,
    )  # fmt: skip
    assert liveness.is_recently_seen(agent, T0 + timedelta(seconds=10))
    assert liveness.status(agent, T0 + timedelta(seconds=11)) == "offline"
    assert liveness.status(attrs.evolve(agent, last_seen_at=None), T0) == "offline"
    assert liveness.status(attrs.evolve(agent, status=AgentStatus.REVOKED), T0) == "revoked"


OPS, CALLERS = {Role.ADMIN, Role.INFRA}, {Role.API, Role.ADMIN, Role.INFRA}
NEEDS_OPS = "this action needs role admin, infra"
NEEDS_CALLER = "this action needs role api, admin, infra"


@pytest.mark.parametrize(
    ("permission", "allowed", "refusal"),
    [
        (policy.ENQUEUE_ANY_COMMAND, OPS, NEEDS_OPS),
        (policy.ENQUEUE_COMMANDS, CALLERS, "agents cannot enqueue commands"),
        (policy.USE_INFRA, OPS, "/api/v1/infra is for admin and infra roles only"),
        (policy.CANCEL_COMMANDS, CALLERS, NEEDS_CALLER),
        (policy.LIST_AGENTS, CALLERS, NEEDS_CALLER),
        (policy.PAIR_AGENTS, OPS, NEEDS_OPS),
        (policy.REVOKE_AGENTS, OPS, NEEDS_OPS),
        (policy.POLL_COMMANDS, {Role.AGENT}, "only agents poll for commands"),
        (policy.UPDATE_COMMAND_STATUS, {Role.AGENT}, "only the command's agent updates its status"),
    ],
)  # fmt: skip
def test_role_policy(permission: policy.Permission, allowed: set[Role], refusal: str) -> None:
    """The roles of docs/http-api.md, and the 403 messages the routes answered before."""
    for role in Role:
        caller = Principal(tenant_id="t", role=role, subject="s")
        if role in allowed:
            caller.authorize(permission)
        else:
            with pytest.raises(ForbiddenError) as refused:
                caller.authorize(permission)
            assert refused.value.message == refusal


def test_command_service_runs_on_bare_agent_repositories() -> None:
    """No AgentService needed: the repositories of a backend and a liveness value."""
    backend = SqliteBackend(":memory:")
    try:
        store = AgentStore(backend, AgentLiveness(timedelta(seconds=30)))
        agent = Agent(
            id="agt_1", tenant_id="t", status=AgentStatus.ACTIVE, created_at=T0,
            pairing_expires_at=T0, last_seen_at=T0,
        )  # fmt: skip
        with store.unit() as uow:
            uow.agents.add(agent)
            uow.commit()
        commands = CommandService(store, clock=lambda: T0 + timedelta(seconds=20))
        admin = Principal(tenant_id="t", role=Role.ADMIN, subject="tok")
        command, created = commands.enqueue(admin, agent_id="agt_1", command_type="x.y")
        assert created and command.status is S.QUEUED
        late = CommandService(store, clock=lambda: T0 + timedelta(seconds=31))
        with pytest.raises(Exception, match="no heartbeat within 30 s"):
            late.enqueue(admin, agent_id="agt_1", command_type="x.y")
    finally:
        backend.close()
