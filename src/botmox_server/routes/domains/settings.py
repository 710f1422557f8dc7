"""Settings routes: ``GET /settings``, ``GET|PUT|PATCH /settings/{path}`` (PUT and PATCH both
merge)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, patch, put
from litestar.params import FromPath, JSONBody

from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok


@get("/api/v1/settings", sync_to_thread=True, tags=["settings"])
def read_settings(core: Core, principal: Caller) -> Response[Any]:
    """The tenant's whole settings tree (``{}`` when empty)."""
    return ok(core.domains.settings.read(principal))


@get("/api/v1/settings/{path:path}", sync_to_thread=True, tags=["settings"])
def read_setting(path: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
    """The value at the path (``null`` when absent); 400 ``Invalid settings path``."""
    return ok(core.domains.settings.read(principal, path))


@put("/api/v1/settings/{path:path}", sync_to_thread=True, tags=["settings"])
def put_setting(
    path: FromPath[str], core: Core, principal: Caller, data: JSONBody[Any] = None
) -> Response[Any]:
    """Merge the body at the path (checked by the path's schema): the value after."""
    return ok(core.domains.settings.write(principal, path, data))


@patch("/api/v1/settings/{path:path}", sync_to_thread=True, tags=["settings"])
def patch_setting(
    path: FromPath[str], core: Core, principal: Caller, data: JSONBody[Any] = None
) -> Response[Any]:
    """The same merge as PUT."""
    return ok(core.domains.settings.write(principal, path, data))


ROUTES: list[Any] = [read_settings, read_setting, put_setting, patch_setting]
