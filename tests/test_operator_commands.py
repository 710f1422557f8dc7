"""``botmox agent pairing create | list | show | revoke`` and ``botmox command send | list | show
| cancel | watch`` through the real console script against a real server (uvicorn, embedded
default) with a real agent runtime connected: ``watch`` prints output while the command runs."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from botmox_core.agent import Agent, CommandContext
from botmox_core.testing.server import RunningServer, admin_cli, running_server
from tests.e2e.test_workers import AgentThread

BOTMOX = str(Path(sys.executable).parent / "botmox")
TENANT = "tenant-cli"


def run(
    server: RunningServer, token: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BOTMOX_SERVER": server.url, "BOTMOX_TOKEN": token}
    return subprocess.run(
        [BOTMOX, *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def ok_json(server: RunningServer, token: str, *args: str) -> Any:
    done = run(server, token, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


class SlowAgent(AgentThread):
    """Writes a line, waits for the test's go, writes another; ``sleep`` waits to be cancelled."""

    def __init__(self, server: RunningServer, token: str, tmp: Path) -> None:
        super().__init__(server, token, tmp)
        self.go = tmp / "go"
        self.runtime = Agent(concurrency=4, shutdown_grace=2)
        self.runtime.handler("test.steps")(self._steps)
        self.runtime.handler("test.sleep")(self._sleep)
        self.cancelled: list[str] = []

    async def _steps(self, ctx: CommandContext) -> dict[str, Any]:
        ctx.write("step 1\n")
        await ctx.flush()
        for _ in range(600):
            if self.go.exists():
                break
            await asyncio.sleep(0.05)
        ctx.write("step 2\n")
        return {"steps": 2}

    async def _sleep(self, ctx: CommandContext) -> None:
        ctx.write("sleeping\n")
        await ctx.flush()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.append(ctx.id)
            raise


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("cli") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def token(server: RunningServer) -> str:
    return str(admin_cli(server, "token", "create", "--tenant", TENANT, "--role", "admin")["token"])


@pytest.fixture(scope="module")
def agent(
    server: RunningServer, token: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SlowAgent]:
    running = SlowAgent(server, token, tmp_path_factory.mktemp("agent"))
    running.start()
    deadline = time.monotonic() + 20
    while not ok_json(server, token, "agent", "show", running.id).get("connected"):
        assert time.monotonic() < deadline, "the agent did not connect"
        time.sleep(0.1)
    yield running
    running.stop()


def test_pairing_create_prints_the_code_once(server: RunningServer, token: str) -> None:
    created = ok_json(server, token, "agent", "pairing", "create", "--name", "rack-9")
    assert len(created["pairing_code"]) == 32 and created["id"].startswith("agt_")
    text = run(server, token, "agent", "pairing", "create", "--name", "rack-10")
    assert text.returncode == 0 and "pairing code " in text.stdout
    listed = ok_json(server, token, "agent", "list", "--status", "pending")
    assert created["id"] in {a["id"] for a in listed}
    assert created["pairing_code"] not in json.dumps(listed)  # never shown again
    bad = run(
        server, token, "agent", "pairing", "create", "--name", "x", "--expires-in-minutes", "1"
    )
    assert bad.returncode == 2 and "5<=x<=1440" in bad.stderr


def test_agent_list_and_show(server: RunningServer, token: str, agent: SlowAgent) -> None:
    active = ok_json(server, token, "agent", "list", "--status", "active")
    assert [a["id"] for a in active] == [agent.id]
    assert '"agent_token"' not in json.dumps(active) and "token_hash" not in json.dumps(active)
    text = run(server, token, "agent", "show", agent.id)
    assert text.returncode == 0 and agent.id in text.stdout and "connected" in text.stdout
    missing = run(server, token, "agent", "show", "agt_" + "0" * 32)
    assert missing.returncode == 1 and "AGENT_NOT_FOUND" in missing.stderr
    wrong = run(server, "not-a-token", "agent", "list")
    assert wrong.returncode == 1 and "UNAUTHORIZED" in wrong.stderr


def test_command_send_watch_streams_output_live(
    server: RunningServer, token: str, agent: SlowAgent
) -> None:
    command_id = run(server, token, "command", "send", "--agent", agent.id, "--type", "test.steps")
    assert command_id.returncode == 0, command_id.stderr
    command_id_text = command_id.stdout.strip()
    env = {**os.environ, "BOTMOX_SERVER": server.url, "BOTMOX_TOKEN": token}
    watcher = subprocess.Popen(
        [BOTMOX, "command", "watch", command_id_text],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline()  # printed while the handler still waits
        assert first == "step 1\n"
        assert watcher.poll() is None, "watch ended before the command did"
        agent.go.touch()
        rest, errors = watcher.communicate(timeout=60)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait(timeout=10)
    assert rest == "step 2\n"
    assert watcher.returncode == 0, errors
    assert f"[{command_id_text} succeeded]" in errors
    shown = ok_json(server, token, "command", "show", command_id_text)
    assert (shown["status"], shown["result"], shown["output"]) == (
        "succeeded",
        {"steps": 2},
        "step 1\nstep 2\n",
    )
    text = run(server, token, "command", "show", command_id_text).stdout
    assert 'result: {"steps": 2}' in text and "step 2" in text
    listed = ok_json(server, token, "command", "list", "--agent", agent.id, "--status", "succeeded")
    assert command_id_text in {c["id"] for c in listed}


def test_command_send_with_payload_from_stdin_and_watch_json(
    server: RunningServer, token: str, agent: SlowAgent
) -> None:
    agent.go.touch()
    done = run(
        server, token, "command", "send", "--agent", agent.id, "--type", "test.steps",
        "--payload", "-", "--watch", "--json", stdin='{"vmid": 7}',
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert events[-1]["status"] == "succeeded"
    assert "".join(e["output"] for e in events) == "step 1\nstep 2\n"
    shown = ok_json(server, token, "command", "show", events[-1]["id"])
    assert shown["payload"] == {"vmid": 7}
    bad = run(
        server, token, "command", "send", "--agent", agent.id, "--type", "x", "--payload", "[1]"
    )
    assert bad.returncode == 1 and "BAD_REQUEST" in bad.stderr and "JSON object" in bad.stderr


def test_command_cancel_and_watch_exit_status(
    server: RunningServer, token: str, agent: SlowAgent
) -> None:
    command = ok_json(server, token, "command", "send", "--agent", agent.id, "--type", "test.sleep")
    deadline = time.monotonic() + 20
    while ok_json(server, token, "command", "show", command["id"])["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    timed_out = run(server, token, "command", "watch", command["id"], "--timeout", "0.5")
    assert timed_out.returncode == 124 and timed_out.stdout == "sleeping\n"
    cancelled = ok_json(server, token, "command", "cancel", command["id"])
    assert cancelled["cancel_requested_at"]
    watched = run(server, token, "command", "watch", command["id"], "--timeout", "30")
    assert watched.returncode == 1, watched.stderr  # settled, but not succeeded
    assert f"[{command['id']} cancelled]" in watched.stderr
    assert command["id"] in agent.cancelled


def test_agent_revoke(server: RunningServer, token: str, agent: SlowAgent) -> None:
    revoked = ok_json(server, token, "agent", "revoke", agent.id, "--reason", "decommissioned")
    assert revoked["status"] == "revoked"
    assert agent.finished.wait(10), "the revoked agent's socket stayed open"
    again = run(server, token, "agent", "revoke", agent.id, "--reason", "again")
    assert again.returncode == 1 and "ALREADY_REVOKED" in again.stderr
