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
import json
import os
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
from tests.e2e.agent_support import AgentInThread

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
    try:
        from botmox_supabase.testing import (
            PostgresUnavailable,
            migrated_database,
            require_postgres,
            running_postgres,
        )
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and botmox-supabase is not installed", pytrace=False)
        pytest.skip("botmox-supabase is not installed (pip install -e plugins/botmox-supabase)")

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


class RunningAgent(AgentInThread):
    """The core's agent runtime, paired through replica B and connected to it, in a thread."""

    def __init__(self, replicas: Replicas, tmp: Path) -> None:
        pairing = replicas.call(
            replicas.a, "POST", "/api/v1/agents/pairings", json={"name": "rack-1"}
        )
        state = pair(replicas.b.url, pairing["pairing_code"], state_path=tmp / "agent.json")
        super().__init__(
            Agent(concurrency=8, shutdown_grace=2), state, tmp / "agent.journal.sqlite3"
        )
        self.id = state.agent_id
        self.runs: dict[str, int] = {}
        self.started_at: dict[str, float] = {}
        self.cancelled: set[str] = set()
        self.runtime.handler("proxmox.start")(self._start_vm)
        self.runtime.handler("proxmox.clone")(self._slow_clone)

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
        latency = agent.started_at[command["id"]] - enqueued_at
        print(
            f"\nenqueue on replica A -> handler start on replica B's agent: {latency * 1000:.0f} ms"
        )
        assert latency < PROMPT_SECONDS
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


# -- 10,000 commands over three replicas ---------------------------------------------------------

COMMANDS = 10_000
POLLERS_PER_REPLICA = 3
ENQUEUERS = 6


@pytest.mark.timeout(900)  # about 3.5 minutes alone; CI runs suites side by side
def test_ten_thousand_commands_over_three_replicas_zero_double_claims(
    postgres_url: str, tmp_path: Path
) -> None:
    """Three server processes; 10,000 commands enqueued through all three while one agent
    long-polls all three at once (``GET /api/v1/commands/next``, three pollers per replica).
    Every command is handed out exactly once, none is lost.

    The pollers do not acknowledge, so the acknowledgement timeout is raised above the test's
    length: otherwise the sweeper rightly re-queues unacknowledged commands after 30 s and they
    are delivered again (a new dispatch with ``attempts`` 2, not a double claim)."""
    import psycopg

    with ExitStack() as stack:
        env = {
            "DATA_BACKEND": "supabase",
            "BOTMOX_SUPABASE_DATABASE_URL": postgres_url,
            "BOTMOX_STORAGE": "localfs",
            "BOTMOX_AGENT_TRANSPORT": "postgres",
            "BOTMOX_COMMAND_ACK_TIMEOUT_SECONDS": "3600",
            # 10,000 enqueues by one operator token measure claiming, not the rate limit
            "BOTMOX_RATE_LIMIT_ENABLED": "false",
        }
        servers = [
            stack.enter_context(running_server(tmp_path / f"replica-{n}", env)) for n in range(3)
        ]
        replicas = Replicas(servers[0], servers[1], _admin_token(servers[0]))
        pairing = replicas.call(servers[0], "POST", "/api/v1/agents/pairings", json={})
        registered = httpx.post(
            servers[1].url + "/api/v1/agents/register",
            json={"pairing_code": pairing["pairing_code"], "version": "1", "platform": "test"},
            timeout=30,
        )
        assert registered.status_code == 201, registered.text
        agent_id = registered.json()["data"]["id"]
        agent_token = registered.json()["data"]["agent_token"]
        online = httpx.post(  # registering alone does not make an agent online
            servers[2].url + "/api/v1/agents/heartbeat",
            json={"agent_id": agent_id},
            headers={"Authorization": f"Bearer {agent_token}"},
            timeout=30,
        )
        assert online.status_code == 200, online.text

        claimed: list[list[tuple[str, int]]] = [[] for _ in range(3 * POLLERS_PER_REPLICA)]
        enqueued: list[list[str]] = [[] for _ in range(ENQUEUERS)]
        failures: list[str] = []
        done = threading.Event()

        def poll(slot: int) -> None:
            server = servers[slot % 3]
            with httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {agent_token}"},
                timeout=30,
            ) as client:
                while not done.is_set():
                    response = client.get(
                        "/api/v1/commands/next",
                        params={"agent_id": agent_id, "timeout_ms": 1000},
                    )
                    if response.status_code == 200:
                        command = response.json()["data"]
                        claimed[slot].append((command["id"], command["attempts"]))
                    elif response.status_code != 204:
                        failures.append(f"poll {response.status_code}: {response.text[:200]}")
                        return

        def enqueue(slot: int) -> None:
            server = servers[slot % 3]
            with httpx.Client(
                base_url=server.url,
                headers={"Authorization": f"Bearer {replicas.token}"},
                timeout=30,
            ) as client:
                for n in range(slot, COMMANDS, ENQUEUERS):
                    response = client.post(
                        "/api/v1/vm-ops/commands",
                        json={
                            "agent_id": agent_id,
                            "command_type": "proxmox.status",
                            "payload": {"n": n},
                            "expires_in_seconds": 3600,
                        },
                    )
                    if response.status_code != 202:
                        failures.append(f"enqueue {response.status_code}: {response.text[:200]}")
                        return
                    enqueued[slot].append(response.json()["data"]["id"])

        pollers = [
            threading.Thread(target=poll, args=(slot,)) for slot in range(3 * POLLERS_PER_REPLICA)
        ]
        for thread in pollers:
            thread.start()
        time.sleep(1.0)  # the pollers have touched the agent: it counts as online
        started = time.monotonic()
        enqueuers = [threading.Thread(target=enqueue, args=(slot,)) for slot in range(ENQUEUERS)]
        for thread in enqueuers:
            thread.start()
        for thread in enqueuers:
            thread.join(timeout=600)
        deadline = time.monotonic() + 120
        while sum(map(len, claimed)) < COMMANDS and time.monotonic() < deadline and not failures:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        done.set()
        for thread in pollers:
            thread.join(timeout=30)
        assert failures == []
        every_enqueued = [cid for ids in enqueued for cid in ids]
        every_claim = [claim for claims in claimed for claim in claims]
        assert len(set(every_enqueued)) == COMMANDS
        assert len(every_claim) == len(set(every_claim)), "one dispatch was handed out twice"
        assert {attempts for _, attempts in every_claim} == {1}
        every_claimed = [cid for cid, _ in every_claim]
        assert len(every_claimed) == len(set(every_claimed)), "a command was claimed twice"
        assert set(every_claimed) == set(every_enqueued), "a command was lost"
        per_replica = [sum(len(claimed[s]) for s in range(r, len(claimed), 3)) for r in range(3)]
        assert all(n > 0 for n in per_replica), per_replica
        with psycopg.connect(postgres_url) as conn:
            rows = conn.execute(
                "select status, attempts, count(*) from botmox.commands where agent_id = %s"
                " group by 1, 2",
                (agent_id,),
            ).fetchall()
        assert rows == [("dispatched", 1, COMMANDS)]
        print(
            f"\n{COMMANDS} commands enqueued and claimed over 3 replicas in {elapsed:.1f} s;"
            f" claims per replica {per_replica}"
        )
