"""The agent's local files: the 0600 state file and the command journal that makes execution
at-most-once across restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botmox_core.agent import AgentState, CommandJournal, load_state, save_state
from botmox_core.cli.agent import load_app
from botmox_core.errors import ConfigurationError

STATE = AgentState(
    server_url="https://botmox.example/",
    agent_id="agt_1",
    tenant_id="t1",
    agent_token="bma_secret",
    private_key="cHJpdmF0ZQ==",
)


def test_state_round_trip_is_owner_only_and_secret_free_in_repr(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "agent.json"
    save_state(STATE, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_state(path) == STATE
    assert "bma_secret" not in repr(STATE) and "cHJpdmF0ZQ" not in repr(STATE)
    assert STATE.websocket_url == "wss://botmox.example/ws/v1/agents/connect"


def test_state_refuses_missing_readable_or_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="agent pair"):
        load_state(tmp_path / "missing.json")
    path = tmp_path / "agent.json"
    save_state(STATE, path)
    path.chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        load_state(path)
    path.chmod(0o600)
    path.write_text("{not json")
    with pytest.raises(ConfigurationError):
        load_state(path)
    path.write_text(json.dumps({"server_url": "x"}))
    with pytest.raises(ConfigurationError):
        load_state(path)


def test_journal_dedups_and_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    journal = CommandJournal(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert journal.delivered("cmd_1", "x.y") is None
    journal.accept("cmd_1", "x.y")
    again = journal.delivered("cmd_1", "x.y")
    assert again is not None and again.state == "accepted" and again.deliveries == 1
    journal.finish("cmd_1", "succeeded", {"ok": True})
    assert [e.id for e in journal.unconfirmed()] == ["cmd_1"]
    journal.result_acked("cmd_1")
    assert journal.unconfirmed() == []
    journal.accept("cmd_2", "x.y")  # the process dies while running it
    journal.close()

    reopened = CommandJournal(path)
    assert reopened.mark_interrupted() == ["cmd_2"]
    interrupted = reopened.get("cmd_2")
    assert interrupted is not None and interrupted.status == "failed"
    assert "interrupted" in (interrupted.error or "")
    finished = reopened.get("cmd_1")
    assert finished is not None and finished.result == {"ok": True} and finished.deliveries == 2
    reopened.release("cmd_2")
    assert reopened.get("cmd_2").state == "released"  # type: ignore[union-attr]
    reopened.prune(keep_seconds=0)
    assert reopened.get("cmd_1") is None  # confirmed and old: pruned
    reopened.close()


def test_load_app_reports_bad_apps_cleanly(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('oops')\n")
    with pytest.raises(ConfigurationError, match="oops"):
        load_app(f"{broken}:agent")
    not_agent = tmp_path / "plain.py"
    not_agent.write_text("agent = 42\n")
    with pytest.raises(ConfigurationError, match=r"not a botmox_core\.agent\.Agent"):
        load_app(f"{not_agent}:agent")
    with pytest.raises(ConfigurationError):
        load_app("no_such_module_here:agent")
    assert load_app("examples/agent.py").handlers
