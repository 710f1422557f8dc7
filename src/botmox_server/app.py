"""The botmox ASGI application (Litestar): the v1 HTTP contract on top of the core services."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from botmox_core import __version__
from botmox_core.bootstrap import App, bootstrap
from botmox_core.config import Settings, load_settings
from botmox_server.auth import Authenticator
from botmox_server.dependencies import provide_core, provide_principal
from botmox_server.errors import EXCEPTION_HANDLERS
from botmox_server.middleware import RequestIdMiddleware
from botmox_server.routes import artifacts, health, licence, vms
from botmox_server.routes.localfs_download import localfs_download_routes

__all__ = ["create_app"]

log = logging.getLogger("botmox.server")
JSON_BODY_LIMIT = 1024 * 1024


@get("/api/v1/openapi.json", include_in_schema=False)
async def openapi_document(request: Request[Any, Any, Any]) -> Response[Any]:
    """The OpenAPI 3.1 document of this server."""
    return Response(request.app.openapi_schema.to_schema())


ROUTES: list[Any] = [
    health.health,
    health.live,
    health.ready,
    vms.register_vm,
    vms.resolve_vm,
    licence.issue_lease,
    licence.heartbeat,
    licence.revoke,
    licence.public_key,
    artifacts.publish_release,
    artifacts.upload_release,
    artifacts.get_release,
    artifacts.assign,
    artifacts.get_assignment,
    artifacts.resolve_download,
    artifacts.audit_log,
    openapi_document,
    *localfs_download_routes,
]


def create_app(settings: Settings | None = None, core: App | None = None) -> Litestar:
    """Build the server. Without arguments it reads the environment (zero config: SQLite and
    local files under ``./.botmox``). ``core`` lets tests and embedders pass prepared services."""
    if core is None:
        core = bootstrap(settings or load_settings())

    async def close_core() -> None:
        core.close()

    return Litestar(
        route_handlers=ROUTES,
        dependencies={
            "core": Provide(provide_core, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=True),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[RequestIdMiddleware],
        state=State(
            {
                "core": core,
                "storage": core.storage,
                "authenticator": Authenticator(core.settings, core.tokens),
            }
        ),
        openapi_config=OpenAPIConfig(
            title="botmox",
            version=__version__,
            path="/api/v1/docs",
            components=Components(
                security_schemes={"bearer": SecurityScheme(type="http", scheme="bearer")}
            ),
            security=[{"bearer": []}],
        ),
        on_shutdown=[close_core],
        request_max_body_size=JSON_BODY_LIMIT,
        debug=False,
    )
