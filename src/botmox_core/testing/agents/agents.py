"""Agent conformance: the ``uow.agents`` repository."""

from __future__ import annotations

import attrs
import pytest

from botmox_core.errors import BotmoxError, DuplicateError
from botmox_core.models import Agent, AgentStatus
from botmox_core.ports.agents import supports_agents
from botmox_core.testing.agents._base import AgentConformanceBase, B
from botmox_core.testing.agents._support import _at, make_agent

__all__ = ["AgentConformance"]


class AgentConformance(AgentConformanceBase[B]):
    """Pytest mixin: what ``uow.agents`` of a backend must do."""

    def test_backend_supports_agents(self, backend: B) -> None:
        assert supports_agents(backend), "units of work must carry `agents` and `commands`"

    def test_agent_round_trip(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        assert self.read(backend, lambda uow: uow.agents.get(tenant, agent.id)) == agent

    def test_agent_pending_round_trip(self, backend: B, tenant: str) -> None:
        agent = self._agent(
            backend,
            tenant,
            status=AgentStatus.PENDING,
            pairing_code_hash="c" * 64,
            token_hash=None,
            capabilities=(),
            public_key=None,
            registered_at=None,
            last_seen_at=None,
            token_expires_at=None,
            name=None,
        )
        assert self.read(backend, lambda uow: uow.agents.get(tenant, agent.id)) == agent
        found = self.read(backend, lambda uow: uow.agents.get_by_pairing_hash("c" * 64))
        assert found == agent

    def test_agent_lookup_by_token_hash(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        token_hash = agent.token_hash
        assert token_hash is not None
        found = self.read(backend, lambda uow: uow.agents.get_by_token_hash(token_hash))
        assert found == agent
        assert self.read(backend, lambda uow: uow.agents.get_by_token_hash("0" * 64)) is None

    def test_agent_duplicate_id_and_token_hash_are_refused(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        with pytest.raises(DuplicateError):
            self.committed(
                backend, lambda uow: uow.agents.add(attrs.evolve(agent, token_hash="1" * 64))
            )
        with pytest.raises(DuplicateError):
            self.committed(
                backend, lambda uow: uow.agents.add(make_agent(tenant, token_hash=agent.token_hash))
            )

    def test_agent_list_newest_first_and_by_status(self, backend: B, tenant: str) -> None:
        first = self._agent(backend, tenant, created_at=_at(1))
        second = self._agent(backend, tenant, created_at=_at(2), status=AgentStatus.REVOKED)
        third = self._agent(backend, tenant, created_at=_at(3))
        listed = self.read(backend, lambda uow: uow.agents.list(tenant))
        assert [a.id for a in listed] == [third.id, second.id, first.id]
        active = self.read(backend, lambda uow: uow.agents.list(tenant, AgentStatus.ACTIVE))
        assert [a.id for a in active] == [third.id, first.id]

    def test_agent_modify(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        changed = self.committed(
            backend,
            lambda uow: uow.agents.modify(
                tenant,
                agent.id,
                lambda a: attrs.evolve(
                    a, status=AgentStatus.REVOKED, revoked_at=_at(99), revoke_reason="x"
                ),
            ),
        )
        assert changed is not None and changed.status is AgentStatus.REVOKED
        assert self.read(backend, lambda uow: uow.agents.get(tenant, agent.id)) == changed
        assert (
            self.committed(
                backend, lambda uow: uow.agents.modify(tenant, "agt_missing", lambda a: a)
            )
            is None
        )

    def test_agent_modify_abort_writes_nothing(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)

        def boom(current: Agent) -> Agent:
            raise BotmoxError("no")

        with pytest.raises(BotmoxError):
            self.committed(backend, lambda uow: uow.agents.modify(tenant, agent.id, boom))
        assert self.read(backend, lambda uow: uow.agents.get(tenant, agent.id)) == agent

    def test_agent_tenant_isolation(self, backend: B, tenant: str, other_tenant: str) -> None:
        agent = self._agent(backend, tenant)
        assert self.read(backend, lambda uow: uow.agents.get(other_tenant, agent.id)) is None
        assert self.read(backend, lambda uow: uow.agents.list(other_tenant)) == []
        assert (
            self.committed(
                backend,
                lambda uow: uow.agents.modify(other_tenant, agent.id, lambda a: a),
            )
            is None
        )
