"""The command object as ``docs/agent-protocol.md`` documents it (a JSON Schema in the page),
checked against real command objects from a running server: over the WebSocket and from every
HTTP route that answers one. The schema forbids unknown fields and requires every documented
one, so a field added to or removed from the command without the doc fails here."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import jsonschema_rs
import pytest
from websockets.asyncio.client import connect

from botmox_core.models import Command
from tests.e2e.test_agents import World, _h, _hello, _next, make_world

pytestmark = pytest.mark.e2e

DOC = Path(__file__).resolve().parents[2] / "docs" / "agent-protocol.md"
#: Fields of the stored command that are never part of the public object.
INTERNAL_FIELDS = {"tenant_id", "created_by"}


def documented_schema() -> dict[str, Any]:
    text = DOC.read_text()
    found = re.search(r"<!-- command-schema -->\s*```json\n(.*?)\n```", text, re.S)
    assert found, "docs/agent-protocol.md has no command schema block"
    return json.loads(found.group(1))  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from make_world(tmp_path_factory.mktemp("schema"), {})


def test_schema_names_every_field_of_the_model() -> None:
    schema = documented_schema()
    jsonschema_rs.meta.validate(schema)
    model = {field.name for field in attrs.fields(Command)} - INTERNAL_FIELDS
    assert set(schema["properties"]) == model | {"output"}
    assert set(schema["required"]) == model
    assert schema["additionalProperties"] is False


def test_real_command_objects_match_the_documented_schema(world: World) -> None:
    validator = jsonschema_rs.validator_for(documented_schema())
    agent_id, token = world.new_agent()
    objects: dict[str, dict[str, Any]] = {}

    async def over_the_socket() -> None:
        async with connect(world.ws_url, additional_headers=_h(token), compression=None) as ws:
            await _hello(ws)
            created = await asyncio.to_thread(
                world.enqueue,
                agent_id,
                "test.echo",
                {"vmid": 101, "deep": {"list": [1, "two", None]}},
                idempotency_key="schema-1",
            )
            objects["POST /vm-ops/commands"] = created.json()["data"]
            frame = await _next(ws, "command")
            objects["WS command"] = frame["command"]
            cid = frame["command"]["id"]
            await ws.send(json.dumps({"type": "ack", "command_id": cid}))
            await ws.send(
                json.dumps({"type": "progress", "command_id": cid, "seq": 0, "data": "o"})
            )
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
            action = await asyncio.to_thread(
                world.call,
                "POST",
                "/api/v1/vm-ops/proxmox/start",
                world.admin,
                json={"agent_id": agent_id, "params": {"vmid": 7}},
            )
            objects["POST /vm-ops/proxmox/start"] = action.json()["data"]
            objects["WS command (action)"] = (await _next(ws, "command"))["command"]

    asyncio.run(over_the_socket())
    finished = objects["WS command"]["id"]
    objects["GET /vm-ops/commands/{id}"] = world.command(finished)
    listed = world.call("GET", f"/api/v1/vm-ops/commands?agent_id={agent_id}", world.admin)
    for index, item in enumerate(listed.json()["data"]):
        objects[f"GET /vm-ops/commands [{index}]"] = item
    # the long-poll and the agent's PATCH answer the same object
    polled = world.enqueue(agent_id, "test.echo", execution_timeout_seconds=60)
    assert polled.status_code == 202, polled.text
    nxt = world.call("GET", "/api/v1/commands/next?timeout_ms=2000", token)
    objects["GET /commands/next"] = nxt.json()["data"]
    patched = world.call(
        "PATCH",
        f"/api/v1/vm-ops/commands/{nxt.json()['data']['id']}",
        token,
        json={"status": "failed", "error": "nope"},
    )
    objects["PATCH /vm-ops/commands/{id}"] = patched.json()["data"]

    problems = {
        where: [str(error) for error in validator.iter_errors(obj)]
        for where, obj in objects.items()
    }
    assert {where: errors for where, errors in problems.items() if errors} == {}
    assert "output" in objects["GET /vm-ops/commands/{id}"]
    assert "output" not in objects["WS command"]
    assert objects["GET /vm-ops/commands/{id}"]["result"] == {"ok": True}
