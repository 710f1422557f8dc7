"""The cutover's write freeze: while the data backend's ``writes_frozen`` control entry exists
(``botmox cutover freeze``), mutating requests answer 503 ``WRITES_FROZEN`` with
``Retry-After``; reads keep working, and so do the writes a running farm needs to keep going:
``POST /api/v1/artifacts/resolve-download`` (downloads of leased artifacts),
``POST /api/v1/license/heartbeat`` and ``POST /api/v1/agents/heartbeat`` (heartbeats).

The flag lives in the data backend, so every replica sharing it sees a change: each replica
reads it at most every :data:`POLL_SECONDS` (off the event loop, only when a mutating request
arrives). A backend without control entries cannot be frozen; a failed read lets requests
through (logged), so the freeze never takes a deployment down by itself.
"""

from __future__ import annotations

import json
import logging
import secrets
import time

import anyio.to_thread
from litestar import Litestar
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Receive, Scope, Send

from botmox_core.bootstrap import App
from botmox_core.migration.control import FreezeState, freeze_state
from botmox_core.ports.control import ControlDataBackend, supports_control

__all__ = ["ALLOWED_WHILE_FROZEN", "POLL_SECONDS", "WriteFreezeGate", "install_write_freeze"]

log = logging.getLogger("botmox.freeze")

#: Seconds a replica trusts what it last read of the flag.
POLL_SECONDS = 2.0
#: Methods that never write.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Writing requests that keep working during the freeze.
ALLOWED_WHILE_FROZEN = frozenset(
    {
        "/api/v1/artifacts/resolve-download",
        "/api/v1/license/heartbeat",
        "/api/v1/agents/heartbeat",
    }
)


class WriteFreezeGate:
    """ASGI gate answering 503 ``WRITES_FROZEN`` to mutating requests while frozen."""

    def __init__(
        self, app: ASGIApp, backend: ControlDataBackend, poll_seconds: float = POLL_SECONDS
    ) -> None:
        self.app = app
        self.backend = backend
        self.poll_seconds = poll_seconds
        self._state = FreezeState(frozen=False)
        self._read_at = float("-inf")

    async def state(self) -> FreezeState:
        if time.monotonic() - self._read_at >= self.poll_seconds:
            try:
                self._state = await anyio.to_thread.run_sync(freeze_state, self.backend)
            except Exception as exc:  # never take requests down with the flag
                log.warning("could not read the write freeze flag: %s", type(exc).__name__)
            self._read_at = time.monotonic()
        return self._state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != ScopeType.HTTP
            or scope.get("method", "GET") in SAFE_METHODS
            or scope["path"].rstrip("/") in ALLOWED_WHILE_FROZEN
        ):
            await self.app(scope, receive, send)
            return
        state = await self.state()
        if not state.frozen:
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {
                "success": False,
                "error": {
                    "code": "WRITES_FROZEN",
                    "message": "writes are frozen for a data migration; retry later",
                    "details": {"retry_after": state.retry_after, "frozen_at": state.frozen_at},
                },
            }
        ).encode()
        request_id = scope.get("state", {}).get("request_id") or secrets.token_hex(8)
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(state.retry_after).encode()),
                    (b"x-request-id", str(request_id).encode("ascii", "replace")),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})


def install_write_freeze(app: Litestar, core: App) -> Litestar:
    """Put the freeze gate in front of ``app`` when the data backend has control entries."""
    if supports_control(core.backend):
        app.asgi_handler = WriteFreezeGate(app.asgi_handler, core.backend)
    return app
