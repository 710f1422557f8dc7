"""The botmox ASGI application (Litestar): the v1 HTTP contract on top of the core services."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar, Request, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from botmox_core import __version__
from botmox_core.bootstrap import App, bootstrap
from botmox_core.config import Settings, load_settings
from botmox_server.agent_bus import AgentBus, provide_bus
from botmox_server.auth import Authenticator, hearing_revocations
from botmox_server.bounded_json import BoundedRequest
from botmox_server.dependencies import provide_core, provide_principal
from botmox_server.errors import EXCEPTION_HANDLERS
from botmox_server.freeze import install_write_freeze
from botmox_server.metrics import install_metrics
from botmox_server.middleware import RequestIdMiddleware
from botmox_server.ratelimit import install_rate_limiter
from botmox_server.routes import agents, artifacts, health, infra, licence, vm_ops, vms
from botmox_server.routes.agent_secrets import AgentSecretController
from botmox_server.routes.agent_ws import agent_connect
from botmox_server.routes.domains import ROUTES as DOMAIN_ROUTES
from botmox_server.routes.localfs_download import localfs_download_routes
from botmox_server.routes.vault import SecretController

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
    vms.set_vm_status,
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
    agents.AgentController,
    vm_ops.CommandController,
    infra.InfraController,
    vm_ops.CommandPollController,
    openapi_document,
    *localfs_download_routes,
    *DOMAIN_ROUTES,
    SecretController,
    AgentSecretController,
]

#: WebSocket routes (documented in docs/agent-protocol.md, not in OpenAPI).
WEBSOCKET_ROUTES: list[Any] = [agent_connect]


_WIRE_DEBUG_FORMATS = frozenset({"< %s", "> %s", "< %s: %s", "> %s: %s"})


def _no_websocket_wire_debug(record: logging.LogRecord) -> bool:
    """Drop the ``websockets`` library's wire debug lines (request headers with bearer tokens,
    frames with agent tokens and command payloads) that uvicorn routes to ``uvicorn.error``."""
    return not (record.levelno <= logging.DEBUG and record.msg in _WIRE_DEBUG_FORMATS)


def create_app(settings: Settings | None = None, core: App | None = None) -> Litestar:
    """Build the server. Without arguments it reads the environment (zero config: SQLite and
    local files under ``./.botmox``). ``core`` lets tests and embedders pass prepared services."""
    if core is None:
        core = bootstrap(settings or load_settings())
    uvicorn_log = logging.getLogger("uvicorn.error")
    if _no_websocket_wire_debug not in uvicorn_log.filters:
        uvicorn_log.addFilter(_no_websocket_wire_debug)

    bus = AgentBus(core)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        """The agent bus (transport, sweeper) runs while the app does; the core closes last."""
        try:
            async with bus.running(), hearing_revocations(core.transport, core.tokens):
                yield
        finally:
            core.close()

    app = Litestar(
        route_handlers=[*ROUTES, *WEBSOCKET_ROUTES],
        dependencies={
            "core": Provide(provide_core, sync_to_thread=False),
            "principal": Provide(provide_principal),
            "bus": Provide(provide_bus, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        state=State(
            {
                "core": core,
                "storage": core.storage,
                "authenticator": Authenticator(core.settings, core.tokens, core.agents),
                "agent_bus": bus,
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
            # path + method is unique; Litestar's default (handler name) collides for sync handlers
            operation_id_creator=lambda _, method, parts: (
                "".join(str(getattr(part, "name", part)).title() for part in parts) + method.title()
            ),
        ),
        lifespan=[lifespan],
        request_max_body_size=JSON_BODY_LIMIT,
        request_class=BoundedRequest,
        debug=False,
        logging_config=None,  # one log format: `botmox serve` configures logging (logs.py)
    )
    app = install_write_freeze(app, core)  # inside the limiter: frozen writes still count
    app = install_rate_limiter(app, core)
    app = install_metrics(app, core)  # outside the limiter: its 429s are counted
    # Outermost, around routing: unknown paths (404) and refused requests (429) get a request id
    # and an access-log line too.
    app.asgi_handler = RequestIdMiddleware(app.asgi_handler)
    return app
