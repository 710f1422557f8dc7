"""``botmox serve --workers 2`` on the embedded default (SQLite + local files), real processes.

An agent holds its WebSocket on one worker; a keep-alive HTTP connection that lands on the
*other* worker (it answers ``connected: false`` for the agent) enqueues commands, and the agent
runs each within seconds: the ``unixsocket`` transport woke the worker holding the socket (its
own heartbeat, 30 s away, would otherwise be the next look at the queue). Revoking through the
other worker closes the socket. ``/metrics`` sums both workers. With
``BOTMOX_AGENT_TRANSPORT=inprocess`` the server refuses ``--workers 2`` with a clear message.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botmox_core.agent import Agent, CommandContext, pair
from botmox_core.testing.server import RunningServer, admin_cli, running_server
from tests.e2e.agent_support import AgentInThread

TENANT = "tenant-workers"
METRICS_TOKEN = "metrics-" + "b2" * 16
#: Well below the agent's 30 s heartbeat, which would also make the server look at the queue.
PROMPT_SECONDS = 5.0


class AgentThread(AgentInThread):
    """The core's agent runtime in a thread, paired with the server."""

    def __init__(self, server: RunningServer, token: str, tmp: Path) -> None:
        pairing = httpx.post(
            server.url + "/api/v1/agents/pairings",
            json={"name": "rack-1"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).json()["data"]
        state = pair(server.url, pairing["pairing_code"], state_path=tmp / "agent.json")
        super().__init__(
            Agent(concurrency=4, shutdown_grace=2), state, tmp / "agent.journal.sqlite3"
        )
        self.id = state.agent_id
        self.ran: dict[str, float] = {}
        self.runtime.handler("proxmox.start")(self._start)

    async def _start(self, ctx: CommandContext) -> dict[str, Any]:
        self.ran.setdefault(ctx.id, time.monotonic())
        ctx.write(f"vm {ctx.payload['vmid']} started\n")
        return {"vmid": ctx.payload["vmid"]}


def _client(server: RunningServer, token: str) -> httpx.Client:
    """One keep-alive connection: every request of this client reaches the same worker."""
    return httpx.Client(
        base_url=server.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )


def _connected(client: httpx.Client, agent_id: str) -> bool:
    answer = client.get(f"/api/v1/agents/{agent_id}")
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["data"]["connected"])


@contextlib.contextmanager
def _worker_pair(server: RunningServer, token: str, agent_id: str) -> Iterator[httpx.Client]:
    """A client bound to the worker that does *not* hold the agent's socket."""
    deadline = time.monotonic() + 30
    holder_seen = False
    for _ in range(200):
        assert time.monotonic() < deadline, "no connection reached the other worker"
        client = _client(server, token)
        if not _connected(client, agent_id):
            if holder_seen:
                try:
                    yield client
                finally:
                    client.close()
                return
        else:
            holder_seen = True  # the socket is up: a "false" now means the other worker
        client.close()
    raise AssertionError("no connection reached the other worker")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    env = {"BOTMOX_METRICS_TOKEN": METRICS_TOKEN}
    with running_server(
        tmp_path / "data", env, args=["--workers", "2"], startup_timeout=60
    ) as running:
        yield running


def test_an_agent_on_one_worker_gets_commands_enqueued_through_the_other(
    server: RunningServer, tmp_path: Path
) -> None:
    token = admin_cli(server, "token", "create", "--tenant", TENANT, "--role", "admin")["token"]
    deadline = time.monotonic() + 30  # the first worker may answer before the second started
    while len(sockets := list((server.data_dir / "agent-bus").glob("*.sock"))) < 2:
        assert time.monotonic() < deadline, sockets
        time.sleep(0.1)
    assert len(sockets) == 2, sockets  # one unixsocket per worker
    agent = AgentThread(server, token, tmp_path)
    agent.start()
    try:
        with _worker_pair(server, token, agent.id) as other:
            for n in range(5):
                queued_at = time.monotonic()
                answer = other.post(
                    "/api/v1/vm-ops/proxmox/start",
                    json={"agent_id": agent.id, "params": {"vmid": 100 + n}},
                )
                assert answer.status_code == 202, answer.text
                command_id = answer.json()["data"]["id"]
                deadline = queued_at + PROMPT_SECONDS
                while command_id not in agent.ran:
                    assert agent.error is None, agent.error
                    assert time.monotonic() < deadline, "the wake-up did not cross the workers"
                    time.sleep(0.05)
                while (
                    other.get(f"/api/v1/vm-ops/commands/{command_id}").json()["data"]["status"]
                    != "succeeded"
                ):
                    assert time.monotonic() < deadline + 10
                    time.sleep(0.05)
                assert not _connected(other, agent.id)  # still the other worker
            seen = other.get(f"/api/v1/vm-ops/commands/{command_id}").json()["data"]
            assert seen["output"] == "vm 104 started\n"
            metrics = httpx.get(
                server.url + "/metrics",
                headers={"Authorization": f"Bearer {METRICS_TOKEN}"},
                timeout=30,
            ).text
            assert 'botmox_commands{state="succeeded"} 5.0' in metrics
            assert "botmox_agents_connected 1.0" in metrics  # summed over both workers
            revoked = other.post(f"/api/v1/agents/{agent.id}/revoke", json={"reason": "test"})
            assert revoked.status_code == 200, revoked.text
        assert agent.finished.wait(10), "revoking through the other worker left the socket open"
    finally:
        agent.stop()
    assert len(set(agent.ran)) == 5


def test_workers_refuse_the_inprocess_transport(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "botmox_core", "serve", "--workers", "2", "--port", "1"],
        env={**os.environ, "BOTMOX_DATA_DIR": str(tmp_path), "BOTMOX_AGENT_TRANSPORT": "inprocess"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "--workers above 1 cannot use the inprocess agent transport" in done.stderr
    assert "the environment variable BOTMOX_AGENT_TRANSPORT" in done.stderr
    assert "Traceback" not in done.stderr
