"""The infra service (designation, credentials, caller-supplied refs, ``?wait=`` bounds) and the
completion wait of the agent bus on the embedded backend: a ``settled`` wake-up ends a wait at
once; a result stored where no wake-up reaches (another replica whose wake-up was lost) is
still found by the backoff reads; no result → the command as it stands after the wait."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from botmox_core.bootstrap import App
from botmox_core.errors import BadRequestError, ConflictError, ForbiddenError
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.services.infra import MAX_WAIT_SECONDS, wait_seconds
from botmox_core.vault.envelopes import RecipientKey, envelope_document, seal
from botmox_server.agent_bus import AgentBus

TENANT = "t1"
ADMIN = Principal(TENANT, Role.ADMIN, user_id="admin-1")


def _agent(core: App, *capabilities: str) -> tuple[str, X25519PrivateKey]:
    pairing = core.agents.create_pairing(ADMIN, name="pve")
    key = X25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    registered = core.agents.register(
        pairing_code=pairing.code,
        capabilities=list(capabilities),
        public_key=base64.b64encode(raw).decode(),
    )
    core.agents.touch(TENANT, registered.agent.id)
    return registered.agent.id, key


def _bind(core: App, agent_id: str, key: X25519PrivateKey, field: str) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    secret_id = str(uuid.uuid4())
    envelope = seal(
        b"plaintext-never-on-the-server",
        [RecipientKey(agent_id=agent_id, public_key=base64.b64encode(raw).decode())],
        tenant_id=TENANT,
        secret_id=secret_id,
        version=1,
    )
    core.vault.create(ADMIN, {"id": secret_id, "label": field, **envelope_document(envelope)})
    core.vault.bind(
        ADMIN,
        {"scope_type": "agent", "scope_id": agent_id, "field_name": field, "secret_ref": secret_id},
    )
    return secret_id


def _enqueue(bus: AgentBus, command_type: str = "infra.proxmox.status", **kwargs: Any) -> Any:
    command, created = bus.infra.enqueue(
        ADMIN, command_type, target={}, connected=lambda agent_id: True, **kwargs
    )
    assert created
    return command


def test_wait_bounds() -> None:
    assert wait_seconds(None, 10) == 10 and wait_seconds("", 3) == 3
    assert wait_seconds("0", 10) == 0 and wait_seconds("2.5", 10) == 2.5
    assert wait_seconds(str(MAX_WAIT_SECONDS), 0) == MAX_WAIT_SECONDS
    for bad in ("61", "-1", "nan", "inf", "soon", "1e309"):
        with pytest.raises(BadRequestError) as caught:
            wait_seconds(bad, 0)
        assert caught.value.details == [{"field": "wait", "message": f"0-{MAX_WAIT_SECONDS}"}]


def test_designation(core: App) -> None:
    bus = AgentBus(core)
    with pytest.raises(ConflictError) as none:
        _enqueue(bus)
    assert none.value.code == "INFRA_AGENT_NOT_DESIGNATED"
    _agent(core)  # no infra capability: not a candidate
    first, _ = _agent(core, "infra")
    assert _enqueue(bus).agent_id == first
    second, _ = _agent(core, "infra", "proxmox")
    with pytest.raises(ConflictError) as several:
        _enqueue(bus)
    assert several.value.code == "INFRA_AGENT_AMBIGUOUS"
    assert several.value.details == {"agent_ids": sorted([first, second])}
    assert _enqueue(bus, agent_id=second).agent_id == second
    core.agents.revoke(ADMIN, second)
    assert _enqueue(bus).agent_id == first  # revoked agents are not candidates
    with pytest.raises(ForbiddenError):
        bus.infra.enqueue(Principal(TENANT, Role.API), "infra.proxmox.status", target={})


def test_credentials_are_the_agent_s_bindings_as_refs(core: App) -> None:
    bus = AgentBus(core)
    agent_id, key = _agent(core, "infra")
    other_id, other_key = _agent(core)
    token = _bind(core, agent_id, key, "proxmox.token_secret")
    ssh = _bind(core, agent_id, key, "ssh.password")
    _bind(core, agent_id, key, "unrelated.field")
    _bind(core, other_id, other_key, "proxmox.password")  # another agent's: not this one's
    proxmox = _enqueue(bus, agent_id=agent_id)
    assert proxmox.payload == {
        "target": {},
        "params": {},
        "credentials": {"token_secret": {"secret_ref": token}},
    }
    shell = _enqueue(bus, "infra.ssh.exec", params={"command": "uptime"}, agent_id=agent_id)
    assert shell.payload["credentials"] == {"password": {"secret_ref": ssh}}
    assert shell.payload["params"] == {"command": "uptime"}


@pytest.mark.parametrize(
    "params",
    [
        {"secret_ref": "x"},
        {"description": {"secret_ref": "00000000-0000-4000-8000-000000000000"}},
        {"disks": [{"note": "a"}, {"nested": {"secret_ref": "y"}}]},
    ],
)
def test_callers_cannot_add_secret_refs(core: App, params: dict[str, Any]) -> None:
    bus = AgentBus(core)
    _agent(core, "infra")
    with pytest.raises(BadRequestError) as caught:
        _enqueue(bus, "infra.proxmox.config-update", params=params)
    assert caught.value.code == "SECRET_REF_NOT_ALLOWED"


def _finish(core: App, agent_id: str, command_id: str) -> None:
    claimed = core.commands.claim(TENANT, agent_id, 10)
    assert [c.id for c in claimed] == [command_id]
    core.commands.ack(TENANT, agent_id, command_id)
    core.commands.finish(
        TENANT, agent_id, command_id, status="succeeded", result={"data": {"version": "8.2.4"}}
    )


def test_a_settled_wake_up_ends_the_wait_at_once(core: App) -> None:
    async def scenario() -> tuple[float, Any]:
        bus = AgentBus(core)
        await core.transport.start()
        agent_id, _ = _agent(core, "infra")
        command = _enqueue(bus)
        waiting = asyncio.create_task(bus.wait_until_final(ADMIN, command, 20))
        await asyncio.sleep(1.6)  # the backoff's next read is ~1.5 s away by now
        await asyncio.to_thread(_finish, core, agent_id, command.id)
        published = time.monotonic()
        await bus.settled(command.id)
        done = await waiting
        return time.monotonic() - published, done

    after, done = asyncio.run(scenario())
    assert done.status.value == "succeeded" and done.result == {"data": {"version": "8.2.4"}}
    assert after < 0.3, after


def test_a_result_stored_without_a_wake_up_is_found_by_the_backoff_reads(core: App) -> None:
    """What another replica's lost wake-up looks like here: the database has the result, no
    message arrives; the wait still ends within the backoff's 2 s ceiling."""

    async def scenario() -> tuple[float, Any]:
        bus = AgentBus(core)
        agent_id, _ = _agent(core, "infra")
        command = _enqueue(bus)
        waiting = asyncio.create_task(bus.wait_until_final(ADMIN, command, 20))
        await asyncio.sleep(3)
        await asyncio.to_thread(_finish, core, agent_id, command.id)
        stored = time.monotonic()
        done = await waiting
        return time.monotonic() - stored, done

    after, done = asyncio.run(scenario())
    assert done.status.value == "succeeded"
    assert after < 2.3, after


def test_no_result_answers_the_command_as_it_stands(core: App) -> None:
    async def scenario() -> tuple[float, Any]:
        bus = AgentBus(core)
        _agent(core, "infra")
        command = _enqueue(bus)
        started = time.monotonic()
        done = await bus.wait_until_final(ADMIN, command, 0.5)
        return time.monotonic() - started, done

    took, done = asyncio.run(scenario())
    assert done.status.value == "queued" and 0.45 < took < 1.0, took
