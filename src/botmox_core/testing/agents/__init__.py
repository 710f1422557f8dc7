"""Conformance suite for the agent command bus repositories (``uow.agents``, ``uow.commands``).

A backend that supports agents subclasses :class:`AgentRepositoryConformance` next to
:class:`~botmox_core.testing.RepositoryConformance`, with the same ``backend`` fixture::

    class TestMyBackendAgents(AgentRepositoryConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            backend = MyBackend(tmp_path / "db")
            yield backend
            backend.close()

``second_backend`` (another instance on the same store) enables the cross-instance claim test.
The claim tests are what a multi-replica backend must pass: no command is ever claimed twice.

The suite is split by aggregate, one mixin each (:class:`AgentConformance`,
:class:`CommandConformance`, :class:`ClaimConformance`), all generic over the backend type;
:class:`AgentRepositoryConformance` composes them. :class:`ServerProcess` and
:class:`AgentProcess` (real processes for end-to-end tests) live in
:mod:`botmox_core.testing.agents.processes`.
"""

from __future__ import annotations

from typing import TypeVar

from botmox_core.ports import DataBackend
from botmox_core.testing.agents._base import AgentConformanceBase
from botmox_core.testing.agents._support import T0, make_agent, make_command
from botmox_core.testing.agents.agents import AgentConformance
from botmox_core.testing.agents.claims import ClaimConformance
from botmox_core.testing.agents.commands import CommandConformance
from botmox_core.testing.agents.processes import AgentProcess, ServerProcess

__all__ = [
    "T0",
    "AgentConformance",
    "AgentConformanceBase",
    "AgentProcess",
    "AgentRepositoryConformance",
    "ClaimConformance",
    "CommandConformance",
    "ServerProcess",
    "make_agent",
    "make_command",
]

B = TypeVar("B", bound=DataBackend)


class AgentRepositoryConformance(
    AgentConformance[B],
    CommandConformance[B],
    ClaimConformance[B],
):
    """Pytest mixin: what ``uow.agents`` and ``uow.commands`` of a backend must do (every
    agent aggregate's mixin). Fixtures and tunables: see
    :class:`~botmox_core.testing.agents._base.AgentConformanceBase`."""
