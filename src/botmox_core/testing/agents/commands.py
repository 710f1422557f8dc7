"""Agent conformance: the ``uow.commands`` repository (all but claiming)."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from botmox_core.errors import DuplicateError
from botmox_core.models import CommandStatus
from botmox_core.testing.agents._base import AgentConformanceBase, B
from botmox_core.testing.agents._support import _at

__all__ = ["CommandConformance"]


class CommandConformance(AgentConformanceBase[B]):
    """Pytest mixin: what ``uow.commands`` of a backend must do, claims aside."""

    def test_agent_and_command_scan_one_tenant_by_id_page_by_page(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        ids = ["agt-b", "agt-a", "agt-ü", "agt-Z", "agt-10"]
        for owner in (other_tenant, tenant):
            for agent_id in ids:
                self._agent(backend, owner, id=f"{agent_id}-{owner}")
                self._command(backend, owner, f"{agent_id}-{owner}", id=f"cmd-{agent_id}-{owner}")
        for name in ("agents", "commands"):
            found: list[Any] = []
            after: str | None = None
            for _ in range(20):
                page = self._scan(backend, name, tenant, after, 2)
                found += page
                if len(page) < 2:
                    break
                after = page[-1].id
            got = [record.id for record in found]
            assert len(got) == len(ids), f"{name}.scan found {got}"
            assert got == sorted(got), f"{name}.scan order (code points): {got}"
            assert all(r.tenant_id == tenant for r in found), f"{name}.scan: another tenant's"
            empty = self._scan(backend, name, tenant, None, 0)
            assert list(empty) == [], f"{name}.scan with limit 0"

    def test_command_round_trip(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(
            backend,
            tenant,
            agent.id,
            idempotency_key="key-1",
            status=CommandStatus.SUCCEEDED,
            dispatched_at=_at(1),
            started_at=_at(2),
            finished_at=_at(3),
            cancel_requested_at=_at(2.5),
            result={"ok": True, "list": [1, 2]},
            error="none",
            output_bytes=12,
            attempts=2,
        )
        assert self.read(backend, lambda uow: uow.commands.get(tenant, command.id)) == command

    def test_command_idempotency_key_is_unique_per_agent(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        other = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id, idempotency_key="same")
        with pytest.raises(DuplicateError):
            self._command(backend, tenant, agent.id, idempotency_key="same")
        self._command(backend, tenant, other.id, idempotency_key="same")  # another agent: fine
        self._command(backend, tenant, agent.id)  # no key: never a duplicate
        self._command(backend, tenant, agent.id)
        found = self.read(
            backend, lambda uow: uow.commands.find_by_idempotency_key(tenant, agent.id, "same")
        )
        assert found == command

    def test_command_list_newest_first_filters_and_limit(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        other = self._agent(backend, tenant)
        made = [
            self._command(backend, tenant, agent.id, queued_at=_at(i), updated_at=_at(i))
            for i in range(5)
        ]
        done = self._command(
            backend, tenant, other.id, queued_at=_at(10), status=CommandStatus.FAILED
        )
        everything = self.read(backend, lambda uow: uow.commands.list(tenant))
        assert [c.id for c in everything] == [done.id, *[c.id for c in reversed(made)]]
        mine = self.read(backend, lambda uow: uow.commands.list(tenant, agent_id=agent.id, limit=2))
        assert [c.id for c in mine] == [made[4].id, made[3].id]
        failed = self.read(
            backend, lambda uow: uow.commands.list(tenant, statuses=[CommandStatus.FAILED])
        )
        assert [c.id for c in failed] == [done.id]
        assert (
            self.read(
                backend, lambda uow: uow.commands.count(tenant, agent.id, [CommandStatus.QUEUED])
            )
            == 5
        )

    def test_command_modify(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id)
        changed = self.committed(
            backend,
            lambda uow: uow.commands.modify(
                tenant,
                command.id,
                lambda c: attrs.evolve(c, status=CommandStatus.RUNNING, started_at=_at(5)),
            ),
        )
        assert changed is not None and changed.status is CommandStatus.RUNNING
        assert self.read(backend, lambda uow: uow.commands.get(tenant, command.id)) == changed

    def test_list_stale(self, backend: B, tenant: str) -> None:
        fresh_agent = self._agent(backend, tenant, last_seen_at=_at(1000))
        lost_agent = self._agent(backend, tenant, last_seen_at=_at(10))
        now = _at(1000)
        expired = self._command(backend, tenant, fresh_agent.id, expires_at=_at(999))
        unacked = self._command(
            backend,
            tenant,
            fresh_agent.id,
            status=CommandStatus.DISPATCHED,
            dispatched_at=_at(900),
            expires_at=_at(2000),
        )
        overdue = self._command(
            backend,
            tenant,
            fresh_agent.id,
            status=CommandStatus.RUNNING,
            started_at=_at(100),
            execution_timeout_seconds=60,
            expires_at=_at(2000),
        )
        lost = self._command(
            backend,
            tenant,
            lost_agent.id,
            status=CommandStatus.RUNNING,
            started_at=_at(990),
            expires_at=_at(2000),
        )
        healthy = [
            self._command(backend, tenant, fresh_agent.id, expires_at=_at(2000)),
            self._command(
                backend,
                tenant,
                fresh_agent.id,
                status=CommandStatus.DISPATCHED,
                dispatched_at=_at(995),
                expires_at=_at(2000),
            ),
            self._command(
                backend,
                tenant,
                fresh_agent.id,
                status=CommandStatus.RUNNING,
                started_at=_at(990),
                expires_at=_at(2000),
            ),
            self._command(
                backend, tenant, lost_agent.id, status=CommandStatus.SUCCEEDED, expires_at=_at(1)
            ),
        ]
        stale = self.read(
            backend,
            lambda uow: uow.commands.list_stale(
                now, dispatched_before=_at(970), agents_seen_before=_at(880)
            ),
        )
        found = {c.id for c in stale}
        assert {expired.id, unacked.id, overdue.id, lost.id} <= found
        assert not found & {c.id for c in healthy}

    def test_output_chunks_are_idempotent_and_ordered(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id)
        assert self.committed(
            backend, lambda uow: uow.commands.append_output(tenant, command.id, 1, "wörld\n")
        )
        assert self.committed(
            backend, lambda uow: uow.commands.append_output(tenant, command.id, 0, "hello ")
        )
        assert not self.committed(
            backend, lambda uow: uow.commands.append_output(tenant, command.id, 1, "again")
        )
        assert (
            self.read(backend, lambda uow: uow.commands.output(tenant, command.id))
            == "hello wörld\n"
        )
        assert self.read(backend, lambda uow: uow.commands.output(other_tenant, command.id)) == ""

    def test_large_output_is_not_truncated(self, backend: B, tenant: str) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id)
        chunk = "x" * 65536
        with backend.unit_of_work() as uow:
            for seq in range(40):  # 2.5 MiB
                uow.commands.append_output(tenant, command.id, seq, chunk)  # type: ignore[attr-defined]
            uow.commit()
        stored = self.read(backend, lambda uow: uow.commands.output(tenant, command.id))
        assert len(stored) == 40 * 65536

    def test_command_tenant_isolation(self, backend: B, tenant: str, other_tenant: str) -> None:
        agent = self._agent(backend, tenant)
        command = self._command(backend, tenant, agent.id, idempotency_key="k")
        assert self.read(backend, lambda uow: uow.commands.get(other_tenant, command.id)) is None
        assert self.read(backend, lambda uow: uow.commands.list(other_tenant)) == []
        assert (
            self.read(
                backend,
                lambda uow: uow.commands.find_by_idempotency_key(other_tenant, agent.id, "k"),
            )
            is None
        )
        assert (
            self.committed(
                backend, lambda uow: uow.commands.claim(other_tenant, agent.id, _at(1), 5)
            )
            == []
        )
        assert (
            self.committed(
                backend, lambda uow: uow.commands.modify(other_tenant, command.id, lambda c: c)
            )
            is None
        )
