"""A data backend without agent repositories (like the RTDB and Supabase plugins today) keeps
serving everything else; the agent routes answer 501 ``AGENTS_NOT_SUPPORTED``, never a crash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from litestar.testing import TestClient

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_core.ports import supports_agents
from botmox_core.services.agent_store import AgentStore
from botmox_server import create_app


class _UnitWithoutAgents:
    """Exposes only the foundation's repositories of a SQLite unit."""

    def __init__(self, unit: Any) -> None:
        self._unit = unit
        for name in ("tokens", "vms", "licences", "leases", "releases", "assignments", "audit"):
            setattr(self, name, getattr(unit, name))

    def commit(self) -> None:
        self._unit.commit()

    def rollback(self) -> None:
        self._unit.rollback()

    def __enter__(self) -> _UnitWithoutAgents:
        self._unit.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._unit.__exit__(*exc_info)


class BackendWithoutAgents(SqliteBackend):
    name = "no-agents"
    capabilities = attrs.evolve(SqliteBackend.capabilities, agents=False)

    def unit_of_work(self) -> Any:  # type: ignore[override]
        return _UnitWithoutAgents(super().unit_of_work())


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient[Any], str]]:
    settings = load_settings({"BOTMOX_DATA_DIR": str(tmp_path), "BOTMOX_PLUGINS": "none"})
    core = bootstrap(settings)
    core.backend.close()
    backend = BackendWithoutAgents(tmp_path / "db.sqlite3")
    core.backend = backend
    for service in (core.tokens, core.vms):
        service._backend = backend  # type: ignore[attr-defined]
    core.agents.store = AgentStore(backend, core.agents.liveness)
    token = core.tokens.create("tenant-a", "admin").secret
    with TestClient(create_app(core=core)) as test_client:
        yield test_client, token


def test_agent_routes_answer_501(client: tuple[TestClient[Any], str]) -> None:
    test_client, token = client
    headers = {"Authorization": f"Bearer {token}"}
    assert not supports_agents(BackendWithoutAgents())
    for method, path, body in [
        ("POST", "/api/v1/agents/pairings", {}),
        ("GET", "/api/v1/agents", None),
        ("POST", "/api/v1/vm-ops/commands", {"agent_id": "agt_1", "command_type": "x.y"}),
        ("GET", "/api/v1/vm-ops/commands/cmd_1", None),
        ("POST", "/api/v1/agents/register", {"pairing_code": "a" * 32}),
    ]:
        answer = test_client.request(method, path, json=body, headers=headers)
        assert answer.status_code == 501, (path, answer.text)
        assert answer.json()["error"]["code"] == "AGENTS_NOT_SUPPORTED"
    agent_token = {"Authorization": "Bearer bma_" + "x" * 43}
    polled = test_client.get("/api/v1/commands/next", headers=agent_token)
    assert polled.status_code == 501
    assert test_client.get("/api/v1/health/live").status_code == 200


def test_websocket_refuses_with_an_error_frame(client: tuple[TestClient[Any], str]) -> None:
    test_client, _token = client
    with test_client.websocket_connect("/ws/v1/agents/connect") as ws:
        ws.send_json({"type": "hello", "token": "bma_" + "x" * 43})
        frame = ws.receive_json()
    assert frame["type"] == "error" and frame["code"] == "AGENTS_NOT_SUPPORTED"
