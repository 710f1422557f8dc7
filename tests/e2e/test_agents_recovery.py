"""Crashes and restarts over real processes: the server SIGKILLed while a command is out, the agent
SIGKILLed mid-command (restarted, or gone for good), graceful shutdown handing commands back,
and the offline window."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from botmox_core.agent.journal import CommandJournal
from tests.e2e.test_agents import World, done, make_world

pytestmark = pytest.mark.e2e


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(
        tmp_path,
        {"BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS": "0.2", "BOTMOX_COMMAND_ACK_TIMEOUT_SECONDS": "5"},
    )


@pytest.fixture
def short_offline_world(tmp_path: Path) -> Iterator[World]:
    yield from make_world(
        tmp_path,
        {
            "BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS": "0.2",
            "BOTMOX_AGENT_OFFLINE_SECONDS": "3",
        },
    )


def wait_for(predicate, timeout: float = 20, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_server_killed_while_command_is_out_redelivers_and_runs_once(world: World) -> None:
    agent_id, process, runs = world.paired_runtime("survivor")
    release = world.tmp / "release-survivor"
    with process:
        world.wait_connected(agent_id)
        command = world.enqueue(agent_id, "test.block", {"release": str(release)}).json()["data"]
        wait_for(lambda: runs.read_text().strip() == command["id"], what="the handler to start")
        status_at_kill = world.command(command["id"])["status"]
        assert status_at_kill in ("dispatched", "running")
        world.server.kill()  # SIGKILL by PID while the command is out on the agent
        world.server.start()  # same port, same data directory
        world.wait_connected(agent_id)
        wait_for(lambda: "delivered again" in process.log(), what="the redelivery")
        assert world.command(command["id"])["status"] in ("dispatched", "running")
        release.touch()
        final = world.wait_command(command["id"], done)
        assert final["status"] == "succeeded", final
        assert final["output"] == "waiting\nreleased\n"
        assert process.terminate() == 0
    assert runs.read_text().splitlines() == [command["id"]], "the handler ran exactly once"
    journal_path = process.state.with_name(process.state.name + ".journal.sqlite3")
    assert journal_path.stat().st_mode & 0o777 == 0o600
    journal = CommandJournal(journal_path)
    entry = journal.get(command["id"])
    journal.close()
    assert entry is not None and entry.deliveries >= 2 and entry.result_acked


def test_agent_killed_mid_command_and_restarted_reports_it_failed(world: World) -> None:
    agent_id, process, runs = world.paired_runtime("crashy")
    release = world.tmp / "release-crashy"
    process.start()
    try:
        world.wait_connected(agent_id)
        command = world.enqueue(agent_id, "test.block", {"release": str(release)}).json()["data"]
        wait_for(lambda: runs.read_text().strip() == command["id"], what="the handler to start")
        process.kill()
        release.touch()  # a re-run would finish now: it must not happen
        assert world.command(command["id"])["status"] in ("dispatched", "running")
        process.start()
        final = world.wait_command(command["id"], done)
        assert final["status"] == "failed", final
        assert "interrupted" in final["error"]
        later = world.enqueue(agent_id, "test.echo").json()["data"]
        assert world.wait_command(later["id"], done)["status"] == "succeeded"
    finally:
        process.kill()
    assert runs.read_text().splitlines() == [command["id"], later["id"]]


def test_agent_killed_and_gone_ends_failed_not_running(short_offline_world: World) -> None:
    world = short_offline_world
    agent_id, process, runs = world.paired_runtime("gone")
    process.start()
    try:
        world.wait_connected(agent_id)
        command = world.enqueue(agent_id, "test.block", {"release": str(world.tmp / "never")})
        command_id = command.json()["data"]["id"]
        wait_for(lambda: runs.read_text().strip() == command_id, what="the handler to start")
        killed_at = time.monotonic()
        process.kill()
        final = world.wait_command(command_id, done, timeout=15)
        assert final["status"] == "failed" and "agent lost" in final["error"]
        assert time.monotonic() - killed_at < 10
        agent = world.call("GET", f"/api/v1/agents/{agent_id}", world.admin).json()["data"]
        assert agent["status"] == "offline" and agent["connected"] is False
        offline = world.enqueue(agent_id, "test.echo")
        assert offline.status_code == 409 and offline.json()["error"]["code"] == "AGENT_OFFLINE"
        listed = world.call("GET", "/api/v1/agents?status=offline", world.admin).json()["data"]
        assert agent_id in [a["id"] for a in listed]
    finally:
        process.kill()


def test_connected_agent_stays_online_past_the_window(short_offline_world: World) -> None:
    world = short_offline_world
    agent_id, process, _runs = world.paired_runtime("steady")
    with process:
        world.wait_connected(agent_id)
        time.sleep(4.5)  # longer than the 3 s window: heartbeats keep it online
        agent = world.call("GET", f"/api/v1/agents/{agent_id}", world.admin).json()["data"]
        assert agent["status"] == "active"
        command = world.enqueue(agent_id, "test.echo").json()["data"]
        assert world.wait_command(command["id"], done)["status"] == "succeeded"


def test_graceful_shutdown_hands_running_commands_back(world: World) -> None:
    agent_id, process, runs = world.paired_runtime("polite", TEST_GRACE="0.5")
    release = world.tmp / "release-polite"
    process.start()
    try:
        world.wait_connected(agent_id)
        command = world.enqueue(agent_id, "test.block", {"release": str(release)}).json()["data"]
        wait_for(lambda: runs.read_text().strip() == command["id"], what="the handler to start")
        assert process.terminate() == 0
        back = world.command(command["id"])
        assert back["status"] == "queued", back  # handed back, not lost, not failed
        release.touch()
        process.start()
        final = world.wait_command(command["id"], done)
        assert final["status"] == "succeeded" and final["attempts"] == 2
    finally:
        process.kill()
    assert runs.read_text().splitlines() == [command["id"], command["id"]]
