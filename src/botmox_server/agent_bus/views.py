"""The public JSON of agents and commands (HTTP answers and the ``command`` frame alike)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from botmox_core.domain.agents import AgentLiveness
from botmox_core.models import Agent, AgentStatus, Command

__all__ = ["agent_view", "command_view"]


def agent_view(agent: Agent, now: datetime, liveness: AgentLiveness) -> dict[str, Any]:
    """An agent: never a hash; ``status`` is ``offline`` for an active agent not seen within
    the offline window."""
    return {
        "id": agent.id,
        "tenant_id": agent.tenant_id,
        "name": agent.name,
        "status": liveness.status(agent, now),
        "version": agent.version,
        "platform": agent.platform,
        "capabilities": list(agent.capabilities),
        "public_key": agent.public_key,
        "created_at": agent.created_at,
        "pairing_expires_at": agent.pairing_expires_at
        if agent.status is AgentStatus.PENDING
        else None,
        "registered_at": agent.registered_at,
        "agent_token_expires_at": agent.token_expires_at,
        "last_seen_at": agent.last_seen_at,
        "revoked_at": agent.revoked_at,
        "revoke_reason": agent.revoke_reason,
    }


def command_view(command: Command, output: str | None = None) -> dict[str, Any]:
    """A command (with ``output`` when given)."""
    view: dict[str, Any] = {
        "id": command.id,
        "agent_id": command.agent_id,
        "command_type": command.command_type,
        "payload": command.payload,
        "status": command.status.value,
        "queued_at": command.queued_at,
        "expires_at": command.expires_at,
        "updated_at": command.updated_at,
        "dispatched_at": command.dispatched_at,
        "started_at": command.started_at,
        "finished_at": command.finished_at,
        "cancel_requested_at": command.cancel_requested_at,
        "execution_timeout_seconds": command.execution_timeout_seconds,
        "attempts": command.attempts,
        "max_attempts": command.max_attempts,
        "idempotency_key": command.idempotency_key,
        "result": command.result,
        "error": command.error,
        "output_bytes": command.output_bytes,
    }
    if output is not None:
        view["output"] = output
    return view
