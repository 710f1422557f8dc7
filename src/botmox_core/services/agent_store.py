"""Where the agent and command services get their repositories: a data backend's agent units
of work, and the liveness rule that goes with them."""

from __future__ import annotations

from typing import Protocol

from botmox_core.domain.agents import AgentLiveness
from botmox_core.errors import AgentsNotSupportedError
from botmox_core.ports import DataBackend
from botmox_core.ports.agents import AgentUnitOfWork, supports_agents

__all__ = ["AgentRepositories", "AgentStore"]


class AgentRepositories(Protocol):
    """What :class:`~botmox_core.services.commands.CommandService` needs of the agent side.

    Attributes:
        supported: whether the data backend stores agents and commands at all.
        liveness: the offline window (who may get new commands, who is lost).
    """

    @property
    def supported(self) -> bool: ...

    @property
    def liveness(self) -> AgentLiveness: ...

    def unit(self) -> AgentUnitOfWork:
        """A fresh unit of work with the agent and command repositories; 501
        ``AGENTS_NOT_SUPPORTED`` when the backend has none."""
        ...


class AgentStore:
    """The :class:`AgentRepositories` of one data backend."""

    def __init__(self, backend: DataBackend, liveness: AgentLiveness | None = None) -> None:
        self._backend = backend
        self.supported: bool = supports_agents(backend)
        self.liveness = liveness or AgentLiveness()

    def unit(self) -> AgentUnitOfWork:
        backend = self._backend
        if not supports_agents(backend):
            raise AgentsNotSupportedError(
                f"the {backend.name} data backend does not store agents and commands"
            )
        return backend.unit_of_work()
