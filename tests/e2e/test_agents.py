"""End-to-end over real sockets: a uvicorn server process, agents over real WebSockets (the
``botmox agent run`` runtime as a subprocess, or a raw ``websockets`` client playing a
misbehaving agent) and the HTTP long-poll."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from botmox_core.testing.agents import AgentProcess, ServerProcess

pytestmark = pytest.mark.e2e

TENANT, OTHER_TENANT = "tenant-agents", "tenant-other"

AGENT_APP = """
import asyncio, os, time
from pathlib import Path
from botmox_core.agent import Agent

agent = Agent(concurrency=2, shutdown_grace=float(os.environ.get("TEST_GRACE", "10")),
              reconnect_initial=0.05, reconnect_max=0.5)
RUNS = Path(os.environ.get("TEST_RUNS", os.devnull))

def record(ctx):
    with RUNS.open("a") as handle:
        handle.write(ctx.id + "\\n")

@agent.handler("test.echo")
async def echo(ctx):
    record(ctx)
    for i in range(int(ctx.payload.get("lines", 3))):
        ctx.write(f"line {i}\\n")
        await asyncio.sleep(0)
    if ctx.payload.get("big"):
        ctx.write("x" * int(ctx.payload["big"]))
    return {"echo": ctx.payload.get("text")}

@agent.handler("test.block")
async def block(ctx):
    record(ctx)
    ctx.write("waiting\\n")
    release = Path(ctx.payload["release"])
    while not release.exists():
        await asyncio.sleep(0.05)
    ctx.write("released\\n")
    return {"released": True}

@agent.handler("test.sync_loop")
def sync_loop(ctx):
    record(ctx)
    ctx.write("looping\\n")
    while True:
        ctx.raise_if_cancelled()
        time.sleep(0.05)

@agent.handler("test.fail")
def fail(ctx):
    record(ctx)
    ctx.write("about to fail\\n")
    raise RuntimeError("boom")
"""


def _h(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@attrs.define
class World:
    """A server with operator tokens of two tenants."""

    server: ServerProcess
    tmp: Path
    admin: str
    user: str
    other_admin: str

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws/v1/agents/connect"

    def call(self, method: str, path: str, token: str | None = None, **kw: Any) -> httpx.Response:
        headers = _h(token) if token else {}
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kw)

    def new_agent(self, admin: str | None = None, *, online: bool = True) -> tuple[str, str]:
        """Pair and register an agent over HTTP: (agent_id, agent_token). ``online``: it also
        sends its first heartbeat (registering alone does not make an agent online)."""
        pairing = self.call("POST", "/api/v1/agents/pairings", admin or self.admin, json={})
        assert pairing.status_code == 201, pairing.text
        code = pairing.json()["data"]["pairing_code"]
        registered = self.call("POST", "/api/v1/agents/register", json={"pairing_code": code})
        assert registered.status_code == 201, registered.text
        data = registered.json()["data"]
        if online:
            beat = self.call(
                "POST",
                "/api/v1/agents/heartbeat",
                data["agent_token"],
                json={"agent_id": data["id"]},
            )
            assert beat.status_code == 200, beat.text
        return data["id"], data["agent_token"]

    def paired_runtime(self, name: str, **env: str) -> tuple[str, AgentProcess, Path]:
        """Pair with ``botmox agent pair`` and return (agent_id, process (not started), runs)."""
        app = self.tmp / "agent_app.py"
        app.write_text(AGENT_APP)
        pairing = self.call("POST", "/api/v1/agents/pairings", self.admin, json={"name": name})
        code = pairing.json()["data"]["pairing_code"]
        state = self.tmp / f"{name}.json"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "botmox_core",
                "agent",
                "pair",
                "--server",
                self.url,
                "--code",
                code,
                "--state",
                str(state),
                "--app",
                f"{app}:agent",
                "--json",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert state.stat().st_mode & 0o777 == 0o600
        runs = self.tmp / f"{name}.runs"
        runs.touch()
        process = AgentProcess(f"{app}:agent", state, {"TEST_RUNS": str(runs), **env})
        return json.loads(done.stdout)["agent_id"], process, runs

    def enqueue(
        self, agent_id: str, command_type: str, payload: dict[str, Any] | None = None, **fields: Any
    ) -> httpx.Response:
        body = {
            "agent_id": agent_id,
            "command_type": command_type,
            "payload": payload or {},
            **fields,
        }
        return self.call("POST", "/api/v1/vm-ops/commands", self.admin, json=body)

    def command(self, command_id: str, token: str | None = None) -> dict[str, Any]:
        answer = self.call("GET", f"/api/v1/vm-ops/commands/{command_id}", token or self.admin)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]  # type: ignore[no-any-return]

    def wait_command(
        self, command_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 20
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            command = self.command(command_id)
            if done(command):
                return command
            if time.monotonic() > deadline:
                raise AssertionError(f"command never got there: {command}")
            time.sleep(0.05)

    def wait_connected(self, agent_id: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.call("GET", f"/api/v1/agents/{agent_id}", self.admin).json()["data"][
            "connected"
        ]:
            assert time.monotonic() < deadline, "agent never connected"
            time.sleep(0.05)


def make_world(tmp: Path, env: dict[str, str]) -> Iterator[World]:
    server = ServerProcess(tmp / "data", {"BOTMOX_PLUGINS": "none", **env})
    with server:
        admin = server.admin("token", "create", "--tenant", TENANT, "--role", "admin")["token"]
        user = server.admin("token", "create", "--tenant", TENANT, "--role", "api", "--user", "u1")[
            "token"
        ]
        other = server.admin("token", "create", "--tenant", OTHER_TENANT, "--role", "admin")[
            "token"
        ]
        yield World(server, tmp, admin, user, other)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(
        tmp_path_factory.mktemp("agents"),
        {"BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS": "0.2", "BOTMOX_COMMAND_ACK_TIMEOUT_SECONDS": "5"},
    )


def done(command: dict[str, Any]) -> bool:
    return command["status"] not in ("queued", "dispatched", "running")


# -- happy paths --------------------------------------------------------------------------------


def test_runtime_runs_handler_streams_output_and_reports_result(world: World) -> None:
    agent_id, process, runs = world.paired_runtime("happy")
    with process:
        world.wait_connected(agent_id)
        answer = world.enqueue(agent_id, "test.echo", {"text": "hi", "lines": 5, "big": 200_000})
        assert answer.status_code == 202, answer.text
        queued = answer.json()["data"]
        assert queued["status"] == "queued" and queued["command_type"] == "test.echo"
        command = world.wait_command(queued["id"], done)
        assert command["status"] == "succeeded", command
        assert command["result"] == {"echo": "hi"}
        assert command["output"] == "".join(f"line {i}\n" for i in range(5)) + "x" * 200_000
        assert command["output_bytes"] == len(command["output"])
        assert command["started_at"] and command["finished_at"]
        failing = world.enqueue(agent_id, "test.fail").json()["data"]
        failed = world.wait_command(failing["id"], done)
        assert failed["status"] == "failed" and "RuntimeError: boom" in failed["error"]
        assert failed["output"] == "about to fail\n"
        missing = world.enqueue(agent_id, "test.unknown").json()["data"]
        unknown = world.wait_command(missing["id"], done)
        assert unknown["status"] == "failed" and "no handler" in unknown["error"]
        listed = world.call(
            "GET", f"/api/v1/vm-ops/commands?agent_id={agent_id}", world.admin
        ).json()
        assert [c["id"] for c in listed["data"]][:3] == [missing["id"], failing["id"], queued["id"]]
        assert "output" not in listed["data"][0]
        only = world.call(
            "GET", f"/api/v1/vm-ops/commands?agent_id={agent_id}&status=failed", world.admin
        )
        assert {c["id"] for c in only.json()["data"]} == {failing["id"], missing["id"]}
        agent = world.call("GET", f"/api/v1/agents/{agent_id}", world.admin).json()["data"]
        assert agent["status"] == "active" and agent["connected"] is True
        assert "test.echo" in agent["capabilities"] and agent["public_key"]
        assert "agent_token" not in agent and "token_hash" not in json.dumps(agent)
        assert process.terminate() == 0
    assert runs.read_text().splitlines() == [queued["id"], failing["id"]]


def test_cancel_request_is_acknowledged_by_the_runtime(world: World) -> None:
    agent_id, process, _runs = world.paired_runtime("cancel")
    with process:
        world.wait_connected(agent_id)
        release = world.tmp / "never"
        command = world.enqueue(agent_id, "test.block", {"release": str(release)}).json()["data"]
        world.wait_command(command["id"], lambda c: c["status"] == "running")
        answer = world.call("POST", f"/api/v1/vm-ops/commands/{command['id']}/cancel", world.admin)
        assert answer.status_code == 200 and answer.json()["data"]["cancel_requested_at"]
        cancelled = world.wait_command(command["id"], done)
        assert cancelled["status"] == "cancelled"
        assert cancelled["output"] == "waiting\n"
        again = world.call("POST", f"/api/v1/vm-ops/commands/{command['id']}/cancel", world.admin)
        assert (
            again.status_code == 409
            and again.json()["error"]["code"] == "INVALID_COMMAND_TRANSITION"
        )


def test_long_poll_and_patch(world: World) -> None:
    agent_id, token = world.new_agent()
    empty = world.call("GET", "/api/v1/commands/next?timeout_ms=200", token)
    assert empty.status_code == 204
    assert world.call("GET", "/api/v1/commands/next?timeout_ms=60001", token).status_code == 400
    assert world.call("GET", "/api/v1/commands/next?timeout_ms=10", world.admin).status_code == 403
    polled: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        polled["response"] = world.call(
            "GET", f"/api/v1/commands/next?agent_id={agent_id}&timeout_ms=20000", token
        )
        polled["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    queued = world.call(
        "POST",
        "/api/v1/vm-ops/proxmox/status",
        world.user,
        json={"agent_id": agent_id, "params": {"vmid": 9}},
    )
    assert queued.status_code == 202, queued.text
    thread.join(30)
    response = polled["response"]
    assert response.status_code == 200, response.text
    assert polled["seconds"] < 5, "the long-poll must be woken by the enqueue"
    command = response.json()["data"]
    assert command["id"] == queued.json()["data"]["id"]
    assert command["status"] == "dispatched" and command["command_type"] == "proxmox.status"
    assert command["payload"] == {"vmid": 9}
    path = f"/api/v1/vm-ops/commands/{command['id']}"
    running = world.call(
        "PATCH", path, token, json={"status": "running", "output": [{"seq": 0, "data": "vm 9: "}]}
    )
    assert running.status_code == 200 and running.json()["data"]["status"] == "running"
    finished = world.call(
        "PATCH",
        path,
        token,
        json={
            "status": "succeeded",
            "result": {"state": "running"},
            "output": [{"seq": 1, "data": "running\n"}, {"seq": 0, "data": "vm 9: "}],
        },
    )
    assert finished.status_code == 200, finished.text
    final = world.command(command["id"])
    assert final["status"] == "succeeded" and final["output"] == "vm 9: running\n"
    assert final["result"] == {"state": "running"}
    # the agent reads its own command; illegal moves are refused
    assert world.command(command["id"], token)["id"] == command["id"]
    illegal = world.call("PATCH", path, token, json={"status": "running"})
    assert (
        illegal.status_code == 409
        and illegal.json()["error"]["code"] == "INVALID_COMMAND_TRANSITION"
    )
    operator = world.call("PATCH", path, world.admin, json={"status": "failed"})
    assert operator.status_code == 403


def test_patch_illegal_transitions(world: World) -> None:
    agent_id, token = world.new_agent()
    command = world.enqueue(agent_id, "test.echo").json()["data"]
    path = f"/api/v1/vm-ops/commands/{command['id']}"
    queued_to_running = world.call("PATCH", path, token, json={"status": "running"})
    assert queued_to_running.status_code == 409
    assert queued_to_running.json()["error"]["code"] == "INVALID_COMMAND_TRANSITION"
    bogus = world.call("PATCH", path, token, json={"status": "exploded"})
    assert bogus.status_code == 400
    timed_out = world.call("PATCH", path, token, json={"status": "timed_out"})
    assert timed_out.status_code == 409
    missing = world.call(
        "PATCH", "/api/v1/vm-ops/commands/cmd_missing", token, json={"status": "running"}
    )
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "COMMAND_NOT_FOUND"


# -- lifecycle and errors -------------------------------------------------------------------------


def test_pairing_and_registration_errors(world: World) -> None:
    assert world.call("POST", "/api/v1/agents/pairings", world.user, json={}).status_code == 403
    bad = world.call("POST", "/api/v1/agents/pairings", world.admin, json={"expires_in_minutes": 2})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "BAD_REQUEST"
    pairing = world.call(
        "POST",
        "/api/v1/agents/pairings",
        world.admin,
        json={"name": "x", "expires_in_minutes": 1440},
    )
    data = pairing.json()["data"]
    assert len(data["pairing_code"]) == 32 and data["pairing_expires_at"]
    unknown = world.call("POST", "/api/v1/agents/register", json={"pairing_code": "f" * 32})
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "PAIRING_NOT_FOUND"
    bad_key = world.call(
        "POST",
        "/api/v1/agents/register",
        json={"pairing_code": data["pairing_code"], "public_key": "AAAA"},
    )
    assert bad_key.status_code == 400
    ok = world.call(
        "POST",
        "/api/v1/agents/register",
        json={"pairing_code": data["pairing_code"], "capabilities": ["proxmox.start"]},
    )
    assert ok.status_code == 201 and ok.json()["data"]["agent_token_expires_at"]
    reused = world.call(
        "POST", "/api/v1/agents/register", json={"pairing_code": data["pairing_code"]}
    )
    assert reused.status_code == 404 and reused.json()["error"]["code"] == "PAIRING_NOT_FOUND"
    pending = world.call("GET", "/api/v1/agents?status=pending", world.admin).json()
    assert pending["meta"]["page"] == 1 and all(a["status"] == "pending" for a in pending["data"])
    heartbeat = world.call(
        "POST",
        "/api/v1/agents/heartbeat",
        ok.json()["data"]["agent_token"],
        json={"agent_id": data["id"]},
    )
    assert heartbeat.status_code == 200 and heartbeat.json()["data"]["status"] == "active"
    other = world.call(
        "POST", "/api/v1/agents/heartbeat", world.admin, json={"agent_id": "agt_none"}
    )
    assert other.status_code == 404 and other.json()["error"]["code"] == "AGENT_NOT_FOUND"


def test_idempotency_key_over_http(world: World) -> None:
    agent_id, _token = world.new_agent()
    first = world.enqueue(agent_id, "test.echo", {"a": 1}, idempotency_key="deploy-7")
    again = world.enqueue(agent_id, "test.echo", {"a": 1}, idempotency_key="deploy-7")
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["data"]["id"] == again.json()["data"]["id"]
    clash = world.enqueue(agent_id, "test.echo", {"a": 2}, idempotency_key="deploy-7")
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_agent_offline_for_inactive_agents(world: World) -> None:
    pending = world.call("POST", "/api/v1/agents/pairings", world.admin, json={}).json()["data"]
    answer = world.enqueue(pending["id"], "test.echo")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "AGENT_OFFLINE"
    assert world.enqueue("agt_missing", "test.echo").status_code == 404


def test_vm_ops_actions_and_infra_roles(world: World) -> None:
    agent_id, token = world.new_agent()
    unknown = world.call(
        "POST", "/api/v1/vm-ops/proxmox/explode", world.admin, json={"agent_id": agent_id}
    )
    assert unknown.status_code == 400
    for action in ("start", "config-get", "wait-task"):
        queued = world.call(
            "POST",
            f"/api/v1/vm-ops/proxmox/{action}",
            world.admin,
            json={"agent_id": agent_id, "params": {"vmid": 1}},
        )
        assert (
            queued.status_code == 202
            and queued.json()["data"]["command_type"] == f"proxmox.{action}"
        )
    sync = world.call(
        "POST", "/api/v1/vm-ops/syncthing/scan", world.user, json={"agent_id": agent_id}
    )
    assert sync.status_code == 202 and sync.json()["data"]["command_type"] == "syncthing.scan"
    assert (
        world.call(
            "POST", "/api/v1/vm-ops/syncthing/format-disk", world.admin, json={"agent_id": agent_id}
        ).status_code
        == 400
    )
    infra_path = f"/api/v1/infra/proxmox/nodes/pve/qemu?agent_id={agent_id}&wait=0"
    for refused in (world.user, token):
        answer = world.call("GET", infra_path, refused)
        assert answer.status_code == 403 and answer.json()["error"]["code"] == "FORBIDDEN"
    infra = world.call("GET", infra_path, world.admin)
    assert (
        infra.status_code == 202
        and infra.json()["data"]["command_type"] == "infra.proxmox.vm-list"
    )
    assert (
        world.call(
            "POST",
            "/api/v1/vm-ops/commands",
            world.user,
            json={"agent_id": agent_id, "command_type": "x.y"},
        ).status_code
        == 403
    )
    assert (
        world.call(
            "POST",
            "/api/v1/vm-ops/commands",
            token,
            json={"agent_id": agent_id, "command_type": "x.y"},
        ).status_code
        == 403
    )


def test_tenant_isolation(world: World) -> None:
    agent_id, _token = world.new_agent()
    command = world.enqueue(agent_id, "test.echo").json()["data"]
    other = world.other_admin
    assert world.call("GET", f"/api/v1/agents/{agent_id}", other).status_code == 404
    assert world.call("GET", f"/api/v1/vm-ops/commands/{command['id']}", other).status_code == 404
    assert (
        world.call("POST", f"/api/v1/agents/{agent_id}/revoke", other, json={}).status_code == 404
    )
    assert (
        world.call("POST", f"/api/v1/vm-ops/commands/{command['id']}/cancel", other).status_code
        == 404
    )
    assert all(
        a["id"] != agent_id for a in world.call("GET", "/api/v1/agents", other).json()["data"]
    )
    assert world.call("GET", "/api/v1/vm-ops/commands", other).json()["data"] == []
    stolen = world.call(
        "POST",
        "/api/v1/vm-ops/commands",
        other,
        json={"agent_id": agent_id, "command_type": "test.echo"},
    )
    assert stolen.status_code == 404 and stolen.json()["error"]["code"] == "AGENT_NOT_FOUND"
    _foreign_agent, foreign_token = world.new_agent(other)
    assert (
        world.call("GET", f"/api/v1/vm-ops/commands/{command['id']}", foreign_token).status_code
        == 404
    )
    patched = world.call(
        "PATCH",
        f"/api/v1/vm-ops/commands/{command['id']}",
        foreign_token,
        json={"status": "running"},
    )
    assert patched.status_code == 404
    assert world.call("GET", "/api/v1/commands/next?timeout_ms=0", foreign_token).status_code == 204
    assert world.command(command["id"])["status"] == "queued"


# -- the WebSocket channel with a raw client ------------------------------------------------------


async def _hello(ws: ClientConnection, **fields: Any) -> dict[str, Any]:
    await ws.send(json.dumps({"type": "hello", **fields}))
    return json.loads(await ws.recv())  # type: ignore[no-any-return]


async def _next(ws: ClientConnection, kind: str, timeout: float = 10) -> dict[str, Any]:
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        if frame["type"] == kind:
            return frame  # type: ignore[no-any-return]


def test_revocation_closes_socket_refuses_token_fails_commands(world: World) -> None:
    agent_id, token = world.new_agent()

    async def scenario() -> tuple[float, int | None, dict[str, Any]]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            welcome = await _hello(ws, max_inflight=1)
            assert welcome["type"] == "welcome" and welcome["agent_id"] == agent_id
            first = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            second = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            delivered = await _next(ws, "command")
            assert delivered["command"]["id"] == first["id"]  # window 1: the second stays queued
            started = time.monotonic()
            revoked = await asyncio.to_thread(
                world.call,
                "POST",
                f"/api/v1/agents/{agent_id}/revoke",
                world.admin,
                json={"reason": "lost laptop"},
            )
            assert revoked.status_code == 200 and revoked.json()["data"]["status"] == "revoked"
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
            return time.monotonic() - started, code, {"first": first["id"], "second": second["id"]}

    seconds, code, ids = asyncio.run(scenario())
    assert seconds < 1.0, f"socket closed after {seconds:.2f} s"
    assert code == 4403
    for command_id in ids.values():
        command = world.command(command_id)
        assert command["status"] == "failed" and command["error"] == "agent revoked"
    refused = world.call("POST", "/api/v1/agents/heartbeat", token, json={"agent_id": agent_id})
    assert refused.status_code == 401
    again = world.call("POST", f"/api/v1/agents/{agent_id}/revoke", world.admin, json={})
    assert again.status_code == 409 and again.json()["error"]["code"] == "ALREADY_REVOKED"
    assert (
        world.call(
            "POST", "/api/v1/agents/heartbeat", world.admin, json={"agent_id": agent_id}
        ).json()["error"]["code"]
        == "AGENT_REVOKED"
    )
    offline = world.enqueue(agent_id, "test.echo")
    assert offline.status_code == 409 and offline.json()["error"]["code"] == "AGENT_OFFLINE"
    listed = world.call("GET", "/api/v1/agents?status=revoked", world.admin).json()["data"]
    assert agent_id in [a["id"] for a in listed]

    async def reconnect() -> tuple[dict[str, Any], int | None]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await ws.send(json.dumps({"type": "hello"}))
            error = json.loads(await ws.recv())
            try:
                await asyncio.wait_for(ws.recv(), 5)
            except ConnectionClosed as closed:
                return error, closed.rcvd.code if closed.rcvd else None
        return error, None

    error, code = asyncio.run(reconnect())
    assert error["type"] == "error" and error["code"] == "AGENT_REVOKED" and code == 4401


def test_bad_frames_get_error_frames_and_leave_other_agents_alone(world: World) -> None:
    bad_id, bad_token = world.new_agent()
    good_id, good_token = world.new_agent()

    async def scenario() -> list[dict[str, Any]]:
        async with (
            connect(
                world.ws_url, additional_headers=_h(bad_token), compression=None, max_size=None
            ) as bad,
            connect(world.ws_url, compression=None) as good,
        ):
            assert (await _hello(bad))["type"] == "welcome"
            assert (await _hello(good, token=good_token))["type"] == "welcome"  # token in hello
            good_command = (await asyncio.to_thread(world.enqueue, good_id, "test.echo")).json()[
                "data"
            ]
            assert (await _next(good, "command"))["command"]["id"] == good_command["id"]
            frames: list[Any] = [
                "{not json",
                json.dumps([1, 2, 3]),
                json.dumps({"type": "explode"}),
                json.dumps({"no": "type"}),
                "x" * (1024 * 1024 + 10),
                b"\x00\x01binary",
                json.dumps({"type": "ack", "command_id": "cmd_does_not_exist"}),
                json.dumps({"type": "ack", "command_id": good_command["id"]}),  # someone else's
                json.dumps(
                    {"type": "result", "command_id": good_command["id"], "status": "succeeded"}
                ),
                json.dumps(
                    {"type": "progress", "command_id": good_command["id"], "seq": -1, "data": "x"}
                ),
                json.dumps({"type": "result", "command_id": 12, "status": "weird"}),
                json.dumps({"type": "result", "command_id": good_command["id"], "status": "weird"}),
                json.dumps({"type": "hello"}),
            ]
            errors = []
            for frame in frames:
                await bad.send(frame)
                errors.append(await _next(bad, "error"))
            await bad.send(json.dumps({"type": "heartbeat"}))
            assert (await _next(bad, "heartbeat_ack"))["server_time"]
            await good.send(json.dumps({"type": "ack", "command_id": good_command["id"]}))
            await good.send(
                json.dumps(
                    {"type": "progress", "command_id": good_command["id"], "seq": 0, "data": "ok"}
                )
            )
            await good.send(
                json.dumps(
                    {
                        "type": "result",
                        "command_id": good_command["id"],
                        "status": "succeeded",
                        "result": {"fine": True},
                    }
                )
            )
            ack = await _next(good, "result_ack")
            assert ack == {
                "type": "result_ack",
                "command_id": good_command["id"],
                "status": "succeeded",
            }
            return errors

    errors = asyncio.run(scenario())
    codes = [e["code"] for e in errors]
    assert codes == [
        "BAD_FRAME",
        "BAD_FRAME",
        "UNKNOWN_FRAME_TYPE",
        "BAD_FRAME",
        "FRAME_TOO_LARGE",
        "BAD_FRAME",
        "COMMAND_NOT_FOUND",
        "COMMAND_NOT_FOUND",
        "COMMAND_NOT_FOUND",
        "BAD_REQUEST",
        "BAD_FRAME",
        "BAD_REQUEST",
        "BAD_FRAME",
    ], errors
    assert errors[7]["command_id"]  # the error names the refused command id
    assert (
        world.call("GET", f"/api/v1/agents/{bad_id}", world.admin).json()["data"]["status"]
        == "active"
    )
    good_commands = world.call(
        "GET", f"/api/v1/vm-ops/commands?agent_id={good_id}", world.admin
    ).json()["data"]
    assert good_commands[0]["status"] == "succeeded"
    assert world.command(good_commands[0]["id"])["output"] == "ok"


def test_reconnect_resends_unacknowledged_commands(world: World) -> None:
    agent_id, token = world.new_agent()

    async def scenario() -> None:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws)
            command = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            first = await _next(ws, "command")
            assert first["command"]["id"] == command["id"] and first["redelivery"] is False
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws, resume={"running": []})
            again = await _next(ws, "command")
            assert again["command"]["id"] == command["id"] and again["redelivery"] is True
            await ws.send(json.dumps({"type": "ack", "command_id": command["id"]}))
            await ws.send(
                json.dumps(
                    {
                        "type": "result",
                        "command_id": command["id"],
                        "status": "failed",
                        "error": "nope",
                    }
                )
            )
            assert (await _next(ws, "result_ack"))["status"] == "failed"

    asyncio.run(scenario())


def test_revoked_runtime_stops_instead_of_reconnecting(world: World) -> None:
    agent_id, process, _runs = world.paired_runtime("doomed")
    with process:
        world.wait_connected(agent_id)
        revoked = world.call("POST", f"/api/v1/agents/{agent_id}/revoke", world.admin, json={})
        assert revoked.status_code == 200
        assert process.process is not None
        assert process.process.wait(15) == 1
    assert "UNAUTHORIZED" in process.log()
    started = process.start()
    assert started.process is not None and started.process.wait(15) == 1  # refused at hello
    assert process.log().count("UNAUTHORIZED") >= 2


def test_cli_pair_with_a_bad_code_fails_cleanly(world: World) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "botmox_core",
            "agent",
            "pair",
            "--server",
            world.url,
            "--code",
            "f" * 32,
            "--state",
            str(world.tmp / "never.json"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "PAIRING_NOT_FOUND" in done.stderr and "Traceback" not in done.stderr
    assert not (world.tmp / "never.json").exists()


def test_plain_handler_stops_at_raise_if_cancelled(world: World) -> None:
    agent_id, process, _runs = world.paired_runtime("sync-cancel")
    with process:
        world.wait_connected(agent_id)
        command = world.enqueue(agent_id, "test.sync_loop").json()["data"]
        world.wait_command(command["id"], lambda c: c["status"] == "running")
        world.call("POST", f"/api/v1/vm-ops/commands/{command['id']}/cancel", world.admin)
        cancelled = world.wait_command(command["id"], done)
        assert cancelled["status"] == "cancelled" and cancelled["output"] == "looping\n"
        assert process.terminate() == 0


def test_output_is_stored_in_full_up_to_the_limit(world: World) -> None:
    agent_id, token = world.new_agent()
    chunk = "0123456789abcdef" * 16384  # 256 KiB, the largest chunk

    async def scenario() -> list[dict[str, Any]]:
        async with connect(
            world.ws_url, additional_headers=_h(token), compression=None, max_size=None
        ) as ws:
            await _hello(ws)
            command = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            await _next(ws, "command")
            await ws.send(json.dumps({"type": "ack", "command_id": command["id"]}))
            for seq in range(64):  # exactly 16 MiB
                await ws.send(
                    json.dumps(
                        {"type": "progress", "command_id": command["id"], "seq": seq, "data": chunk}
                    )
                )
            await ws.send(
                json.dumps(
                    {"type": "progress", "command_id": command["id"], "seq": 64, "data": "over"}
                )
            )
            await ws.send(
                json.dumps(
                    {"type": "progress", "command_id": command["id"], "seq": 3, "data": chunk}
                )
            )
            await ws.send(
                json.dumps({"type": "result", "command_id": command["id"], "status": "succeeded"})
            )
            errors = []
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame["type"] == "error":
                    errors.append(frame)
                if frame["type"] == "result_ack":
                    return [*errors, {"command_id": command["id"]}]

    *errors, last = asyncio.run(scenario())
    assert [e["code"] for e in errors] == ["OUTPUT_LIMIT_EXCEEDED"]
    command = world.command(last["command_id"])
    assert command["output_bytes"] == 16 * 1024 * 1024
    assert command["output"] == chunk * 64  # nothing truncated, the resent chunk not doubled


def test_long_poll_of_a_revoked_agent_ends_401(world: World) -> None:
    agent_id, token = world.new_agent()
    answer: dict[str, Any] = {}

    def poll() -> None:
        started = time.monotonic()
        answer["response"] = world.call("GET", "/api/v1/commands/next?timeout_ms=20000", token)
        answer["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)
    world.call("POST", f"/api/v1/agents/{agent_id}/revoke", world.admin, json={})
    thread.join(30)
    assert answer["response"].status_code == 401 and answer["seconds"] < 5
