"""Settings routes: ``GET /settings``, ``GET|PUT|PATCH /settings/{path}`` (PUT and PATCH both
merge)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, patch, put
from litestar.params import FromPath, JSONBody

from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok


class SettingsController(Controller):
    path = "/api/v1/settings"
    tags = ("settings",)

    @get("/", sync_to_thread=True)
    def read_tree(self, core: Core, principal: Caller) -> Response[Any]:
        """The tenant's whole settings tree (``{}`` when empty)."""
        return ok(core.domains.settings.read(principal))

    @get("/{path:path}", sync_to_thread=True)
    def read_value(self, path: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
        """The value at the path (``null`` when absent); 400 ``Invalid settings path``."""
        return ok(core.domains.settings.read(principal, path))

    @put("/{path:path}", sync_to_thread=True)
    def put_value(
        self, path: FromPath[str], core: Core, principal: Caller, data: JSONBody[Any] = None
    ) -> Response[Any]:
        """Merge the body at the path (checked by the path's schema): the value after."""
        return ok(core.domains.settings.write(principal, path, data))

    @patch("/{path:path}", sync_to_thread=True)
    def patch_value(
        self, path: FromPath[str], core: Core, principal: Caller, data: JSONBody[Any] = None
    ) -> Response[Any]:
        """The same merge as PUT."""
        return ok(core.domains.settings.write(principal, path, data))
