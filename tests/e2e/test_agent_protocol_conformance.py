"""The agent protocol as ``docs/agent-protocol.md`` documents it, checked the way an agent written
from the docs alone (in another code base) meets the server: a real uvicorn process, raw
WebSockets, no runtime. Each test names the defect of issue 9 it pins down."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from botmox_core.backends.sqlite import DEFAULT_FILENAME
from botmox_core.backends.sqlite.backend import SqliteBackend
from tests.e2e.test_agents import World, _h, _hello, _next, make_world

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent-protocol.md"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(
        tmp_path_factory.mktemp("protocol"),
        {"BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS": "0.2", "BOTMOX_COMMAND_ACK_TIMEOUT_SECONDS": "2"},
    )


def deep_json(levels: int) -> str:
    """JSON text of arrays nested ``levels`` deep (built as text: too deep for ``json``)."""
    return "[" * levels + "1" + "]" * levels


def deep_object_json(levels: int) -> str:
    return '{"a":' * (levels - 1) + "{}" + "}" * (levels - 1)


def deep_object(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def refused(ws: ClientConnection) -> tuple[list[dict[str, Any]], int | None]:
    """Frames until the server closes; (frames, close code)."""
    frames: list[dict[str, Any]] = []
    try:
        while True:
            frames.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
    except ConnectionClosed as closed:
        return frames, closed.rcvd.code if closed.rcvd else None


async def frames_until(
    ws: ClientConnection, kind: str, timeout: float = 10
) -> list[dict[str, Any]]:
    """Every frame up to and including the first of ``kind``."""
    seen = []
    while True:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout))
        seen.append(frame)
        if frame["type"] == kind:
            return seen


def close_codes_in_doc() -> set[int]:
    return {int(code) for code in re.findall(r"^\| (\d{4}) \|", DOC.read_text(), re.M)}


def connected_agent(world: World) -> tuple[str, str]:
    """A registered agent that has connected once (so it is online)."""
    agent_id, token = world.new_agent()

    async def once() -> None:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            assert (await _hello(ws))["type"] == "welcome"

    asyncio.run(once())
    return agent_id, token


# -- liveness ------------------------------------------------------------------------------------


def test_registered_but_never_connected_agent_is_offline(world: World) -> None:
    agent_id, token = world.new_agent(online=False)
    answer = world.enqueue(agent_id, "test.echo")
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "AGENT_OFFLINE"
    agent = world.call("GET", f"/api/v1/agents/{agent_id}", world.admin).json()["data"]
    assert agent["status"] == "offline" and agent["last_seen_at"] is None

    async def online() -> int:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            assert (await _hello(ws))["type"] == "welcome"
            return (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).status_code

    assert asyncio.run(online()) == 202


# -- hello and authentication -------------------------------------------------------------------


def _expire_token(world: World, agent_id: str) -> None:
    """Out of band, on the server's own database: the agent's token expired a minute ago."""
    backend = SqliteBackend(world.server.data_dir / DEFAULT_FILENAME)
    try:
        with backend.unit_of_work() as uow:
            past = datetime.now(UTC) - timedelta(minutes=1)
            uow.agents.modify(  # type: ignore[attr-defined]
                "tenant-agents", agent_id, lambda a: attrs.evolve(a, token_expires_at=past)
            )
            uow.commit()
    finally:
        backend.close()


def test_4401_close_says_why(world: World) -> None:
    revoked_id, revoked_token = world.new_agent()
    world.call("POST", f"/api/v1/agents/{revoked_id}/revoke", world.admin, json={})
    expired_id, expired_token = world.new_agent()
    _expire_token(world, expired_id)
    unknown = "bma_" + secrets.token_urlsafe(32)

    async def attempt(token: str | None) -> tuple[str, int | None]:
        headers = _h(token) if token else {}
        async with connect(world.ws_url, additional_headers=headers, compression=None) as ws:
            await ws.send(json.dumps({"type": "hello"}))
            frames, code = await refused(ws)
        return frames[0]["code"], code

    outcomes = {
        name: asyncio.run(attempt(token))
        for name, token in (
            ("unknown", unknown),
            ("expired", expired_token),
            ("revoked", revoked_token),
            ("missing", None),
        )
    }
    assert outcomes == {
        "unknown": ("AGENT_TOKEN_UNKNOWN", 4401),
        "expired": ("AGENT_TOKEN_EXPIRED", 4401),
        "revoked": ("AGENT_REVOKED", 4401),
        "missing": ("AGENT_TOKEN_MISSING", 4401),
    }
    text = DOC.read_text()
    for code, _ in outcomes.values():
        assert f"`{code}`" in text, f"{code} is not documented"


@pytest.mark.parametrize("value", [0, 101, -1, "4", True, 2.5])
def test_max_inflight_out_of_range_is_refused(world: World, value: Any) -> None:
    _agent_id, token = world.new_agent()

    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await ws.send(json.dumps({"type": "hello", "max_inflight": value}))
            return await refused(ws)

    frames, code = asyncio.run(scenario())
    assert code == 4400 and frames[0]["code"] == "BAD_FRAME", frames
    assert "max_inflight" in frames[0]["message"]


def test_max_inflight_bounds_are_accepted(world: World) -> None:
    _agent_id, token = world.new_agent()

    async def scenario(value: int) -> dict[str, Any]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            return await _hello(ws, max_inflight=value)

    assert asyncio.run(scenario(1))["max_inflight"] == 1
    assert asyncio.run(scenario(100))["max_inflight"] == 100


@pytest.mark.parametrize(
    "hello",
    [
        '{"type": "hello", "resume": ' + deep_json(1500) + "}",
        "[" * 100_000,
        json.dumps({"type": "hello", "resume": {"running": "cmd_x"}}),
        json.dumps({"type": "hello", "token": 12}),
        json.dumps({"type": "hello", "pad": "é" * 600_000}, ensure_ascii=False),
    ],
    ids=["deep-field", "deep-array", "resume-not-list", "token-not-text", "too-large-in-bytes"],
)
def test_malformed_hello_closes_4400(world: World, hello: str) -> None:
    async def scenario() -> tuple[list[dict[str, Any]], int | None]:
        async with connect(world.ws_url, compression=None, max_size=None) as ws:
            await ws.send(hello)
            return await refused(ws)

    frames, code = asyncio.run(scenario())
    assert code == 4400, (frames, code)
    assert frames[0]["code"] in ("BAD_FRAME", "FRAME_TOO_LARGE")


# -- frames ----------------------------------------------------------------------------------------


def test_missing_or_mistyped_fields_are_bad_frames(world: World) -> None:
    agent_id, token = connected_agent(world)

    async def scenario() -> list[dict[str, Any]]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws)
            command = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            await _next(ws, "command")
            cid = command["id"]
            frames = [
                {"type": "ack"},
                {"type": "ack", "command_id": 12},
                {"type": "cancel_ack"},
                {"type": "cancel_ack", "command_id": None},
                {"type": "release", "command_id": [cid]},
                {"type": "progress", "command_id": cid, "data": "x"},
                {"type": "progress", "command_id": cid, "seq": "0", "data": "x"},
                {"type": "progress", "command_id": cid, "seq": True, "data": "x"},
                {"type": "progress", "command_id": cid, "seq": 0, "data": 5},
                {"type": "progress", "seq": 0, "data": "x"},
                {"type": "result", "command_id": cid},
                {"type": "result", "command_id": cid, "status": 1},
                {"type": "result", "command_id": cid, "status": "succeeded", "result": [1]},
                {"type": "result", "command_id": cid, "status": "failed", "error": {"a": 1}},
            ]
            errors = []
            for frame in frames:
                await ws.send(json.dumps(frame))
                errors.append(await _next(ws, "error"))
            # well-formed but invalid values stay BAD_REQUEST, as documented
            await ws.send(
                json.dumps({"type": "progress", "command_id": cid, "seq": -1, "data": ""})
            )
            errors.append(await _next(ws, "error"))
            await ws.send(json.dumps({"type": "result", "command_id": cid, "status": "weird"}))
            errors.append(await _next(ws, "error"))
            return errors

    errors = asyncio.run(scenario())
    assert [e["code"] for e in errors] == ["BAD_FRAME"] * 14 + ["BAD_REQUEST"] * 2, errors


def test_progress_after_a_final_state_is_refused(world: World) -> None:
    agent_id, token = connected_agent(world)

    async def scenario() -> tuple[str, dict[str, Any]]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws)
            command = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            cid = command["id"]
            await _next(ws, "command")
            await ws.send(json.dumps({"type": "ack", "command_id": cid}))
            await ws.send(
                json.dumps({"type": "progress", "command_id": cid, "seq": 0, "data": "a"})
            )
            await ws.send(json.dumps({"type": "result", "command_id": cid, "status": "succeeded"}))
            await _next(ws, "result_ack")
            await ws.send(
                json.dumps({"type": "progress", "command_id": cid, "seq": 1, "data": "b"})
            )
            return cid, await _next(ws, "error")

    cid, error = asyncio.run(scenario())
    assert error["code"] == "INVALID_COMMAND_TRANSITION" and error["command_id"] == cid
    stored = world.command(cid)
    assert stored["output"] == "a" and stored["output_bytes"] == 1


def test_deep_and_oversized_frames_are_refused_before_processing(world: World) -> None:
    agent_id, token = connected_agent(world)

    async def scenario() -> list[dict[str, Any]]:
        async with connect(
            world.ws_url, additional_headers=_h(token), compression=None, max_size=None
        ) as ws:
            await _hello(ws)
            command = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            cid = command["id"]
            await _next(ws, "command")
            await ws.send(json.dumps({"type": "ack", "command_id": cid}))
            frames = [
                "[" * 200_000 + "]" * 200_000,
                '{"type": "heartbeat", "x": ' + deep_json(5000) + "}",
                json.dumps({"type": "result", "command_id": cid, "status": "succeeded"})[:-1]
                + ', "result": '
                + deep_object_json(1200)
                + "}",
                json.dumps({"type": "heartbeat", "pad": "é" * 600_000}, ensure_ascii=False),
            ]
            answers = []
            for frame in frames:
                await ws.send(frame)
                answers.append(await _next(ws, "error"))
            await ws.send(json.dumps({"type": "heartbeat"}))
            await _next(ws, "heartbeat_ack")  # the connection stayed open
            await ws.send(
                json.dumps(
                    {
                        "type": "result",
                        "command_id": cid,
                        "status": "succeeded",
                        "result": {"ok": True},
                    }
                )
            )
            await _next(ws, "result_ack")
            return answers

    answers = asyncio.run(scenario())
    assert [a["code"] for a in answers] == [
        "BAD_FRAME",
        "BAD_FRAME",
        "BAD_FRAME",
        "FRAME_TOO_LARGE",
    ], answers
    listed = world.call("GET", f"/api/v1/vm-ops/commands?agent_id={agent_id}", world.admin)
    assert listed.status_code == 200 and listed.json()["data"][0]["result"] == {"ok": True}


def test_vm_ops_params_and_results_are_bounded_in_depth(world: World) -> None:
    agent_id, token = connected_agent(world)
    for path, field, body in (
        (
            "/api/v1/vm-ops/proxmox/start",
            "params",
            {"agent_id": agent_id, "params": deep_object(40)},
        ),
        (
            "/api/v1/vm-ops/syncthing/scan",
            "params",
            {"agent_id": agent_id, "params": deep_object(17)},
        ),
        (  # /infra bodies are the params themselves: the field is named as sent
            f"/api/v1/infra/ssh/exec?agent_id={agent_id}&wait=0",
            "command",
            {"command": deep_object(40)},
        ),
        (  # over the 64 KiB payload limit: named as the caller named it
            "/api/v1/vm-ops/proxmox/clone",
            "params",
            {"agent_id": agent_id, "params": {"note": "x" * 70_000}},
        ),
        (
            "/api/v1/vm-ops/commands",
            "payload",
            {"agent_id": agent_id, "command_type": "test.echo", "payload": deep_object(40)},
        ),
    ):
        answer = world.call("POST", path, world.admin, json=body)
        assert answer.status_code == 400, (path, answer.text)
        error = answer.json()["error"]
        assert error["details"][0]["field"] == field, (path, error)
    listed = world.call("GET", "/api/v1/vm-ops/commands", world.admin)
    assert listed.status_code == 200

    command = world.enqueue(agent_id, "test.echo").json()["data"]
    # the agent polls it over HTTP and reports a too-deep result
    polled = world.call("GET", "/api/v1/commands/next?timeout_ms=2000", token)
    assert polled.status_code == 200 and polled.json()["data"]["id"] == command["id"]
    patched = world.call(
        "PATCH",
        f"/api/v1/vm-ops/commands/{command['id']}",
        token,
        json={"status": "succeeded", "result": deep_object(40)},
    )
    assert patched.status_code == 400 and patched.json()["error"]["details"][0]["field"] == "result"
    assert world.call("GET", "/api/v1/vm-ops/commands", world.admin).status_code == 200


# -- delivery --------------------------------------------------------------------------------------


def test_resend_after_the_ack_timeout_is_marked_redelivery(world: World) -> None:
    agent_id, token = connected_agent(world)

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws)
            command = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            first = await _next(ws, "command")
            again = await _next(ws, "command", timeout=15)  # not acknowledged: re-queued, re-sent
            assert first["command"]["id"] == again["command"]["id"] == command["id"]
            return first, again

    first, again = asyncio.run(scenario())
    assert first["redelivery"] is False and first["command"]["attempts"] == 1
    assert again["redelivery"] is True and again["command"]["attempts"] == 2


def test_pending_cancel_arrives_once_after_a_reconnect(world: World) -> None:
    agent_id, token = connected_agent(world)

    async def scenario() -> list[dict[str, Any]]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws)
            command = (await asyncio.to_thread(world.enqueue, agent_id, "test.echo")).json()["data"]
            cid = command["id"]
            await _next(ws, "command")
            await ws.send(json.dumps({"type": "ack", "command_id": cid}))
            await asyncio.to_thread(
                world.call, "POST", f"/api/v1/vm-ops/commands/{cid}/cancel", world.admin
            )
            assert (await _next(ws, "cancel"))["command_id"] == cid
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws, resume={"running": [cid]})
            seen = await frames_until(ws, "command")
            # as documented: an id still running is answered with ack
            await ws.send(json.dumps({"type": "ack", "command_id": cid}))
            await ws.send(json.dumps({"type": "heartbeat"}))
            seen += await frames_until(ws, "heartbeat_ack")
            await ws.send(json.dumps({"type": "heartbeat"}))
            seen += await frames_until(ws, "heartbeat_ack")
            await ws.send(json.dumps({"type": "cancel_ack", "command_id": cid}))
            seen += await frames_until(ws, "result_ack")
            return seen

    seen = asyncio.run(scenario())
    assert [f["type"] for f in seen].count("cancel") == 1, seen


def test_agent_is_told_when_execution_times_out(world: World) -> None:
    agent_id, token = connected_agent(world)

    async def scenario() -> tuple[str, dict[str, Any], dict[str, Any]]:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws)
            command = (
                await asyncio.to_thread(
                    world.enqueue, agent_id, "test.echo", execution_timeout_seconds=1
                )
            ).json()["data"]
            cid = command["id"]
            await _next(ws, "command")
            await ws.send(json.dumps({"type": "ack", "command_id": cid}))
            told = await _next(ws, "abort", timeout=10)
        # an agent that was away when it happened learns it from its resume list
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws, resume={"running": [cid, "cmd_unknown"]})
            again = await _next(ws, "abort", timeout=10)
        return cid, told, again

    cid, told, again = asyncio.run(scenario())
    expected = {
        "type": "abort",
        "command_id": cid,
        "status": "timed_out",
        "error": "execution timeout",
    }
    assert told == expected and again == expected


# -- close codes ---------------------------------------------------------------------------------


def test_shutdown_close_code_is_in_the_documented_table(tmp_path: Path) -> None:
    world = make_world(tmp_path, {})
    w = next(world)
    try:
        _agent_id, token = w.new_agent()

        async def scenario() -> int | None:
            async with connect(w.ws_url, additional_headers=_h(token), compression=None) as ws:
                assert (await _hello(ws))["type"] == "welcome"
                stopper = asyncio.create_task(asyncio.to_thread(w.server.stop))
                _frames, code = await refused(ws)
                await stopper
                return code

        code = asyncio.run(scenario())
    finally:
        world.close()
    assert code is not None and code in close_codes_in_doc(), code


# -- logging -------------------------------------------------------------------------------------


def test_websocket_refusals_are_logged_with_request_id_and_no_secrets(world: World) -> None:
    revoked_id, revoked_token = world.new_agent()
    world.call("POST", f"/api/v1/agents/{revoked_id}/revoke", world.admin, json={})

    async def attempt(headers: dict[str, str], hello: str) -> None:
        async with connect(world.ws_url, additional_headers=headers, compression=None) as ws:
            await ws.send(hello)
            await refused(ws)

    asyncio.run(
        attempt(
            {**_h(revoked_token), "X-Request-Id": "proto-revoked-1"},
            json.dumps({"type": "hello", "secret": "payload-secret-1"}),
        )
    )
    asyncio.run(
        attempt(
            {"X-Request-Id": "proto-badhello-1"},
            json.dumps({"type": "hel\nFORGED LINE\x00", "token": revoked_token}),
        )
    )
    asyncio.run(attempt({"X-Request-Id": "proto-deep-1"}, "[" * 50_000))
    deadline = time.monotonic() + 5
    while "proto-deep-1" not in world.server.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = world.server.log()
    revoked_line = next(line for line in log.splitlines() if "proto-revoked-1" in line)
    assert "AGENT_REVOKED" in revoked_line and revoked_id in revoked_line and "4401" in revoked_line
    bad_line = next(line for line in log.splitlines() if "proto-badhello-1" in line)
    assert "4400" in bad_line and "\\n" in bad_line and "\\x00" in bad_line
    assert not any(line.startswith("FORGED") for line in log.splitlines())
    assert "\x00" not in log
    assert any("proto-deep-1" in line and "4400" in line for line in log.splitlines())
    assert revoked_token not in log and "payload-secret-1" not in log


# -- the runtime speaks the same protocol ---------------------------------------------------------


def test_runtime_stops_a_command_the_server_timed_out(world: World) -> None:
    agent_id, process, _runs = world.paired_runtime("timeout")
    release = world.tmp / "timeout-release"
    with process:
        world.wait_connected(agent_id)
        command = world.enqueue(
            agent_id, "test.block", {"release": str(release)}, execution_timeout_seconds=1
        ).json()["data"]
        world.wait_command(command["id"], lambda c: c["status"] == "timed_out")
        deadline = time.monotonic() + 10
        while "settled it" not in process.log():
            assert time.monotonic() < deadline, process.log()
            time.sleep(0.05)
        release.touch()  # a handler still running would now write and report
        time.sleep(1)
        stored = world.command(command["id"])
        log = process.log()
    assert stored["status"] == "timed_out" and stored["error"] == "execution timeout"
    assert stored["output"] == "waiting\n"
    assert "INVALID_COMMAND_TRANSITION" not in log


def test_runtime_with_more_concurrency_than_the_window_limit_connects(world: World) -> None:
    from botmox_core.agent import Agent
    from botmox_core.agent.state import AgentState

    agent_id, token = world.new_agent()
    state = AgentState(server_url=world.url, agent_id=agent_id, tenant_id="t", agent_token=token)
    agent = Agent(concurrency=150, reconnect_initial=0.05, reconnect_max=0.2)

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(
            agent.run(state, journal_path=world.tmp / f"{agent_id}.journal", stop=stop)
        )
        try:
            await asyncio.wait_for(agent.connected.wait(), 10)
        finally:
            stop.set()
            await asyncio.wait_for(running, 10)

    asyncio.run(scenario())
    assert agent.stats.connects == 1
