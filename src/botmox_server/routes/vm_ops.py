"""Command routes: enqueue (generic, Proxmox, Syncthing), read, cancel, the agent's status
updates and the HTTP long-poll for agents that cannot hold a socket. (``/api/v1/infra`` is
:mod:`botmox_server.routes.infra`.)

The enqueue routes take an optional ``?wait=SECONDS`` (0-60, default 0): the answer then comes
once the command is final (200 with its ``result``) or after the wait (202, still running);
waiting holds no thread (:mod:`botmox_server.agent_bus.completion`).

Thin: each handler calls one method of the agent bus or the command service and shapes the
answer; who may call what is the services' rule (:mod:`botmox_core.services.principal`).
"""

from __future__ import annotations

from typing import Any

import attrs
from litestar import Controller, Response, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from botmox_core.models import Command
from botmox_core.services.infra import wait_seconds
from botmox_core.services.principal import Principal
from botmox_server.agent_bus import AgentBus, Bus
from botmox_server.agent_bus.poll import LONG_POLL_DEFAULT_MS
from botmox_server.agent_bus.views import command_view
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok

__all__ = ["CommandController", "CommandPollController"]


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


async def _queued(
    bus: AgentBus, principal: Principal, queued: tuple[Command, bool], seconds: float
) -> Response[Any]:
    """202 for a new command still in flight (200 for an existing one), 200 once final
    within ``seconds``."""
    command, created = queued
    if seconds > 0:
        command = await bus.wait_until_final(principal, command, seconds)
        if command.status.is_final:
            return ok(command_view(command), 200)
    return ok(command_view(command), 202 if created else 200)


class CommandController(Controller):
    """``/api/v1/vm-ops``: queue, read, cancel and update commands."""

    path = "/api/v1/vm-ops"
    tags = ("commands",)

    @post("/commands", status_code=202)
    async def enqueue_command(
        self,
        data: JSONBody[EnqueueBody],
        principal: Caller,
        bus: Bus,
        wait: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """Queue a command for an agent (admin/infra): 202 new, 200 when ``idempotency_key``
        names an existing command or when it ended within ``?wait=``; 409 ``AGENT_OFFLINE``."""
        seconds = wait_seconds(wait, 0)  # a bad wait is refused before anything is queued
        queued = await bus.enqueue(principal, **_fields(data))
        return await _queued(bus, principal, queued, seconds)

    @post("/proxmox/{action:str}", status_code=202)
    async def proxmox_action(
        self,
        action: FromPath[str],
        data: JSONBody[ActionBody],
        principal: Caller,
        bus: Bus,
        wait: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """Queue ``proxmox.<action>`` for an agent (``params`` become the payload);
        ``?wait=`` as for ``/commands``."""
        seconds = wait_seconds(wait, 0)
        queued = await bus.enqueue_action(principal, "proxmox", action, **_fields(data))
        return await _queued(bus, principal, queued, seconds)

    @post("/syncthing/{action:str}", status_code=202)
    async def syncthing_action(
        self,
        action: FromPath[str],
        data: JSONBody[ActionBody],
        principal: Caller,
        bus: Bus,
        wait: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """Queue ``syncthing.<action>`` for an agent; ``?wait=`` as for ``/commands``."""
        seconds = wait_seconds(wait, 0)
        queued = await bus.enqueue_action(principal, "syncthing", action, **_fields(data))
        return await _queued(bus, principal, queued, seconds)

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
