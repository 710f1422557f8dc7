"""Dependencies injected into route handlers: the core app and the authenticated principal."""

from __future__ import annotations

from typing import Any

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


def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.app.state.authenticator.authenticate(
        request.headers.get("authorization")
    )
    request.scope.setdefault("state", {})["principal_subject"] = principal.subject
    return principal


def client_ip(request: Request[Any, Any, Any]) -> str | None:
    return request.client.host if request.client else None
