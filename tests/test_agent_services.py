"""Agent lifecycle and command queue rules, on the embedded backend with a fake clock."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from botmox_core.bootstrap import App
from botmox_core.domain.commands import TRANSITIONS, transition
from botmox_core.errors import (
    AgentNotActiveError,
    AgentNotFoundError,
    AgentOfflineError,
    AgentRevokedError,
    AlreadyRevokedError,
    BadRequestError,
    CommandNotFoundError,
    CommandOutputLimitError,
    ForbiddenError,
    IdempotencyKeyReusedError,
    InvalidCommandTransitionError,
    PairingExpiredError,
    PairingNotFoundError,
    UnauthorizedError,
)
from botmox_core.models import CommandStatus, Role
from botmox_core.services import Principal
from botmox_core.testing.agents import make_command
from tests.conftest import FakeClock

ADMIN = Principal(tenant_id="tenant-a", role=Role.ADMIN, subject="tok_admin")
OTHER_ADMIN = Principal(tenant_id="tenant-b", role=Role.ADMIN, subject="tok_other")
USER = Principal(tenant_id="tenant-a", role=Role.API, user_id="user-1")
KEY = base64.b64encode(bytes(range(32))).decode()


def paired(
    core: App, principal: Principal = ADMIN, *, online: bool = True
) -> tuple[Any, str, Principal]:
    """A registered agent; ``online``: it also sent its first heartbeat."""
    pairing = core.agents.create_pairing(principal, name="edge-1")
    registered = core.agents.register(
        pairing_code=pairing.code, version="1.0", platform="linux", capabilities=["proxmox.start"]
    )
    me = core.agents.authenticate(registered.token)
    agent = core.agents.heartbeat(me, registered.agent.id) if online else registered.agent
    return agent, registered.token, me


def test_pairing_code_is_128_bit_hex_stored_hashed(core: App) -> None:
    pairing = core.agents.create_pairing(ADMIN, expires_in_minutes=5)
    assert len(pairing.code) == 32 and int(pairing.code, 16) >= 0
    assert pairing.agent.pairing_code_hash != pairing.code
    assert pairing.code not in repr(pairing)
    assert pairing.agent.status.value == "pending"


@pytest.mark.parametrize("minutes", [4, 1441, "15", True])
def test_pairing_expiry_bounds(core: App, minutes: Any) -> None:
    with pytest.raises(BadRequestError):
        core.agents.create_pairing(ADMIN, expires_in_minutes=minutes)


def test_only_operators_create_pairings(core: App) -> None:
    with pytest.raises(ForbiddenError):
        core.agents.create_pairing(USER)


def test_register_activates_once(core: App) -> None:
    pairing = core.agents.create_pairing(ADMIN)
    registered = core.agents.register(pairing_code=pairing.code.upper(), public_key=KEY)
    assert registered.agent.status.value == "active"
    assert registered.token.startswith("bma_") and len(registered.token) >= 40
    assert registered.agent.token_hash != registered.token
    assert registered.agent.public_key == KEY
    with pytest.raises(PairingNotFoundError):
        core.agents.register(pairing_code=pairing.code)


def test_register_unknown_and_expired_codes(core: App, clock: FakeClock) -> None:
    with pytest.raises(PairingNotFoundError):
        core.agents.register(pairing_code="0" * 32)
    with pytest.raises(BadRequestError):
        core.agents.register(pairing_code="not-hex")
    pairing = core.agents.create_pairing(ADMIN, expires_in_minutes=5)
    clock.advance(301)
    with pytest.raises(PairingExpiredError):
        core.agents.register(pairing_code=pairing.code)


@pytest.mark.parametrize(
    "fields",
    [
        {"public_key": base64.b64encode(b"short").decode()},
        {"public_key": "%%%"},
        {"capabilities": ["x"] * 51},
        {"capabilities": ["bad capability"]},
        {"capabilities": "proxmox"},
    ],
)
def test_register_validates_fields(core: App, fields: dict[str, Any]) -> None:
    pairing = core.agents.create_pairing(ADMIN)
    with pytest.raises(BadRequestError):
        core.agents.register(pairing_code=pairing.code, **fields)
    core.agents.register(pairing_code=pairing.code)  # the code was not used up


def test_agent_token_authenticates_as_agent_until_revoked(core: App) -> None:
    agent, token, principal = paired(core)
    assert principal == Principal(tenant_id="tenant-a", role=Role.AGENT, subject=agent.id)
    with pytest.raises(UnauthorizedError):
        core.agents.authenticate(token + "x")
    core.agents.revoke(ADMIN, agent.id, "stolen")
    with pytest.raises(UnauthorizedError):
        core.agents.authenticate(token)
    with pytest.raises(AlreadyRevokedError):
        core.agents.revoke(ADMIN, agent.id)


def test_heartbeat_rules(core: App) -> None:
    agent, _token, principal = paired(core)
    assert core.agents.heartbeat(principal, agent.id).last_seen_at is not None
    other, _t, other_principal = paired(core)
    with pytest.raises(ForbiddenError):
        core.agents.heartbeat(other_principal, agent.id)
    with pytest.raises(AgentNotFoundError):
        core.agents.heartbeat(ADMIN, "agt_missing")
    pending = core.agents.create_pairing(ADMIN)
    with pytest.raises(AgentNotActiveError):
        core.agents.heartbeat(ADMIN, pending.agent.id)
    core.agents.revoke(ADMIN, other.id)
    with pytest.raises(AgentRevokedError):
        core.agents.heartbeat(ADMIN, other.id)


def test_list_status_filter_offline_and_pages(core: App, clock: FakeClock) -> None:
    seen, _, _ = paired(core)
    stale, _, _ = paired(core)
    core.agents.create_pairing(ADMIN)
    revoked, _, _ = paired(core)
    core.agents.revoke(ADMIN, revoked.id)
    clock.advance(121)
    core.agents.heartbeat(ADMIN, seen.id)

    def ids(status: str | None) -> list[str]:
        return [a.id for a in core.agents.list(ADMIN, status=status)[0]]

    assert ids("active") == [seen.id]
    assert ids("offline") == [stale.id]
    assert ids("revoked") == [revoked.id]
    assert len(ids("pending")) == 1
    page, total = core.agents.list(ADMIN, page=2, limit=3)
    assert total == 4 and len(page) == 1
    with pytest.raises(BadRequestError):
        core.agents.list(ADMIN, status="sleeping")
    assert core.agents.list(OTHER_ADMIN)[1] == 0


def test_transition_table_is_enforced() -> None:
    command = make_command("t", "a")
    for start in CommandStatus:
        for target in CommandStatus:
            current = make_command("t", "a", status=start)
            if target in TRANSITIONS[start]:
                assert transition(current, target, command.queued_at).status is target
            else:
                with pytest.raises(InvalidCommandTransitionError):
                    transition(current, target, command.queued_at)
    assert all(not TRANSITIONS[s] for s in CommandStatus if s.is_final)


def enqueue(core: App, agent_id: str, **fields: Any) -> Any:
    fields.setdefault("command_type", "proxmox.start")
    return core.commands.enqueue(ADMIN, agent_id=agent_id, **fields)


def test_registered_agent_is_offline_until_seen(core: App) -> None:
    agent, _, me = paired(core, online=False)
    assert agent.last_seen_at is None
    with pytest.raises(AgentOfflineError):
        enqueue(core, agent.id)
    core.agents.touch(me.tenant_id, agent.id)  # its first hello, poll or heartbeat
    assert enqueue(core, agent.id)[1]


def test_enqueue_needs_an_online_active_agent(core: App, clock: FakeClock) -> None:
    agent, _, _ = paired(core)
    command, created = enqueue(core, agent.id, payload={"vmid": 1})
    assert created and command.status is CommandStatus.QUEUED
    assert (command.expires_at - command.queued_at).total_seconds() == 300
    clock.advance(121)
    with pytest.raises(AgentOfflineError):
        enqueue(core, agent.id)
    command, _ = core.commands.enqueue(
        ADMIN, agent_id=agent.id, command_type="proxmox.stop", connected=lambda _id: True
    )
    assert command.status is CommandStatus.QUEUED
    pending = core.agents.create_pairing(ADMIN)
    with pytest.raises(AgentOfflineError):
        enqueue(core, pending.agent.id)
    with pytest.raises(AgentNotFoundError):
        enqueue(core, "agt_nope")
    with pytest.raises(AgentNotFoundError):
        core.commands.enqueue(OTHER_ADMIN, agent_id=agent.id, command_type="proxmox.start")


@pytest.mark.parametrize(
    "fields",
    [
        {"command_type": "Proxmox Start"},
        {"payload": [1, 2]},
        {"expires_in_seconds": 9},
        {"expires_in_seconds": 3601},
        {"idempotency_key": "has space"},
        {"execution_timeout_seconds": 0},
    ],
)
def test_enqueue_validation(core: App, fields: dict[str, Any]) -> None:
    agent, _, _ = paired(core)
    with pytest.raises(BadRequestError):
        enqueue(core, agent.id, **fields)


def test_idempotency_key(core: App) -> None:
    agent, _, _ = paired(core)
    first, created = enqueue(core, agent.id, payload={"vmid": 1}, idempotency_key="op-42")
    again, created_again = enqueue(core, agent.id, payload={"vmid": 1}, idempotency_key="op-42")
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyKeyReusedError):
        enqueue(core, agent.id, payload={"vmid": 2}, idempotency_key="op-42")
    other, _, _ = paired(core)
    separate, created = enqueue(core, other.id, payload={"vmid": 1}, idempotency_key="op-42")
    assert created and separate.id != first.id


def test_claim_window_ack_progress_result(core: App, clock: FakeClock) -> None:
    agent, _, principal = paired(core)
    ids = []
    for i in range(3):
        ids.append(enqueue(core, agent.id, payload={"n": i})[0].id)
        clock.advance(0.001)  # FIFO by queued_at
    claimed = core.commands.claim("tenant-a", agent.id, window=2)
    assert [c.id for c in claimed] == ids[:2]
    assert core.commands.claim("tenant-a", agent.id, window=2) == []
    command = core.commands.ack("tenant-a", agent.id, ids[0])
    assert command.status is CommandStatus.RUNNING and command.started_at is not None
    assert core.commands.ack("tenant-a", agent.id, ids[0]).status is CommandStatus.RUNNING
    assert core.commands.append_output("tenant-a", agent.id, ids[0], 1, "b")
    assert core.commands.append_output("tenant-a", agent.id, ids[0], 0, "a")
    assert not core.commands.append_output("tenant-a", agent.id, ids[0], 0, "a")
    done = core.commands.finish("tenant-a", agent.id, ids[0], status="succeeded", result={"x": 1})
    assert done.status is CommandStatus.SUCCEEDED and done.output_bytes == 2
    assert core.commands.finish("tenant-a", agent.id, ids[0], status="succeeded").result == {"x": 1}
    with pytest.raises(InvalidCommandTransitionError):
        core.commands.finish("tenant-a", agent.id, ids[0], status="failed")
    with pytest.raises(InvalidCommandTransitionError):
        core.commands.ack("tenant-a", agent.id, ids[0])
    command, output = core.commands.get(ADMIN, ids[0])
    assert output == "ab"
    assert [c.id for c in core.commands.claim("tenant-a", agent.id, window=2)] == [ids[2]]
    with pytest.raises(CommandNotFoundError):
        core.commands.get(OTHER_ADMIN, ids[0])
    other, _, other_principal = paired(core)
    with pytest.raises(CommandNotFoundError):
        core.commands.get(other_principal, ids[0])
    assert core.commands.get(principal, ids[0])[0].id == ids[0]
    with pytest.raises(CommandNotFoundError):
        core.commands.ack("tenant-a", other.id, ids[1])


def test_output_limit(core: App) -> None:
    core.commands.max_output_bytes = 10
    agent, _, _ = paired(core)
    command, _ = enqueue(core, agent.id)
    with pytest.raises(InvalidCommandTransitionError):
        core.commands.append_output("tenant-a", agent.id, command.id, 0, "early")
    core.commands.claim("tenant-a", agent.id, 1)
    core.commands.append_output("tenant-a", agent.id, command.id, 0, "12345678")
    with pytest.raises(CommandOutputLimitError):
        core.commands.append_output("tenant-a", agent.id, command.id, 1, "abc")
    assert core.commands.get(ADMIN, command.id)[1] == "12345678"


def test_agent_patch_paths(core: App) -> None:
    agent, _, principal = paired(core)
    command, _ = enqueue(core, agent.id)
    with pytest.raises(ForbiddenError):
        core.commands.update_by_agent(ADMIN, command.id, status="running")
    core.commands.claim("tenant-a", agent.id, 1)
    running = core.commands.update_by_agent(
        principal, command.id, status="running", output=[{"seq": 0, "data": "hi"}]
    )
    assert running.status is CommandStatus.RUNNING and running.output_bytes == 2
    with pytest.raises(InvalidCommandTransitionError):
        core.commands.update_by_agent(principal, command.id, status="timed_out")
    with pytest.raises(InvalidCommandTransitionError):
        core.commands.update_by_agent(principal, command.id, status="cancelled")  # no request
    back = core.commands.update_by_agent(principal, command.id, status="queued")
    assert back.status is CommandStatus.QUEUED and back.started_at is None


def test_cancellation_is_acknowledged(core: App) -> None:
    agent, _, _ = paired(core)
    queued, _ = enqueue(core, agent.id)
    assert core.commands.request_cancel(ADMIN, queued.id).status is CommandStatus.CANCELLED
    with pytest.raises(InvalidCommandTransitionError):
        core.commands.request_cancel(ADMIN, queued.id)
    running, _ = enqueue(core, agent.id)
    core.commands.claim("tenant-a", agent.id, 1)
    core.commands.ack("tenant-a", agent.id, running.id)
    requested = core.commands.request_cancel(ADMIN, running.id)
    assert requested.status is CommandStatus.RUNNING and requested.cancel_requested_at
    done = core.commands.cancel_ack("tenant-a", agent.id, running.id)
    assert done.status is CommandStatus.CANCELLED


def test_sweeper_delivery_timeout(core: App, clock: FakeClock) -> None:
    agent, _, _ = paired(core)
    command, _ = enqueue(core, agent.id, expires_in_seconds=10)
    clock.advance(5)
    core.agents.heartbeat(ADMIN, agent.id)
    clock.advance(6)
    report = core.commands.sweep()
    assert report.expired == [command.id]
    assert core.commands.get(ADMIN, command.id)[0].status is CommandStatus.EXPIRED
    assert core.commands.claim("tenant-a", agent.id, 5) == []


def test_sweeper_requeues_unacked_then_dead_letters(core: App, clock: FakeClock) -> None:
    agent, _, _ = paired(core)
    command, _ = enqueue(core, agent.id, expires_in_seconds=3600)
    for attempt in range(1, 6):
        claimed = core.commands.claim("tenant-a", agent.id, 1)
        assert [c.attempts for c in claimed] == [attempt]
        clock.advance(31)
        core.agents.heartbeat(ADMIN, agent.id)
        report = core.commands.sweep()
        if attempt < 5:
            assert report.requeued == [command.id]
            assert ("tenant-a", agent.id) in report.wake
    assert report.dead_lettered == [command.id]
    final = core.commands.get(ADMIN, command.id)[0]
    assert final.status is CommandStatus.FAILED and "dead letter" in (final.error or "")


def test_sweeper_execution_timeout_and_lost_agent(core: App, clock: FakeClock) -> None:
    agent, _, _ = paired(core)
    slow, _ = enqueue(core, agent.id, execution_timeout_seconds=60)
    core.commands.claim("tenant-a", agent.id, 1)
    core.commands.ack("tenant-a", agent.id, slow.id)
    clock.advance(61)
    core.agents.heartbeat(ADMIN, agent.id)
    assert core.commands.sweep().timed_out == [slow.id]
    assert core.commands.get(ADMIN, slow.id)[0].status is CommandStatus.TIMED_OUT
    lost, _ = enqueue(core, agent.id)
    core.commands.claim("tenant-a", agent.id, 1)
    core.commands.ack("tenant-a", agent.id, lost.id)
    clock.advance(121)  # the agent stops heartbeating while running it
    assert core.commands.sweep().lost == [lost.id]
    final = core.commands.get(ADMIN, lost.id)[0]
    assert final.status is CommandStatus.FAILED and "agent lost" in (final.error or "")


def test_revocation_fails_unfinished_commands(core: App) -> None:
    agent, _, _ = paired(core)
    queued, _ = enqueue(core, agent.id)
    dispatched, _ = enqueue(core, agent.id)
    core.commands.claim("tenant-a", agent.id, 1)
    core.agents.revoke(ADMIN, agent.id, "decommissioned")
    for command_id in (queued.id, dispatched.id):
        command = core.commands.get(ADMIN, command_id)[0]
        assert command.status is CommandStatus.FAILED and command.error == "agent revoked"
    with pytest.raises(AgentOfflineError):
        enqueue(core, agent.id)


def test_agents_cannot_enqueue_or_list_agents(core: App) -> None:
    agent, _, principal = paired(core)
    with pytest.raises(ForbiddenError):
        core.commands.enqueue(principal, agent_id=agent.id, command_type="proxmox.start")
    with pytest.raises(ForbiddenError):
        core.agents.list(principal)
    assert core.agents.get(principal, agent.id).id == agent.id
    other, _, _ = paired(core)
    with pytest.raises(AgentNotFoundError):
        core.agents.get(principal, other.id)
