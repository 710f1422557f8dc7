"""The agent channel ``/ws/v1/agents/connect`` (protocol: ``docs/agent-protocol.md``; the
session itself is :mod:`botmox_server.agent_bus.session`)."""

from __future__ import annotations

from typing import Any

from litestar import WebSocket, websocket

from botmox_server.agent_bus import Bus

__all__ = ["agent_connect"]


@websocket("/ws/v1/agents/connect")
async def agent_connect(socket: WebSocket[Any, Any, Any], bus: Bus) -> None:
    """The agent channel: one agent socket, served until either side closes."""
    await bus.serve(socket)
