"""Shared pieces of the agent conformance kit: the fixed clock and valid agents and commands."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from botmox_core.models import Agent, AgentStatus, Command, CommandStatus

__all__ = ["T0", "make_agent", "make_command"]

T0 = datetime(2026, 11, 24, 12, 0, 0, 250000, tzinfo=UTC)


def _uid(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_agent(tenant_id: str, **changes: Any) -> Agent:
    """A valid active agent with every optional field filled; ``changes`` replace fields."""
    agent = Agent(
        id=_uid("agt"),
        tenant_id=tenant_id,
        status=AgentStatus.ACTIVE,
        created_at=T0,
        pairing_expires_at=_at(900),
        name="agent one",
        pairing_code_hash=None,
        version="1.2.3",
        platform="linux-x86_64",
        capabilities=("proxmox.start", "syncthing.scan"),
        public_key="BbrdBancAsyVmb8Yr4/0iymwwM1dmGieKDZG0OoJ2Ao=",
        token_hash=uuid.uuid4().hex + uuid.uuid4().hex,
        token_expires_at=_at(86400),
        registered_at=_at(10),
        last_seen_at=_at(20),
        revoked_at=None,
        revoke_reason=None,
    )
    return attrs.evolve(agent, **changes)


def make_command(tenant_id: str, agent_id: str, **changes: Any) -> Command:
    """A valid queued command; ``changes`` replace fields."""
    command = Command(
        id=_uid("cmd"),
        tenant_id=tenant_id,
        agent_id=agent_id,
        command_type="proxmox.start",
        status=CommandStatus.QUEUED,
        queued_at=T0,
        expires_at=_at(300),
        updated_at=T0,
        payload={"vmid": 101, "nested": {"list": [1, "two", None]}, "ünï": "✓"},
        execution_timeout_seconds=600,
        idempotency_key=None,
        attempts=0,
        max_attempts=5,
        created_by="tok_1",
    )
    return attrs.evolve(command, **changes)
