"""The agent's own secrets (``docs/agent-protocol.md``, *Secrets*):
``GET /api/v1/agents/me/secrets/{secret_id}`` with the agent token answers the copy of the
secret's current version sealed to that agent's key. Every refusal for an agent is 404
``SECRET_NOT_FOUND``, so an agent cannot tell another tenant's secret, a secret not sealed to
it and an unbound secret apart; other roles get 403.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get
from litestar.params import FromPath

from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok

__all__ = ["AgentSecretController"]


class AgentSecretController(Controller):
    """``/api/v1/agents/me/secrets``."""

    path = "/api/v1/agents/me/secrets"
    tags = ("agents", "secrets")

    @get("/{secret_id:str}", sync_to_thread=True)
    def own_secret_envelope(
        self, secret_id: FromPath[str], core: Core, principal: Caller
    ) -> Response[Any]:
        """The envelope copy sealed to the calling agent: ``secret_id``, ``tenant_id``,
        ``version``, ``alg``, ``agent_id``, ``key_id``, ``enc``, ``ciphertext``."""
        return ok(core.vault.agent_envelope(principal, secret_id))
