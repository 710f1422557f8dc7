"""Secrets stay out of logs even at debug level: the server (uvicorn + websockets wire debug) and
the agent runtime never print agent tokens, pairing codes or API tokens."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from botmox_core.testing.agents import AgentProcess, ServerProcess
from tests.e2e.test_agents import AGENT_APP

pytestmark = pytest.mark.e2e


def test_debug_logs_carry_no_secrets(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"BOTMOX_PLUGINS": "none"}, log_level="debug")
    with server:
        admin = server.admin("token", "create", "--tenant", "t", "--role", "admin")["token"]
        headers = {"Authorization": f"Bearer {admin}"}
        pairing = httpx.post(server.url + "/api/v1/agents/pairings", json={}, headers=headers)
        code = pairing.json()["data"]["pairing_code"]
        registered = httpx.post(server.url + "/api/v1/agents/register", json={"pairing_code": code})
        agent_id, token = registered.json()["data"]["id"], registered.json()["data"]["agent_token"]
        ws_url = server.url.replace("http://", "ws://") + "/ws/v1/agents/connect"

        async def talk() -> None:
            async with connect(
                ws_url, additional_headers={"Authorization": f"Bearer {token}"}
            ) as ws:
                await ws.send(json.dumps({"type": "hello"}))
                assert json.loads(await ws.recv())["type"] == "welcome"
            async with connect(ws_url) as ws:  # token inside the hello frame
                await ws.send(json.dumps({"type": "hello", "token": token}))
                assert json.loads(await ws.recv())["type"] == "welcome"

        asyncio.run(talk())
        # the runtime at debug level, with its own token
        second = httpx.post(server.url + "/api/v1/agents/pairings", json={}, headers=headers)
        app = tmp_path / "agent_app.py"
        app.write_text(AGENT_APP)
        state = tmp_path / "agent.json"
        from botmox_core.agent import pair

        paired = pair(server.url, second.json()["data"]["pairing_code"], state_path=state)
        runtime = AgentProcess(f"{app}:agent", state, log_level="debug").start()
        try:
            deadline = time.monotonic() + 20
            while not httpx.get(
                f"{server.url}/api/v1/agents/{paired.agent_id}", headers=headers
            ).json()["data"]["connected"]:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            runtime.terminate()
        assert agent_id
    server_log = server.log()
    assert "DEBUG" in server_log  # debug logging really was on
    for secret in (token, admin, code, paired.agent_token):
        assert secret not in server_log
        assert secret not in runtime.log()
