"""``GET /auth/verify`` and ``GET /auth/whoami``."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from botmox_core.services.domains import auth
from botmox_server.dependencies import Caller
from botmox_server.envelope import ok


@get("/api/v1/auth/verify", sync_to_thread=False, tags=["auth"])
def auth_verify(principal: Caller) -> Response[Any]:
    """``{valid: true}`` for a valid token (401 otherwise)."""
    return ok(auth.verify(principal))


@get("/api/v1/auth/whoami", sync_to_thread=False, tags=["auth"])
def auth_whoami(principal: Caller) -> Response[Any]:
    """The caller as the server sees it: tenant, role, user, token subject."""
    return ok(auth.whoami(principal))


ROUTES: list[Any] = [auth_verify, auth_whoami]
