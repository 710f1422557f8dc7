"""The agent bus of one server process: the application service behind the agent routes.

It owns the hub of live sockets, the socket protocol (:mod:`.session`), the long-poll
(:mod:`.poll`), the sweeper (:mod:`.sweeper`) and every follow-up a state change needs:
a wake-up after an enqueue or a hand-back, the cancel request published to the agent's
replica, the sockets closed after a revocation. Routes call one method each and shape the
answer; the role rules are the services' (:mod:`botmox_core.services.principal`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Any, TypeVar

import anyio.to_thread
from litestar import WebSocket
from litestar.datastructures import State
from litestar.di import NamedDependency

from botmox_core.bootstrap import App
from botmox_core.models import Agent, Command
from botmox_core.services.infra import InfraService
from botmox_core.services.principal import Principal
from botmox_server.agent_bus import completion, poll, session, sweeper
from botmox_server.agent_bus.hub import AgentHub

__all__ = ["AgentBus", "Bus", "provide_bus"]

T = TypeVar("T")


class AgentBus:
    """Commands to agents and their answers, over sockets and the long-poll.

    Attributes:
        core: the core services of this process.
        hub: the live agent sockets of this process.
    """

    def __init__(self, core: App) -> None:
        self.core = core
        self.hub = AgentHub()
        self.infra = InfraService(core.commands, self._agents_of, self._binding_of)

    def _agents_of(self, tenant_id: str) -> Any:
        with self.core.agents.unit() as uow:
            return list(uow.agents.list(tenant_id))

    def _binding_of(self, *key: Any) -> Any:
        return self.core.vault.binding(*key) if self.core.vault.supported else None

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous service call on the worker threads."""
        return await anyio.to_thread.run_sync(partial(fn, *args, **kwargs))

    def connected(self, agent_id: str) -> bool:
        """Whether this process holds a live socket of the agent."""
        return self.hub.connected(agent_id)

    # -- wake-ups (reach the replica holding the agent's socket, or its long-poll) -------------

    async def wake(self, agent_id: str) -> None:
        """Tell whichever replica holds the agent's socket to look at its queue."""
        await self.core.transport.publish(agent_id, {"type": "wake"})

    async def publish_cancel(self, agent_id: str, command_id: str) -> None:
        """Pass a cancel request on to the agent."""
        await self.core.transport.publish(agent_id, {"type": "cancel", "command_id": command_id})

    async def abort(self, agent_id: str, command_id: str) -> None:
        """Tell the agent (wherever its socket is) that the server settled a command."""
        await self.core.transport.publish(agent_id, {"type": "abort", "command_id": command_id})
        await self.settled(command_id)

    async def settled(self, command_id: str) -> None:
        """Wake the requests waiting for the command's final state, on every replica
        (:mod:`.completion`)."""
        await self.core.transport.publish(
            completion.settled_channel(command_id), {"type": "settled", "command_id": command_id}
        )

    async def close_revoked(self, agent_id: str) -> None:
        """Close the agent's socket here and on every replica (its long-poll answers 401)."""
        await self.hub.close_revoked(agent_id)
        await self.core.transport.publish(agent_id, {"type": "revoked"})

    # -- operators -----------------------------------------------------------------------------

    async def enqueue(self, principal: Principal, **fields: Any) -> tuple[Command, bool]:
        """:meth:`CommandService.enqueue <botmox_core.services.commands.CommandService.enqueue>`
        (a live socket here counts as online), then wake the agent for a new command."""
        return await self._enqueued(self.core.commands.enqueue, principal, **fields)

    async def enqueue_action(
        self, principal: Principal, family: str, action: str, **fields: Any
    ) -> tuple[Command, bool]:
        """A Proxmox or Syncthing action (``CommandService.enqueue_action``), then a wake-up."""
        return await self._enqueued(
            self.core.commands.enqueue_action, principal, family, action, **fields
        )

    async def enqueue_infra_action(
        self,
        principal: Principal,
        command_type: str,
        *,
        target: dict[str, Any],
        params: Any = None,
        agent_id: Any = None,
    ) -> tuple[Command, bool]:
        """One ``/api/v1/infra`` operation for the tenant's designated infra agent
        (:class:`~botmox_core.services.infra.InfraService`), then a wake-up."""
        return await self._enqueued(
            self.infra.enqueue,
            principal,
            command_type,
            target=target,
            params=params,
            agent_id=agent_id,
        )

    async def wait_until_final(
        self, principal: Principal, command: Command, seconds: float
    ) -> Command:
        """The command once final, or as it stands after ``seconds``
        (:func:`.completion.wait_until_final`; no thread is held while waiting)."""
        return await completion.wait_until_final(self, principal, command, seconds)

    async def _enqueued(
        self, enqueue: Callable[..., tuple[Command, bool]], *args: Any, **fields: Any
    ) -> tuple[Command, bool]:
        command, created = await self.run(enqueue, *args, connected=self.connected, **fields)
        if created:
            await self.wake(command.agent_id)
        return command, created

    async def cancel(self, principal: Principal, command_id: str) -> Command:
        """Request cancellation; a command not settled at once gets the request published to
        its agent."""
        command = await self.run(self.core.commands.request_cancel, principal, command_id)
        if not command.status.is_final:
            await self.publish_cancel(command.agent_id, command.id)
        else:
            await self.settled(command.id)
        return command

    async def revoke(self, principal: Principal, agent_id: str, reason: Any) -> Agent:
        """Revoke the agent (its commands fail), then close its sockets everywhere."""
        agent = await self.run(self.core.agents.revoke, principal, agent_id, reason)
        await self.close_revoked(agent.id)
        return agent

    # -- agents over HTTP ----------------------------------------------------------------------

    async def update_by_agent(
        self, principal: Principal, command_id: str, **fields: Any
    ) -> Command:
        """The agent's status update over HTTP; a finished or handed-back command frees a
        place in its window, so the agent is woken for the next one."""
        command = await self.run(
            self.core.commands.update_by_agent, principal, command_id, **fields
        )
        if command.status.is_final or fields.get("status") == "queued":
            await self.wake(command.agent_id)
        if command.status.is_final:
            await self.settled(command.id)
        return command

    async def next_command(
        self, principal: Principal, agent_id: str | None, timeout_ms: int
    ) -> Command | None:
        """The long-poll (:func:`.poll.next_command`)."""
        return await poll.next_command(self, principal, agent_id, timeout_ms)

    async def serve(self, socket: WebSocket[Any, Any, Any]) -> None:
        """Run one agent socket to its end (:func:`.session.serve_connection`)."""
        await session.serve_connection(self, socket)

    # -- lifetime ------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Start the transport and the sweeper; on exit stop both (failures to stop are
        swallowed: shutdown goes on)."""
        await self.core.transport.start()
        task = asyncio.create_task(sweeper.sweep_forever(self), name="botmox-command-sweeper")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            with contextlib.suppress(Exception):
                await self.core.transport.stop()


Bus = NamedDependency[AgentBus]
"""The agent bus of this process (injected)."""


def provide_bus(state: State) -> AgentBus:
    return state.agent_bus  # type: ignore[no-any-return]
