"""The botmox ASGI application (Litestar): the v1 HTTP contract on top of the core services."""

from __future__ import annotations

import asyncio
import contextlib
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
from botmox_server.bounded_json import BoundedRequest
from botmox_server.dependencies import provide_core, provide_principal
from botmox_server.errors import EXCEPTION_HANDLERS
from botmox_server.middleware import RequestIdMiddleware
from botmox_server.ratelimit import install_rate_limiter
from botmox_server.routes import agents, artifacts, health, licence, vm_ops, vms
from botmox_server.routes.agent_ws import AgentHub, agent_connect, provide_hub, sweep_forever
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
    agents.create_pairing,
    agents.register_agent,
    agents.agent_heartbeat,
    agents.list_agents,
    agents.get_agent,
    agents.revoke_agent,
    vm_ops.enqueue_command,
    vm_ops.proxmox_action,
    vm_ops.syncthing_action,
    vm_ops.infra_action,
    vm_ops.get_command,
    vm_ops.list_commands,
    vm_ops.update_command,
    vm_ops.cancel_command,
    vm_ops.next_command,
    openapi_document,
    *localfs_download_routes,
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

    hub = AgentHub(core)
    background: list[asyncio.Task[None]] = []

    async def start_agent_bus() -> None:
        await core.transport.start()
        background.append(asyncio.create_task(sweep_forever(hub), name="botmox-command-sweeper"))

    async def close_core() -> None:
        for task in background:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await core.transport.stop()
        core.close()

    app = Litestar(
        route_handlers=[*ROUTES, *WEBSOCKET_ROUTES],
        dependencies={
            "core": Provide(provide_core, sync_to_thread=False),
            "principal": Provide(provide_principal, sync_to_thread=True),
            "hub": Provide(provide_hub, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        state=State(
            {
                "core": core,
                "storage": core.storage,
                "authenticator": Authenticator(core.settings, core.tokens, core.agents),
                "agent_hub": hub,
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
        on_startup=[start_agent_bus],
        on_shutdown=[close_core],
        request_max_body_size=JSON_BODY_LIMIT,
        request_class=BoundedRequest,
        debug=False,
        logging_config=None,  # one log format: `botmox serve` configures logging (logs.py)
    )
    app = install_rate_limiter(app, core)
    # Outermost, around routing: unknown paths (404) and refused requests (429) get a request id
    # and an access-log line too.
    app.asgi_handler = RequestIdMiddleware(app.asgi_handler)
    return app
