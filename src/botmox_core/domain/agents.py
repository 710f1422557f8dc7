"""When an agent counts as online: one small value shared by the agent and command services."""

from __future__ import annotations

from datetime import datetime, timedelta

import attrs

from botmox_core.models import Agent, AgentStatus

__all__ = ["AgentLiveness", "public_status"]


def public_status(agent: Agent, now: datetime, offline_after: timedelta) -> str:
    """``pending``, ``active``, ``offline`` or ``revoked``: an active agent not seen within
    ``offline_after`` (or never seen) is ``offline``."""
    if agent.status is AgentStatus.ACTIVE and (
        agent.last_seen_at is None or agent.last_seen_at < now - offline_after
    ):
        return "offline"
    return agent.status.value


@attrs.frozen
class AgentLiveness:
    """The offline window of agents.

    Attributes:
        offline_after: an active agent not seen for this long is reported ``offline`` and gets
            no new commands (unless it holds a live socket); a command it runs is failed as
            ``agent lost``.
    """

    offline_after: timedelta = timedelta(seconds=120)

    def status(self, agent: Agent, now: datetime) -> str:
        """The agent's public status at ``now`` (see :func:`public_status`)."""
        return public_status(agent, now, self.offline_after)

    def is_recently_seen(self, agent: Agent, now: datetime) -> bool:
        """Active and seen within the offline window."""
        return self.status(agent, now) == "active"
