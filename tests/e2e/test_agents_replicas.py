"""Two real server processes on one PostgreSQL (``DATA_BACKEND=supabase``, each with its own data
directory and local-file storage): an agent holds its WebSocket on replica B, operators talk to
replica A only. With the ``postgres`` agent transport (LISTEN/NOTIFY) a command enqueued on A
reaches the agent on B at once, runs once, and its output and result are visible through A; a
cancel requested on A reaches the agent on B, and revoking on A closes the socket on B within a
second. The control run with the in-process transport
shows the wake-up is what crosses the replicas (there the command waits for the agent's next
heartbeat, 30 s later).

Needs PostgreSQL (skips without it locally, fails under ``CI=true``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from botmox_core.agent import Agent, CommandContext, pair
from botmox_core.errors import UnauthorizedError
from botmox_core.testing.server import RunningServer, running_server

TENANT = "tenant-replicas"
#: Well below the agent's 30 s heartbeat, which would also make the server look at the queue.
PROMPT_SECONDS = 5.0


def _admin_token(server: RunningServer) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "botmox_core",
            "admin",
            "token",
            "create",
            "--tenant",
            TENANT,
            "--role",
            "admin",
            "--json",
        ],
        env=dict(server.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return str(json.loads(done.stdout)["token"])


@attrs.define
class Replicas:
    a: RunningServer
    b: RunningServer
    token: str

    def call(self, server: RunningServer, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(
            method,
            server.url + path,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            **kwargs,
        )
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json()["data"]


def _postgres_database(stack: ExitStack) -> str:
    from botmox_supabase.testing import (
        PostgresUnavailable,
        migrated_database,
        require_postgres,
        running_postgres,
    )

    try:
        admin_dsn = stack.enter_context(running_postgres())
    except PostgresUnavailable as exc:
        require_postgres(str(exc))  # skips locally, fails under CI=true
    return str(stack.enter_context(migrated_database(admin_dsn)))


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with ExitStack() as stack:
        yield _postgres_database(stack)


def _replicas(tmp: Path, dsn: str, transport: str, stack: ExitStack) -> Replicas:
    env = {
        "DATA_BACKEND": "supabase",
        "BOTMOX_SUPABASE_DATABASE_URL": dsn,
        "BOTMOX_STORAGE": "localfs",
        "BOTMOX_AGENT_TRANSPORT": transport,
    }
    a = stack.enter_context(running_server(tmp / "replica-a", env))
    b = stack.enter_context(running_server(tmp / "replica-b", env))
    return Replicas(a, b, _admin_token(a))


class RunningAgent:
    """The core's agent runtime, paired through replica B and connected to it, in a thread."""

    def __init__(self, replicas: Replicas, tmp: Path) -> None:
        pairing = replicas.call(
            replicas.a, "POST", "/api/v1/agents/pairings", json={"name": "rack-1"}
        )
        self.state = pair(replicas.b.url, pairing["pairing_code"], state_path=tmp / "agent.json")
        self.id = self.state.agent_id
        self.journal = tmp / "agent.journal.sqlite3"
        self.runs: dict[str, int] = {}
        self.started_at: dict[str, float] = {}
        self.cancelled: set[str] = set()
        self.runtime = Agent(concurrency=8, shutdown_grace=2)
        self.runtime.handler("proxmox.start")(self._start_vm)
        self.runtime.handler("proxmox.clone")(self._slow_clone)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="agent", daemon=True)

    async def _start_vm(self, ctx: CommandContext) -> dict[str, Any]:
        self.started_at.setdefault(ctx.id, time.monotonic())
        self.runs[ctx.id] = self.runs.get(ctx.id, 0) + 1
        vmid = ctx.payload["vmid"]
        ctx.write(f"starting vm {vmid}\n")
        ctx.write(f"vm {vmid} is running\n")
        await ctx.flush()
        return {"vmid": vmid, "state": "running"}

    async def _slow_clone(self, ctx: CommandContext) -> dict[str, Any]:
        self.started_at.setdefault(ctx.id, time.monotonic())
        ctx.write("cloning\n")
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled.add(ctx.id)
            raise
        return {"cloned": True}

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._ready.set()
            await self.runtime.run(self.state, journal_path=self.journal, stop=self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # surfaced by the test
            self.error = exc
            self._ready.set()
        finally:
            self.finished.set()

    def start(self) -> None:
        self._thread.start()
        assert self._ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and not self.finished.is_set():
            with contextlib.suppress(RuntimeError):  # the loop ended meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=20)
        assert not self._thread.is_alive(), "agent runtime did not stop"


def _wait_connected(replicas: Replicas, agent: RunningAgent) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert agent.error is None, agent.error
        seen = replicas.call(replicas.b, "GET", f"/api/v1/agents/{agent.id}")
        if seen.get("connected"):
            return
        time.sleep(0.1)
    raise AssertionError("the agent did not connect to replica B")


def _wait_status(
    replicas: Replicas, command_id: str, wanted: set[str], timeout: float = 20
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        command = replicas.call(replicas.a, "GET", f"/api/v1/vm-ops/commands/{command_id}")
        if command["status"] in wanted:
            return dict(command)
        if time.monotonic() > deadline:
            raise AssertionError(f"command {command_id} stayed {command['status']}")
        time.sleep(0.05)


def test_enqueue_on_replica_a_reaches_the_agent_on_replica_b(
    postgres_url: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        replicas = _replicas(tmp_path, postgres_url, "postgres", stack)
        agent = RunningAgent(replicas, tmp_path)
        agent.start()
        stack.callback(agent.stop)
        _wait_connected(replicas, agent)
        # The socket lives on B only; A knows the agent through the shared database.
        on_a = replicas.call(replicas.a, "GET", f"/api/v1/agents/{agent.id}")
        assert on_a["connected"] is False and on_a["status"] == "active"

        enqueued_at = time.monotonic()
        command = replicas.call(
            replicas.a,
            "POST",
            "/api/v1/vm-ops/proxmox/start",
            json={"agent_id": agent.id, "params": {"vmid": 101}},
        )
        assert command["status"] == "queued"
        done = _wait_status(replicas, command["id"], {"succeeded", "failed"})
        assert done["status"] == "succeeded", done
        assert done["result"] == {"vmid": 101, "state": "running"}
        assert done["output"] == "starting vm 101\nvm 101 is running\n"
        assert agent.started_at[command["id"]] - enqueued_at < PROMPT_SECONDS
        assert agent.runs == {command["id"]: 1}

        # A burst: every command runs exactly once on B, results visible through A.
        burst = [
            replicas.call(
                replicas.a,
                "POST",
                "/api/v1/vm-ops/proxmox/start",
                json={"agent_id": agent.id, "params": {"vmid": 200 + n}},
            )["id"]
            for n in range(25)
        ]
        for n, command_id in enumerate(burst):
            finished = _wait_status(replicas, command_id, {"succeeded", "failed"})
            assert finished["status"] == "succeeded", finished
            assert finished["result"] == {"vmid": 200 + n, "state": "running"}
        assert all(agent.runs[command_id] == 1 for command_id in burst)
        listed = replicas.call(
            replicas.a, "GET", "/api/v1/vm-ops/commands", params={"agent_id": agent.id}
        )
        assert {c["status"] for c in listed} == {"succeeded"} and len(listed) == 26

        # Cancellation requested on A reaches the handler running on B.
        slow = replicas.call(
            replicas.a,
            "POST",
            "/api/v1/vm-ops/proxmox/clone",
            json={"agent_id": agent.id, "params": {"vmid": 300}},
        )
        _wait_status(replicas, slow["id"], {"running"})
        replicas.call(replicas.a, "POST", f"/api/v1/vm-ops/commands/{slow['id']}/cancel")
        cancelled = _wait_status(replicas, slow["id"], {"cancelled", "failed", "succeeded"})
        assert cancelled["status"] == "cancelled", cancelled
        assert slow["id"] in agent.cancelled
        assert agent.error is None

        # Revocation on A closes the agent's socket on B within a second.
        revoked_at = time.monotonic()
        replicas.call(
            replicas.a, "POST", f"/api/v1/agents/{agent.id}/revoke", json={"reason": "retired"}
        )
        assert agent.finished.wait(5), "the agent's socket on replica B stayed open"
        assert time.monotonic() - revoked_at < 1.0
        assert isinstance(agent.error, UnauthorizedError), agent.error
        assert "revoked" in str(agent.error)


def test_control_without_the_postgres_transport_the_wake_up_stays_on_replica_a(
    postgres_url: str, tmp_path: Path
) -> None:
    """Same deployment with the in-process transport: the command is stored, but replica B is
    not told; it is still queued after the time the postgres transport needs many times over."""
    with ExitStack() as stack:
        replicas = _replicas(tmp_path, postgres_url, "inprocess", stack)
        agent = RunningAgent(replicas, tmp_path)
        agent.start()
        stack.callback(agent.stop)
        _wait_connected(replicas, agent)
        command = replicas.call(
            replicas.a,
            "POST",
            "/api/v1/vm-ops/proxmox/start",
            json={"agent_id": agent.id, "params": {"vmid": 101}},
        )
        time.sleep(PROMPT_SECONDS)
        still = replicas.call(replicas.a, "GET", f"/api/v1/vm-ops/commands/{command['id']}")
        assert still["status"] == "queued"
        assert agent.runs == {}
