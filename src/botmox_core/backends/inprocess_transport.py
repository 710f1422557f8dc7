"""``inprocess`` agent transport: wake-ups inside one server process (the embedded default).

Each subscriber gets its own bounded asyncio queue; a publish to an agent nobody subscribed to is
dropped, which is correct because the command queue in the repository is the source of truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from botmox_core.plugin.spec import hookimpl

QUEUE_LIMIT = 1000


class InProcessTransport:
    """Agent transport for a single server process."""

    name = "inprocess"

    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Mapping[str, Any]]]] = {}

    async def start(self) -> None:
        return None

    async def publish(self, agent_id: str, message: Mapping[str, Any]) -> None:
        self.deliver(agent_id, message)

    def deliver(self, agent_id: str, message: Mapping[str, Any]) -> None:
        """Hand ``message`` to this process's subscribers of ``agent_id`` (never blocks)."""
        for queue in list(self._subscribers.get(agent_id, ())):
            if queue.full():  # a stuck subscriber loses wake-ups, never blocks others
                continue
            queue.put_nowait(message)

    async def subscribe(self, agent_id: str) -> AsyncIterator[Mapping[str, Any]]:
        queue: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers.setdefault(agent_id, set()).add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            subscribers = self._subscribers.get(agent_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[agent_id]

    async def stop(self) -> None:
        self._subscribers.clear()


@hookimpl
def botmox_register_agent_transports(register: Any) -> None:
    register("inprocess", lambda settings: InProcessTransport())
