"""What the socket session, the long-poll and the sweeper use of the bus (so that they need
not import :class:`~botmox_server.agent_bus.bus.AgentBus`, which imports them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from botmox_core.bootstrap import App
from botmox_server.agent_bus.hub import AgentHub

__all__ = ["BusContext"]

T = TypeVar("T")


class BusContext(Protocol):
    """The core services, the hub, the worker threads and the wake-ups."""

    core: App
    hub: AgentHub

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a synchronous service call on the worker threads."""
        ...

    async def wake(self, agent_id: str) -> None:
        """Tell whichever replica holds the agent's socket to look at its queue."""
        ...

    async def abort(self, agent_id: str, command_id: str) -> None:
        """Tell the agent that the server settled a command."""
        ...

    async def settled(self, command_id: str) -> None:
        """Wake the requests waiting for the command's final state."""
        ...
