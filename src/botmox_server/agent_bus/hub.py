"""The live agent sockets of this server process: one per agent, a newer one replaces the
older."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from botmox_core.models import Agent
from botmox_server.agent_bus.frames import CLOSE_REPLACED, CLOSE_REVOKED

__all__ = ["AgentHub", "LiveSession"]


class LiveSession(Protocol):
    """A live agent socket as the hub sees it
    (:class:`~botmox_server.agent_bus.session.LiveSession`)."""

    agent: Agent

    async def close(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` (once)."""
        ...


class AgentHub:
    """The registry of live agent sessions, by agent id."""

    def __init__(self) -> None:
        self._sessions: dict[str, LiveSession] = {}
        self._watchers: list[Callable[[int], None]] = []

    def watch(self, callback: Callable[[int], None]) -> None:
        """Call ``callback`` with the number of live sockets now and after every change (the
        metrics gauge follows the hub this way, with no polling lag)."""
        self._watchers.append(callback)
        callback(len(self._sessions))

    def _changed(self) -> None:
        for callback in self._watchers:
            callback(len(self._sessions))

    def connected(self, agent_id: str) -> bool:
        """Whether this process holds a live socket of the agent."""
        return agent_id in self._sessions

    def __len__(self) -> int:
        return len(self._sessions)

    async def attach(self, session: LiveSession) -> None:
        """Register ``session``; the agent's previous socket here is closed (4409)."""
        previous = self._sessions.get(session.agent.id)
        self._sessions[session.agent.id] = session
        self._changed()
        if previous is not None:
            await previous.close(CLOSE_REPLACED, "replaced by a newer connection")

    def detach(self, session: LiveSession) -> None:
        """Forget ``session`` (unless a newer one replaced it already)."""
        if self._sessions.get(session.agent.id) is session:
            del self._sessions[session.agent.id]
            self._changed()

    async def close_revoked(self, agent_id: str) -> None:
        """Close the agent's socket here, if any (4403)."""
        session = self._sessions.get(agent_id)
        if session is not None:
            await session.close(CLOSE_REVOKED, "agent revoked")
