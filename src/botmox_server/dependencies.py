"""Dependencies injected into route handlers: the core app and the authenticated principal."""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from litestar import Request
from litestar.di import NamedDependency

from botmox_core.bootstrap import App
from botmox_core.services import Principal

Core = NamedDependency[App]
"""The core services of this process (injected)."""
Caller = NamedDependency[Principal]
"""The authenticated caller (injected; raises 401 without valid credentials)."""


def provide_core(request: Request[Any, Any, Any]) -> App:
    return request.app.state.core  # type: ignore[no-any-return]


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    """The caller: an API token verified within the revocation bound is served from the cache
    on the event loop (no thread hop); anything else is checked in a worker thread."""
    return await authenticated_caller(request)


async def authenticated_caller(request: Request[Any, Any, Any]) -> Principal:
    """What :func:`provide_principal` injects, for handlers that take the request alone (the
    hot path: no dependency resolution, which runs several dependencies in a task group)."""
    authenticator = request.app.state.authenticator
    header = request.headers.get("authorization")
    cached: Principal | None = authenticator.cached(header)
    principal: Principal = (
        cached
        if cached is not None
        else await anyio.to_thread.run_sync(authenticator.authenticate, header)
    )
    request.scope.setdefault("state", {})["principal_subject"] = principal.subject
    return principal


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None
