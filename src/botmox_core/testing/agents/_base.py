"""The base every agent conformance mixin shares: the ``backend`` fixtures, the tenants and the
unit-of-work helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Generic, TypeVar

import pytest

from botmox_core.models import Agent, Command
from botmox_core.ports import DataBackend
from botmox_core.ports.agents import AgentUnitOfWork
from botmox_core.testing.agents._support import _uid, make_agent, make_command

B = TypeVar("B", bound=DataBackend)
T = TypeVar("T")

__all__ = ["AgentConformanceBase"]


class AgentConformanceBase(Generic[B]):
    """Pytest mixin base: fixtures and helpers of the agent conformance mixins.

    Fixtures to provide:
        backend: yields a fresh, empty backend whose units of work carry ``agents`` and
            ``commands`` (required).
        second_backend: another instance on the same store (optional; enables the
            cross-instance claim test).

    Tunables:
        claim_threads, commands_to_claim: size of the concurrent claim test.
    """

    claim_threads: ClassVar[int] = 4
    commands_to_claim: ClassVar[int] = 60

    @pytest.fixture
    def backend(self) -> Iterator[B]:
        raise NotImplementedError(
            f"{type(self).__name__} must define a `backend` fixture yielding a fresh, empty "
            "DataBackend whose units of work carry `agents` and `commands`"
        )

    @pytest.fixture
    def second_backend(self, backend: B) -> Iterator[B]:
        pytest.skip(f"{type(self).__name__} has no `second_backend` fixture")

    @pytest.fixture
    def tenant(self) -> str:
        return _uid("tenant_a")

    @pytest.fixture
    def other_tenant(self) -> str:
        return _uid("tenant_b")

    @staticmethod
    def committed(backend: B, action: Callable[[AgentUnitOfWork], T]) -> T:
        with backend.unit_of_work() as uow:
            result = action(uow)  # type: ignore[arg-type]
            uow.commit()
        return result

    @staticmethod
    def read(backend: B, action: Callable[[AgentUnitOfWork], T]) -> T:
        with backend.unit_of_work() as uow:
            return action(uow)  # type: ignore[arg-type]

    def _agent(self, backend: B, tenant: str, **changes: Any) -> Agent:
        agent = make_agent(tenant, **changes)
        self.committed(backend, lambda uow: uow.agents.add(agent))
        return agent

    def _command(self, backend: B, tenant: str, agent_id: str, **changes: Any) -> Command:
        command = make_command(tenant, agent_id, **changes)
        self.committed(backend, lambda uow: uow.commands.add(command))
        return command

    @staticmethod
    def _scan(backend: B, name: str, tenant: str, after: str | None, limit: int) -> list[Any]:
        with backend.unit_of_work() as uow:
            return list(getattr(uow, name).scan(tenant, after=after, limit=limit))
