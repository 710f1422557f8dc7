"""The agent bus: the application service behind ``/api/v1/agents``, ``/api/v1/vm-ops``,
``/api/v1/infra``, ``/api/v1/commands/next`` and the ``/ws/v1/agents/connect`` socket.

Modules: :mod:`.bus` (the service and its follow-ups), :mod:`.hub` (live sockets),
:mod:`.session` (the socket protocol), :mod:`.frames` (frame limits and checks),
:mod:`.poll` (the long-poll), :mod:`.sweeper` (timeouts), :mod:`.views` (public JSON).
"""

from botmox_server.agent_bus.bus import AgentBus, Bus, provide_bus

__all__ = ["AgentBus", "Bus", "provide_bus"]
