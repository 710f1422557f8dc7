"""The command sweep: one pass over the stale commands of every tenant, settling each by the
domain's timeout rules (:func:`botmox_core.domain.commands.settle_stale`)."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from botmox_core.domain.commands import SweepOutcome, settle_stale
from botmox_core.models import Command
from botmox_core.services.agent_store import AgentRepositories

__all__ = ["SweepReport", "sweep"]


@attrs.frozen
class SweepReport:
    """What one sweep did.

    Attributes:
        expired, requeued, dead_lettered, timed_out, lost: command ids per outcome.
        wake: (tenant, agent) pairs that got re-queued commands.
        settled: (tenant, agent, command id) of every command the sweep finished while its
            agent may still hold it (everything but the re-queued ones): the agent is told to
            stop (the ``abort`` frame).
    """

    expired: list[str] = attrs.Factory(list)
    requeued: list[str] = attrs.Factory(list)
    dead_lettered: list[str] = attrs.Factory(list)
    timed_out: list[str] = attrs.Factory(list)
    lost: list[str] = attrs.Factory(list)
    wake: set[tuple[str, str]] = attrs.Factory(set)
    settled: set[tuple[str, str, str]] = attrs.Factory(set)

    @property
    def changed(self) -> int:
        return sum(
            len(ids)
            for ids in (self.expired, self.requeued, self.dead_lettered, self.timed_out, self.lost)
        )


def sweep(
    agents: AgentRepositories, now: datetime, *, ack_timeout: timedelta, limit: int = 500
) -> SweepReport:
    """Enforce delivery, acknowledgement and execution timeouts across all tenants: at most
    ``limit`` stale commands, in one unit of work."""
    report = SweepReport()
    if not agents.supported:
        return report
    dispatched_before = now - ack_timeout
    seen_before = now - agents.liveness.offline_after
    with agents.unit() as uow:
        stale = uow.commands.list_stale(
            now, dispatched_before=dispatched_before, agents_seen_before=seen_before, limit=limit
        )
        for found in stale:
            agent = uow.agents.get(found.tenant_id, found.agent_id)
            agent_lost = (
                agent is None or agent.last_seen_at is None or (agent.last_seen_at < seen_before)
            )
            outcome: list[SweepOutcome | None] = [None]

            def settle(
                current: Command,
                agent_lost: bool = agent_lost,
                outcome: list[SweepOutcome | None] = outcome,
            ) -> Command:
                settled, outcome[0] = settle_stale(
                    current, now, dispatched_before=dispatched_before, agent_lost=agent_lost
                )
                return settled

            uow.commands.modify(found.tenant_id, found.id, settle)
            kind = outcome[0]
            if kind is not None:
                getattr(report, kind).append(found.id)
                if kind == "requeued":
                    report.wake.add((found.tenant_id, found.agent_id))
                else:
                    report.settled.add((found.tenant_id, found.agent_id, found.id))
        uow.commit()
    return report
