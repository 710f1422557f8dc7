"""The write freeze gate (botmox_server.freeze) over a real SQLite backend's control entry:
mutating requests 503 WRITES_FROZEN with Retry-After while frozen; reads, resolve-download and
heartbeats pass; the flag is re-read after the poll interval; a backend that cannot be read lets
requests through."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.migration.control import freeze, unfreeze
from botmox_server.freeze import WriteFreezeGate


@pytest.fixture
def backend() -> Iterator[SqliteBackend]:
    backend = SqliteBackend(":memory:")
    yield backend
    backend.close()


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def _call(gate: WriteFreezeGate, method: str, path: str) -> tuple[int, dict[bytes, bytes], Any]:
    sent: list[Any] = []

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": [], "state": {}}
    anyio.run(gate, scope, receive, send)
    headers = dict(sent[0].get("headers", []))
    body = sent[1]["body"]
    return sent[0]["status"], headers, json.loads(body) if body != b"ok" else body


def test_frozen_writes_answer_503_and_the_rest_passes(backend: SqliteBackend) -> None:
    gate = WriteFreezeGate(_app, backend, poll_seconds=0)
    assert _call(gate, "POST", "/api/v1/bots")[0] == 200
    freeze(backend, retry_after=42, reason="drill")
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        status, headers, body = _call(gate, method, "/api/v1/bots/x")
        assert status == 503
        assert headers[b"retry-after"] == b"42"
        assert body["success"] is False
        assert body["error"]["code"] == "WRITES_FROZEN"
        assert body["error"]["details"]["retry_after"] == 42
    for method, path in (
        ("GET", "/api/v1/bots"),
        ("HEAD", "/api/v1/bots"),
        ("OPTIONS", "/api/v1/bots"),
        ("POST", "/api/v1/artifacts/resolve-download"),
        ("POST", "/api/v1/license/heartbeat"),
        ("POST", "/api/v1/agents/heartbeat/"),
    ):
        assert _call(gate, method, path)[0] == 200, (method, path)
    unfreeze(backend)
    assert _call(gate, "POST", "/api/v1/bots")[0] == 200


def test_the_flag_is_cached_for_the_poll_interval(backend: SqliteBackend) -> None:
    gate = WriteFreezeGate(_app, backend, poll_seconds=3600)
    assert _call(gate, "POST", "/api/v1/bots")[0] == 200
    freeze(backend)
    assert _call(gate, "POST", "/api/v1/bots")[0] == 200  # not re-read yet
    gate.poll_seconds = 0
    assert _call(gate, "POST", "/api/v1/bots")[0] == 503


def test_an_unreadable_flag_lets_requests_through(backend: SqliteBackend) -> None:
    gate = WriteFreezeGate(_app, backend, poll_seconds=0)
    freeze(backend)
    backend.close()
    assert _call(gate, "POST", "/api/v1/bots")[0] == 200
