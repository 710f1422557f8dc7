"""Agent lifecycle routes: pairings, registration, heartbeat, list/get, revoke."""

from __future__ import annotations

from typing import Any

import attrs
from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from botmox_core.bootstrap import App
from botmox_core.models import Agent
from botmox_server.agent_bus import Bus
from botmox_server.agent_bus.views import agent_view
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok

__all__ = ["AgentController"]


@attrs.define
class PairingBody:
    name: str | None = None
    expires_in_minutes: int | None = None


@attrs.define
class RegisterAgentBody:
    pairing_code: str
    version: str | None = None
    platform: str | None = None
    capabilities: list[str] | None = None
    public_key: str | None = None


@attrs.define
class AgentHeartbeatBody:
    agent_id: str


@attrs.define
class RevokeAgentBody:
    reason: str | None = None


def _view(core: App, agent: Agent) -> dict[str, Any]:
    return agent_view(agent, core.agents.now(), core.agents.liveness)


class AgentController(Controller):
    """``/api/v1/agents``: who may call what is the agent service's rule."""

    path = "/api/v1/agents"
    tags = ("agents",)

    @post("/pairings", sync_to_thread=True)
    def create_pairing(
        self, data: JSONBody[PairingBody], core: Core, principal: Caller
    ) -> Response[Any]:
        """Create a pending agent and its one-time pairing code (admin/infra)."""
        created = core.agents.create_pairing(
            principal, name=data.name, expires_in_minutes=data.expires_in_minutes
        )
        return ok(
            {
                "id": created.agent.id,
                "name": created.agent.name,
                "pairing_code": created.code,
                "pairing_expires_at": created.agent.pairing_expires_at,
            },
            201,
        )

    @post("/register", sync_to_thread=True, security=[{}])
    def register_agent(self, data: JSONBody[RegisterAgentBody], core: Core) -> Response[Any]:
        """Redeem a pairing code (no bearer token: the code is the credential); answers the
        agent and its token (shown once)."""
        registered = core.agents.register(
            pairing_code=data.pairing_code,
            version=data.version,
            platform=data.platform,
            capabilities=data.capabilities,
            public_key=data.public_key,
        )
        payload = _view(core, registered.agent)
        payload["agent_token"] = registered.token
        return ok(payload, 201)

    @post("/heartbeat", sync_to_thread=True)
    def agent_heartbeat(
        self, data: JSONBody[AgentHeartbeatBody], core: Core, principal: Caller
    ) -> Response[Any]:
        """Record that the agent is alive (the agent itself, or an operator)."""
        agent = core.agents.heartbeat(principal, data.agent_id)
        return ok(_view(core, agent))

    @get("/", sync_to_thread=True)
    def list_agents(
        self,
        core: Core,
        principal: Caller,
        status: FromQuery[str | None] = None,
        page: FromQuery[int] = 1,
        limit: FromQuery[int] = 50,
    ) -> Response[Any]:
        """The tenant's agents; ``status`` pending|active|offline|revoked (offline: active but
        not seen within the offline window)."""
        agents, total = core.agents.list(principal, status=status, page=page, limit=limit)
        return ok(
            [_view(core, agent) for agent in agents],
            meta={"total": total, "page": page, "limit": limit},
        )

    @get("/{agent_id:str}", sync_to_thread=True)
    def get_agent(
        self, agent_id: FromPath[str], core: Core, principal: Caller, bus: Bus
    ) -> Response[Any]:
        """One agent of the caller's tenant, with ``connected`` (a live socket on this
        server)."""
        agent = core.agents.get(principal, agent_id)
        payload = _view(core, agent)
        payload["connected"] = bus.connected(agent.id)
        return ok(payload)

    @post("/{agent_id:str}/revoke")
    async def revoke_agent(
        self,
        agent_id: FromPath[str],
        data: JSONBody[RevokeAgentBody],
        core: Core,
        principal: Caller,
        bus: Bus,
    ) -> Response[Any]:
        """Revoke the agent (admin/infra): token refused, live socket closed, unfinished
        commands failed."""
        agent = await bus.revoke(principal, agent_id, data.reason)
        return ok(_view(core, agent))
