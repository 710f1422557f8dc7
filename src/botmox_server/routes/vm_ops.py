"""Command routes: enqueue (generic, Proxmox, Syncthing, ``/infra/*``), read, cancel, the
agent's status updates and the HTTP long-poll for agents that cannot hold a socket.

Thin: each handler calls one method of the agent bus or the command service and shapes the
answer; who may call what is the services' rule (:mod:`botmox_core.services.principal`).
"""

from __future__ import annotations

from typing import Any

import attrs
from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from botmox_core.models import Command
from botmox_core.services.commands import INFRA_TARGET_RE
from botmox_server.agent_bus import Bus
from botmox_server.agent_bus.poll import LONG_POLL_DEFAULT_MS
from botmox_server.agent_bus.views import command_view
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok

__all__ = ["INFRA_TARGET_RE", "CommandController", "CommandPollController", "InfraController"]


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


def _fields(body: EnqueueBody | ActionBody | CommandUpdateBody) -> dict[str, Any]:
    return attrs.asdict(body, recurse=False)


def _queued(queued: tuple[Command, bool]) -> Response[Any]:
    command, created = queued
    return ok(command_view(command), 202 if created else 200)


class CommandController(Controller):
    """``/api/v1/vm-ops``: queue, read, cancel and update commands."""

    path = "/api/v1/vm-ops"
    tags = ("commands",)

    @post("/commands", status_code=202)
    async def enqueue_command(
        self, data: JSONBody[EnqueueBody], principal: Caller, bus: Bus
    ) -> Response[Any]:
        """Queue a command for an agent (admin/infra): 202 new, 200 when ``idempotency_key``
        names an existing command; 409 ``AGENT_OFFLINE``."""
        return _queued(await bus.enqueue(principal, **_fields(data)))

    @post("/proxmox/{action:str}", status_code=202)
    async def proxmox_action(
        self, action: FromPath[str], data: JSONBody[ActionBody], principal: Caller, bus: Bus
    ) -> Response[Any]:
        """Queue ``proxmox.<action>`` for an agent (``params`` become the payload)."""
        return _queued(await bus.enqueue_action(principal, "proxmox", action, **_fields(data)))

    @post("/syncthing/{action:str}", status_code=202)
    async def syncthing_action(
        self, action: FromPath[str], data: JSONBody[ActionBody], principal: Caller, bus: Bus
    ) -> Response[Any]:
        """Queue ``syncthing.<action>`` for an agent."""
        return _queued(await bus.enqueue_action(principal, "syncthing", action, **_fields(data)))

    @get("/commands/{command_id:str}")
    async def get_command(
        self, command_id: FromPath[str], core: Core, principal: Caller, bus: Bus
    ) -> Response[Any]:
        """One command with its full stored ``output``; 404 ``COMMAND_NOT_FOUND``."""
        # async: Litestar mixes up sync_to_thread when a path also has an async handler (PATCH)
        command, output = await bus.run(core.commands.get, principal, command_id)
        return ok(command_view(command, output or ""))

    @get("/commands", sync_to_thread=True)
    def list_commands(
        self,
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

    @patch("/commands/{command_id:str}")
    async def update_command(
        self,
        command_id: FromPath[str],
        data: JSONBody[CommandUpdateBody],
        principal: Caller,
        bus: Bus,
    ) -> Response[Any]:
        """Status update by the command's agent: output chunks and ``running`` |
        ``succeeded`` | ``failed`` | ``cancelled`` (after a cancel request) | ``queued``
        (hand back)."""
        command = await bus.update_by_agent(principal, command_id, **_fields(data))
        return ok(command_view(command))

    @post("/commands/{command_id:str}/cancel")
    async def cancel_command(
        self, command_id: FromPath[str], principal: Caller, bus: Bus
    ) -> Response[Any]:
        """**Beyond:** request cancellation: queued → cancelled at once; dispatched/running
        get a cancel request the agent acknowledges."""
        return ok(command_view(await bus.cancel(principal, command_id)))


class InfraController(Controller):
    """``/api/v1/infra``: direct infrastructure access through an agent."""

    path = "/api/v1/infra"
    tags = ("commands",)

    @post("/{target:path}", status_code=202)
    async def infra_action(
        self, target: FromPath[str], data: JSONBody[ActionBody], principal: Caller, bus: Bus
    ) -> Response[Any]:
        """Direct infrastructure access (admin/infra only): queues ``infra.<target>`` (slashes
        become dots) for the agent; the cloud side never executes it itself."""
        return _queued(await bus.enqueue_infra(principal, target, **_fields(data)))


class CommandPollController(Controller):
    """``/api/v1/commands``: the long-poll of agents without a socket."""

    path = "/api/v1/commands"
    tags = ("commands",)

    @get("/next")
    async def next_command(
        self,
        principal: Caller,
        bus: Bus,
        agent_id: FromQuery[str | None] = None,
        timeout_ms: FromQuery[int] = LONG_POLL_DEFAULT_MS,
    ) -> Response[Any]:
        """Long-poll for the agent's next command: 200 with the command (now
        ``dispatched``; acknowledge it with ``PATCH ... {status: running}``), or 204 after
        ``timeout_ms`` (default 25 s, at most 60 s)."""
        command = await bus.next_command(principal, agent_id, timeout_ms)
        if command is None:
            return Response(content=None, status_code=204)
        return ok(command_view(command))
