"""botmox-proxmox: Proxmox VE and SSH command handlers for the botmox agent runtime.

The handlers answer the server's ``/api/v1/infra/*`` routes (``infra.proxmox.*`` through the
Proxmox VE API with proxmoxer, ``infra.ssh.*`` through asyncssh). Run them as they are::

    botmox agent pair --server https://botmox.example --code <code> --app botmox_proxmox:agent
    botmox agent run --app botmox_proxmox:agent

(the agent announces the capability ``infra``, which designates it as the tenant's infra
agent), or add them to an agent of your own with :func:`register`. Settings: environment
variables on the agent's machine (:mod:`botmox_proxmox.settings`); credentials: vault
secrets bound to the agent (``docs/agents.md``).
"""

from __future__ import annotations

from botmox_core.agent import Agent
from botmox_proxmox.proxmox import PROXMOX_HANDLERS
from botmox_proxmox.ssh import SSH_HANDLERS

__all__ = ["INFRA_CAPABILITY", "agent", "register"]

INFRA_CAPABILITY = "infra"


def register(target: Agent) -> Agent:
    """Add every ``infra.proxmox.*`` and ``infra.ssh.*`` handler to ``target``."""
    for command_type, handler in {**PROXMOX_HANDLERS, **SSH_HANDLERS}.items():
        target.handler(command_type)(handler)
    return target


#: A ready agent with the pack's handlers and the ``infra`` capability.
agent = register(Agent(concurrency=4, capabilities=(INFRA_CAPABILITY,)))
