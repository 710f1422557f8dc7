"""Direct infrastructure access (``/api/v1/infra/*``): the seed's Proxmox and SSH operations,
each queued as one ``infra.*`` command for the tenant's designated infra agent.

**Which agent.** An operator designates the infra agent by pairing it with the capability
``infra`` (``botmox agent pair --capability infra``; the ``botmox-proxmox`` handler pack's agent
announces it itself). The routes take ``?agent_id=`` to pick one explicitly; without it the
tenant's one active agent with that capability is used — 409 ``INFRA_AGENT_NOT_DESIGNATED``
when there is none, 409 ``INFRA_AGENT_AMBIGUOUS`` (with the candidates' ids) when there are
several. Offline → 409 ``AGENT_OFFLINE`` as for every command.

**Credentials** never travel through the request: the server adds ``{"secret_ref": id}`` for
each vault binding of the agent (scope ``agent``, scope id = the agent's id) whose field name is
one of :data:`CREDENTIAL_FIELDS` for the action's family, under the payload's ``credentials``.
The agent opens them locally (:mod:`botmox_core.agent.secrets`). A caller's params that hold a
``secret_ref`` anywhere are refused (400 ``SECRET_REF_NOT_ALLOWED``): otherwise a caller could
have the agent write a secret's plaintext into a VM's config, where it could be read back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from botmox_core.errors import BadRequestError, ConflictError
from botmox_core.models import AgentStatus, Command
from botmox_core.services import validation as check
from botmox_core.services.commands import MAX_PAYLOAD_BYTES, CommandService
from botmox_core.services.principal import USE_INFRA, Principal
from botmox_core.vault.models import ScopeType

__all__ = [
    "CREDENTIAL_FIELDS",
    "INFRA_ACTIONS",
    "INFRA_CAPABILITY",
    "MAX_WAIT_SECONDS",
    "InfraAction",
    "InfraService",
    "wait_seconds",
]

#: The capability that designates an agent for ``/api/v1/infra``.
INFRA_CAPABILITY = "infra"
#: The longest ``?wait=`` a route accepts (seconds).
MAX_WAIT_SECONDS = 60


@attrs.frozen
class InfraAction:
    """One infra operation.

    Attributes:
        name: the operation (the command type is ``infra.<family>.<name>``).
        family: ``proxmox`` or ``ssh`` (which credentials the agent gets).
    """

    name: str
    family: str

    @property
    def command_type(self) -> str:
        return f"infra.{self.family}.{self.name}"


_PROXMOX = (
    "status",
    "login",
    "vm-list",
    "cluster-resources",
    "clone",
    "config-get",
    "config-update",
    "task-status",
    "vm-action",
    "status-current",
    "delete",
    "sendkey",
)
_SSH = ("exec", "test", "vm-config-get", "vm-config-update")

#: Every infra operation by command type (one per route of ``/api/v1/infra``).
INFRA_ACTIONS: dict[str, InfraAction] = {
    action.command_type: action
    for action in (
        *(InfraAction(name, "proxmox") for name in _PROXMOX),
        *(InfraAction(name, "ssh") for name in _SSH),
    )
}

#: Vault binding field names (scope ``agent``) the agent receives as ``credentials``, by family.
CREDENTIAL_FIELDS: dict[str, tuple[str, ...]] = {
    "proxmox": ("proxmox.token_secret", "proxmox.password"),
    "ssh": ("ssh.password", "ssh.private_key", "ssh.private_key_passphrase"),
}

#: Proxmox power actions (``POST .../status/{action}``), as the Proxmox VE API names them.
VM_POWER_ACTIONS = frozenset({"start", "stop", "shutdown", "reset", "reboot", "suspend", "resume"})


def wait_seconds(value: Any, default: float) -> float:
    """The ``?wait=`` of a request: 0–:data:`MAX_WAIT_SECONDS` seconds (fractions allowed),
    ``default`` when absent; 400 otherwise."""
    if value is None or value == "":
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 <= seconds <= MAX_WAIT_SECONDS:  # also refuses nan
        raise BadRequestError(
            f"wait: must be a number of seconds from 0 to {MAX_WAIT_SECONDS}",
            details=[{"field": "wait", "message": f"0-{MAX_WAIT_SECONDS}"}],
        )
    return seconds


def _refuse_secret_refs(value: Any, path: str = "params", depth: int = 0) -> None:
    if depth > 64:
        return  # the payload's own depth bound answers first
    if isinstance(value, Mapping):
        if "secret_ref" in value:
            raise BadRequestError(
                f"{path}: secret references are added by the server, not the caller",
                code="SECRET_REF_NOT_ALLOWED",
                details=[{"field": path, "message": "no secret_ref in params"}],
            )
        for key, item in value.items():
            _refuse_secret_refs(item, f"{path}.{key}"[:200], depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _refuse_secret_refs(item, f"{path}[{index}]"[:200], depth + 1)


class InfraService:
    """Queues infra operations for the tenant's designated infra agent.

    Args:
        commands: the command queue.
        agents_of: the tenant's agents (``tenant_id`` → agents; the agent repository's list).
        binding_of: the vault binding lookup ``(tenant, scope_type, scope_id, field) → ref``,
            ``None`` without a vault.
    """

    def __init__(
        self,
        commands: CommandService,
        agents_of: Callable[[str], Any],
        binding_of: Callable[[str, ScopeType, str, str], Any] | None,
    ) -> None:
        self._commands = commands
        self._agents_of = agents_of
        self._binding_of = binding_of

    def designated_agent(self, principal: Principal, agent_id: Any = None) -> str:
        """The agent that runs the caller's infra operations (see the module docstring)."""
        principal.authorize(USE_INFRA)
        if agent_id not in (None, ""):
            if not isinstance(agent_id, str) or len(agent_id) > 64:
                raise BadRequestError(
                    "agent_id: must be an agent id",
                    details=[{"field": "agent_id", "message": "an agent id"}],
                )
            return agent_id
        candidates: list[str] = sorted(
            agent.id
            for agent in self._agents_of(principal.tenant_id)
            if agent.status is AgentStatus.ACTIVE and INFRA_CAPABILITY in agent.capabilities
        )
        if not candidates:
            raise ConflictError(
                "this tenant has no active agent with the capability 'infra'; pair one with "
                "--capability infra or pass ?agent_id=",
                code="INFRA_AGENT_NOT_DESIGNATED",
            )
        if len(candidates) > 1:
            raise ConflictError(
                "several active agents have the capability 'infra'; pass ?agent_id=",
                code="INFRA_AGENT_AMBIGUOUS",
                details={"agent_ids": candidates[:20]},
            )
        return candidates[0]

    def credentials(self, tenant_id: str, agent_id: str, family: str) -> dict[str, Any]:
        """``{field: {"secret_ref": id}}`` for the agent's bound credentials of ``family``."""
        found: dict[str, Any] = {}
        if self._binding_of is None:
            return found
        for field in CREDENTIAL_FIELDS[family]:
            binding = self._binding_of(tenant_id, ScopeType.AGENT, agent_id, field)
            if binding is not None:
                found[field.partition(".")[2]] = {"secret_ref": binding.secret_ref}
        return found

    def enqueue(
        self,
        principal: Principal,
        command_type: str,
        *,
        target: Mapping[str, Any],
        params: Any = None,
        agent_id: Any = None,
        connected: Callable[[str], bool] = lambda agent_id: False,
    ) -> tuple[Command, bool]:
        """Queue ``command_type`` (one of :data:`INFRA_ACTIONS`) for the designated agent with
        payload ``{"target": ..., "params": ..., "credentials": {...refs}}``; 400 for params
        that are not an object or hold a ``secret_ref``."""
        action = INFRA_ACTIONS[command_type]
        principal.authorize(USE_INFRA)
        params = check.json_object(params, "params", MAX_PAYLOAD_BYTES)
        _refuse_secret_refs(params)
        chosen = self.designated_agent(principal, agent_id)
        payload = {
            "target": dict(target),
            "params": params,
            "credentials": self.credentials(principal.tenant_id, chosen, action.family),
        }
        return self._commands.enqueue(
            principal,
            agent_id=chosen,
            command_type=action.command_type,
            payload=payload,
            connected=connected,
        )
