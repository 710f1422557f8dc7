"""Agent transport port: how a command enqueued on one server replica reaches the replica that
holds the agent's connection.

Declared in the foundation; implemented by the agent command bus (in-process on the embedded
default, PostgreSQL ``LISTEN/NOTIFY`` in botmox-supabase). Transports are asynchronous.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol


class AgentTransport(Protocol):
    """Fan-out of wake-up messages to the replica holding an agent's socket."""

    name: str

    async def start(self) -> None:
        """Open connections; called once at server start."""

    async def publish(self, agent_id: str, message: Mapping[str, Any]) -> None:
        """Deliver ``message`` to whichever replica subscribed to ``agent_id`` (at most once;
        the command queue in the repository is the source of truth)."""

    def subscribe(self, agent_id: str) -> AsyncIterator[Mapping[str, Any]]:
        """Messages published for ``agent_id`` until the iterator is closed."""

    async def stop(self) -> None:
        """Close connections; called once at server shutdown."""
