"""Command routes: enqueue (generic, Proxmox, Syncthing, ``/infra/*``), read, cancel, the
agent's status updates and the HTTP long-poll for agents that cannot hold a socket."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Mapping
from functools import partial
from typing import Any

import attrs
from litestar import Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from botmox_core.errors import BadRequestError, ForbiddenError, NotFoundError, UnauthorizedError
from botmox_core.models import Command, Role
from botmox_core.services import Principal
from botmox_core.services import validation as check
from botmox_core.services.commands import (
    MAX_PAYLOAD_BYTES,
    PROXMOX_ACTIONS,
    SYNCTHING_ACTIONS,
    command_view,
)
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok
from botmox_server.routes.agent_ws import AgentHub, Hub

LONG_POLL_DEFAULT_MS, LONG_POLL_MAX_MS = 25_000, 60_000
INFRA_TARGET_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}(/[a-z0-9][a-z0-9-]{0,31}){0,3}$")


@attrs.define
class EnqueueBody:
    agent_id: str
    command_type: str
    payload: dict[str, Any] | None = None
    expires_in_seconds: int | None = None
    execution_timeout_seconds: int | None = None
    idempotency_key: str | None = None


@attrs.define
class ActionBody:
    agent_id: str
    params: dict[str, Any] | None = None
    expires_in_seconds: int | None = None
    execution_timeout_seconds: int | None = None
    idempotency_key: str | None = None


@attrs.define
class CommandUpdateBody:
    status: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    output: list[dict[str, Any]] | None = None


async def _enqueue(
    core: Any,
    hub: AgentHub,
    principal: Principal,
    *,
    agent_id: str,
    command_type: str,
    payload: dict[str, Any] | None,
    expires_in_seconds: int | None,
    execution_timeout_seconds: int | None,
    idempotency_key: str | None,
    payload_field: str = "payload",
) -> Response[Any]:
    # bounded (size and depth) under the name the caller used (`params` on the action routes)
    payload = check.json_object(payload, payload_field, MAX_PAYLOAD_BYTES)
    command, created = await hub.run(
        partial(
            core.commands.enqueue,
            principal,
            agent_id=agent_id,
            command_type=command_type,
            payload=payload,
            expires_in_seconds=expires_in_seconds,
            execution_timeout_seconds=execution_timeout_seconds,
            idempotency_key=idempotency_key,
            connected=hub.connected,
        )
    )
    if created:
        await hub.wake(command.agent_id)
    return ok(command_view(command), 202 if created else 200)


@post("/api/v1/vm-ops/commands", tags=["commands"], status_code=202)
async def enqueue_command(
    data: JSONBody[EnqueueBody], core: Core, principal: Caller, hub: Hub
) -> Response[Any]:
    """Queue a command for an agent (admin/infra): 202 new, 200 when ``idempotency_key``
    names an existing command; 409 ``AGENT_OFFLINE``."""
    principal.require(Role.ADMIN, Role.INFRA)
    return await _enqueue(
        core,
        hub,
        principal,
        agent_id=data.agent_id,
        command_type=data.command_type,
        payload=data.payload,
        expires_in_seconds=data.expires_in_seconds,
        execution_timeout_seconds=data.execution_timeout_seconds,
        idempotency_key=data.idempotency_key,
    )


async def _action(
    family: str,
    allowed: frozenset[str],
    action: str,
    data: ActionBody,
    core: Any,
    principal: Principal,
    hub: AgentHub,
) -> Response[Any]:
    if action not in allowed:
        raise BadRequestError(
            f"unknown {family} action {action[:40]!r}",
            details=[{"field": "action", "message": "one of " + ", ".join(sorted(allowed))}],
        )
    return await _enqueue(
        core,
        hub,
        principal,
        agent_id=data.agent_id,
        command_type=f"{family}.{action}",
        payload=data.params,
        payload_field="params",
        expires_in_seconds=data.expires_in_seconds,
        execution_timeout_seconds=data.execution_timeout_seconds,
        idempotency_key=data.idempotency_key,
    )


@post("/api/v1/vm-ops/proxmox/{action:str}", tags=["commands"], status_code=202)
async def proxmox_action(
    action: FromPath[str], data: JSONBody[ActionBody], core: Core, principal: Caller, hub: Hub
) -> Response[Any]:
    """Queue ``proxmox.<action>`` for an agent (``params`` become the payload)."""
    return await _action("proxmox", PROXMOX_ACTIONS, action, data, core, principal, hub)


@post("/api/v1/vm-ops/syncthing/{action:str}", tags=["commands"], status_code=202)
async def syncthing_action(
    action: FromPath[str], data: JSONBody[ActionBody], core: Core, principal: Caller, hub: Hub
) -> Response[Any]:
    """Queue ``syncthing.<action>`` for an agent."""
    return await _action("syncthing", SYNCTHING_ACTIONS, action, data, core, principal, hub)


@post("/api/v1/infra/{target:path}", tags=["commands"], status_code=202)
async def infra_action(
    target: FromPath[str], data: JSONBody[ActionBody], core: Core, principal: Caller, hub: Hub
) -> Response[Any]:
    """Direct infrastructure access (admin/infra only): queues ``infra.<target>`` (slashes
    become dots) for the agent; the cloud side never executes it itself."""
    if principal.role not in (Role.ADMIN, Role.INFRA):
        raise ForbiddenError("/api/v1/infra is for admin and infra roles only")
    path = target.strip("/")
    if not INFRA_TARGET_RE.fullmatch(path):
        raise NotFoundError(f"no infra target {path[:60]!r}")
    return await _enqueue(
        core,
        hub,
        principal,
        agent_id=data.agent_id,
        command_type="infra." + path.replace("/", "."),
        payload=data.params,
        payload_field="params",
        expires_in_seconds=data.expires_in_seconds,
        execution_timeout_seconds=data.execution_timeout_seconds,
        idempotency_key=data.idempotency_key,
    )


@get("/api/v1/vm-ops/commands/{command_id:str}", tags=["commands"])
async def get_command(
    command_id: FromPath[str], core: Core, principal: Caller, hub: Hub
) -> Response[Any]:
    """One command with its full stored ``output``; 404 ``COMMAND_NOT_FOUND``."""
    # async: Litestar mixes up sync_to_thread when a path also has an async handler (PATCH)
    command, output = await hub.run(core.commands.get, principal, command_id)
    return ok(command_view(command, output or ""))


@get("/api/v1/vm-ops/commands", sync_to_thread=True, tags=["commands"])
def list_commands(
    core: Core,
    principal: Caller,
    agent_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    limit: FromQuery[int] = 100,
) -> Response[Any]:
    """The tenant's commands, newest first (at most 100)."""
    commands = core.commands.list(principal, agent_id=agent_id, status=status, limit=limit)
    return ok(
        [command_view(command) for command in commands],
        meta={"total": len(commands), "page": 1, "limit": limit},
    )


@patch("/api/v1/vm-ops/commands/{command_id:str}", tags=["commands"])
async def update_command(
    command_id: FromPath[str],
    data: JSONBody[CommandUpdateBody],
    core: Core,
    principal: Caller,
    hub: Hub,
) -> Response[Any]:
    """Status update by the command's agent: output chunks and ``running`` | ``succeeded`` |
    ``failed`` | ``cancelled`` (after a cancel request) | ``queued`` (hand back)."""
    command: Command = await hub.run(
        partial(
            core.commands.update_by_agent,
            principal,
            command_id,
            status=data.status,
            result=data.result,
            error=data.error,
            output=data.output,
        )
    )
    if command.status.is_final or data.status == "queued":
        await hub.wake(command.agent_id)
    return ok(command_view(command))


@post("/api/v1/vm-ops/commands/{command_id:str}/cancel", tags=["commands"])
async def cancel_command(
    command_id: FromPath[str], core: Core, principal: Caller, hub: Hub
) -> Response[Any]:
    """**Beyond:** request cancellation: queued → cancelled at once; dispatched/running get a
    cancel request the agent acknowledges."""
    command: Command = await hub.run(core.commands.request_cancel, principal, command_id)
    if not command.status.is_final:
        await hub.cancel(command.agent_id, command.id)
    return ok(command_view(command))


@get("/api/v1/commands/next", tags=["commands"])
async def next_command(
    core: Core,
    principal: Caller,
    hub: Hub,
    agent_id: FromQuery[str | None] = None,
    timeout_ms: FromQuery[int] = LONG_POLL_DEFAULT_MS,
) -> Response[Any]:
    """Long-poll for the agent's next command: 200 with the command (now ``dispatched``;
    acknowledge it with ``PATCH ... {status: running}``), or 204 after ``timeout_ms``
    (default 25 s, at most 60 s)."""
    if principal.role is not Role.AGENT or principal.subject is None:
        raise ForbiddenError("only agents poll for commands")
    if agent_id is not None and agent_id != principal.subject:
        raise ForbiddenError("an agent polls only for itself")
    if not 0 <= timeout_ms <= LONG_POLL_MAX_MS:
        raise BadRequestError(
            f"timeout_ms: must be from 0 to {LONG_POLL_MAX_MS}",
            details=[{"field": "timeout_ms", "message": f"0-{LONG_POLL_MAX_MS}"}],
        )
    me, tenant = principal.subject, principal.tenant_id
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    messages = core.transport.subscribe(me)
    waiter: asyncio.Future[Any] = asyncio.ensure_future(anext(messages))
    await asyncio.sleep(0)  # let the subscription register before looking at the queue
    try:
        await hub.run(core.agents.touch, tenant, me)
        while True:
            claimed = await hub.run(partial(core.commands.claim, tenant, me, 10**6, limit=1))
            if claimed:
                return ok(command_view(claimed[0]))
            remaining = deadline - loop.time()
            if remaining <= 0:
                return Response(content=None, status_code=204)
            done, _ = await asyncio.wait({waiter}, timeout=remaining)
            if not done:
                return Response(content=None, status_code=204)
            message = waiter.result()
            if isinstance(message, Mapping) and message.get("type") == "revoked":
                raise UnauthorizedError("agent revoked")
            waiter = asyncio.ensure_future(anext(messages))
    finally:
        waiter.cancel()
        with contextlib.suppress(BaseException):
            await waiter
        with contextlib.suppress(Exception):
            await messages.aclose()  # type: ignore[attr-defined]
