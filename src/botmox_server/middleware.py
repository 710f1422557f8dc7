"""Request ids and access logging without query strings (download URLs carry signatures)."""

from __future__ import annotations

import logging
import re
import secrets
import time
from typing import Any

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from botmox_server.logs import current_request_id, escape

log = logging.getLogger("botmox.access")
_INBOUND_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdMiddleware:
    """Sets ``X-Request-Id`` (kept from the caller when well-formed) and logs one line per
    request: method, path (never the query string), status, duration, request id.

    The path is the percent-decoded one, so it is escaped (``%0a`` is logged as ``\\n``, ``%00`` as
    ``\\x00``): a request cannot forge log lines. The request id is also available to every log
    record written while the request is served (:data:`botmox_server.logs.current_request_id`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        inbound = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = inbound if _INBOUND_ID.fullmatch(inbound) else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        context_token = current_request_id.set(request_id)
        started = time.perf_counter()
        status: dict[str, Any] = {"code": 0}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            method = escape(scope.get("method", "-"), 32)
            path = escape(scope["path"], 2048)
            duration_ms = round((time.perf_counter() - started) * 1000, 1)
            log.info(
                "%s %s %s %.1fms request_id=%s",
                method,
                path,
                status["code"],
                duration_ms,
                request_id,
                extra={
                    "method": method,
                    "path": path,
                    "status": status["code"],
                    "duration_ms": duration_ms,
                    "request_id": request_id,
                },
            )
            current_request_id.reset(context_token)
