"""Agent conformance: claiming queued commands (never twice, across threads and instances)."""

from __future__ import annotations

import threading

from botmox_core.models import CommandStatus
from botmox_core.testing.agents._base import AgentConformanceBase, B
from botmox_core.testing.agents._support import _at

__all__ = ["ClaimConformance"]


class ClaimConformance(AgentConformanceBase[B]):
    """Pytest mixin: ``uow.commands.claim`` hands each command to exactly one caller."""

    def test_claim_takes_oldest_unexpired_queued_of_that_agent(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        other = self._agent(backend, tenant)
        old = self._command(backend, tenant, agent.id, queued_at=_at(1))
        new = self._command(backend, tenant, agent.id, queued_at=_at(2))
        self._command(backend, tenant, agent.id, queued_at=_at(0), expires_at=_at(50))  # expired
        self._command(backend, tenant, agent.id, queued_at=_at(0), status=CommandStatus.RUNNING)
        self._command(backend, tenant, other.id, queued_at=_at(0))
        self._command(backend, other_tenant, agent.id, queued_at=_at(0))
        now = _at(100)
        first = self.committed(backend, lambda uow: uow.commands.claim(tenant, agent.id, now, 1))
        assert [c.id for c in first] == [old.id]
        assert first[0].status is CommandStatus.DISPATCHED
        assert first[0].attempts == 1 and first[0].dispatched_at == now
        assert self.read(backend, lambda uow: uow.commands.get(tenant, old.id)) == first[0]
        rest = self.committed(backend, lambda uow: uow.commands.claim(tenant, agent.id, now, 10))
        assert [c.id for c in rest] == [new.id]
        assert (
            self.committed(backend, lambda uow: uow.commands.claim(tenant, agent.id, now, 10)) == []
        )

    def test_concurrent_claims_never_return_a_command_twice(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        ids = {
            self._command(backend, tenant, agent.id, queued_at=_at(i % 7)).id
            for i in range(self.commands_to_claim)
        }
        claimed: list[str] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                while True:
                    got = self.committed(
                        backend, lambda uow: uow.commands.claim(tenant, agent.id, _at(100), 3)
                    )
                    if not got:
                        return
                    with lock:
                        claimed.extend(c.id for c in got)
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(self.claim_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert sorted(claimed) == sorted(ids), "every command claimed exactly once"

    def test_claims_across_instances_never_overlap(
        self, backend: B, second_backend: B, tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        ids = {self._command(backend, tenant, agent.id).id for _ in range(20)}
        claimed: list[str] = []
        for round_ in range(20):
            store = backend if round_ % 2 else second_backend
            claimed.extend(
                c.id
                for c in self.committed(
                    store, lambda uow: uow.commands.claim(tenant, agent.id, _at(100), 2)
                )
            )
        assert sorted(claimed) == sorted(ids)
