"""``/api/v1/infra``: the seed's 16 Proxmox and SSH operations (admin/infra only), answered
through the tenant's designated infra agent (:mod:`botmox_core.services.infra`).

Each route queues one ``infra.<family>.<operation>`` command and waits for its result (at most
``?wait=`` seconds, default ``BOTMOX_INFRA_WAIT_SECONDS``) without holding a thread
(:mod:`botmox_server.agent_bus.completion`):

* succeeded → 200, ``data`` = the result's ``data`` (shaped like the Proxmox VE API's),
  ``meta`` = ``{command_id, agent_id, command_type}``;
* failed, timed out, cancelled or expired → 502 ``INFRA_COMMAND_FAILED`` with
  ``details {command_id, status, error}``;
* still running after the wait → 202 with the command (it keeps running; read it with
  ``GET /api/v1/vm-ops/commands/{id}``).

This replaces the earlier ``POST /api/v1/infra/{target}`` catch-all, which queued any
``infra.*`` command and answered 202 only; a generic command is still ``POST
/api/v1/vm-ops/commands``.
"""

from __future__ import annotations

import re
from typing import Any

from litestar import Controller, Response, delete, get, post, put
from litestar.params import FromPath, FromQuery, JSONBody

from botmox_core.errors import BadRequestError, UpstreamError
from botmox_core.models import Command, CommandStatus
from botmox_core.services.infra import VM_POWER_ACTIONS, wait_seconds
from botmox_core.services.principal import USE_INFRA, Principal
from botmox_server.agent_bus import AgentBus, Bus
from botmox_server.agent_bus.views import command_view
from botmox_server.dependencies import Caller
from botmox_server.envelope import ok

__all__ = ["NODE_RE", "UPID_RE", "InfraController", "infra_answer"]

Body = JSONBody[Any]
Wait = FromQuery[str | None]
AgentId = FromQuery[str | None]


def infra_answer(command: Command) -> Response[Any]:
    """The route's answer for ``command`` as it stands after the wait."""
    if not command.status.is_final:
        return ok(command_view(command), 202)
    if command.status is not CommandStatus.SUCCEEDED:
        raise UpstreamError(
            f"the infra agent's {command.command_type} ended {command.status.value}",
            code="INFRA_COMMAND_FAILED",
            details={
                "command_id": command.id,
                "status": command.status.value,
                "error": command.error,
            },
        )
    result = command.result or {}
    meta = {
        "command_id": command.id,
        "agent_id": command.agent_id,
        "command_type": command.command_type,
    }
    return ok(result.get("data") if "data" in result else result, 200, meta=meta)


async def _run(
    bus: AgentBus,
    principal: Principal,
    operation: str,
    target: dict[str, Any],
    *,
    params: Any = None,
    agent_id: str | None = None,
    wait: str | None = None,
) -> Response[Any]:
    principal.authorize(USE_INFRA)  # 403 before anything about the request is read
    seconds = wait_seconds(wait, bus.core.settings.infra_wait_seconds)
    command, _ = await bus.enqueue_infra_action(
        principal, "infra." + operation, target=_checked(target), params=params, agent_id=agent_id
    )
    return infra_answer(await bus.wait_until_final(principal, command, seconds))


def _field_error(field: str, message: str) -> BadRequestError:
    return BadRequestError(f"{field}: {message}", details=[{"field": field, "message": message}])


#: Proxmox VE node names (a host name's label) and task ids (never a ``/``: they become path
#: segments of the agent's API calls).
NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}", re.ASCII)
UPID_RE = re.compile(r"UPID:[A-Za-z0-9:._@!=+-]{1,250}", re.ASCII)


def _checked(target: dict[str, Any]) -> dict[str, Any]:
    """The path parameters, each checked (400 naming the first bad one)."""
    if "node" in target and not NODE_RE.fullmatch(target["node"]):
        raise _field_error("node", "must be a Proxmox VE node name")
    if "vmid" in target and not 100 <= target["vmid"] <= 999_999_999:
        raise _field_error("vmid", "must be from 100 to 999999999")
    if "upid" in target and not UPID_RE.fullmatch(target["upid"]):
        raise _field_error("upid", "must be a Proxmox VE task id (UPID:...)")
    return target


class InfraController(Controller):
    """``/api/v1/infra``: Proxmox and SSH operations through the tenant's infra agent."""

    path = "/api/v1/infra"
    tags = ("infra",)

    # -- Proxmox VE --------------------------------------------------------------------------

    @get("/proxmox/status")
    async def proxmox_status(
        self, principal: Caller, bus: Bus, agent_id: AgentId = None, wait: Wait = None
    ) -> Response[Any]:
        """Whether the agent reaches the Proxmox VE API: ``GET /version`` there."""
        return await _run(bus, principal, "proxmox.status", {}, agent_id=agent_id, wait=wait)

    @post("/proxmox/login", status_code=200)
    async def proxmox_login(
        self,
        principal: Caller,
        bus: Bus,
        data: Body = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """The agent logs in to Proxmox VE with its bound credentials (``POST
        /access/ticket``, or a token check); the ticket and CSRF token never leave the agent."""
        return await _run(
            bus, principal, "proxmox.login", {}, params=data, agent_id=agent_id, wait=wait
        )

    @get("/proxmox/cluster/resources")
    async def cluster_resources(
        self,
        principal: Caller,
        bus: Bus,
        type: FromQuery[str | None] = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``GET /cluster/resources`` (``?type=vm|storage|node|sdn``)."""
        params = {} if type is None else {"type": type}
        return await _run(
            bus,
            principal,
            "proxmox.cluster-resources",
            {},
            params=params,
            agent_id=agent_id,
            wait=wait,
        )

    @get("/proxmox/nodes/{node:str}/qemu")
    async def vm_list(
        self,
        node: FromPath[str],
        principal: Caller,
        bus: Bus,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``GET /nodes/{node}/qemu``: the node's VMs."""
        return await _run(
            bus, principal, "proxmox.vm-list", {"node": node}, agent_id=agent_id, wait=wait
        )

    @post("/proxmox/nodes/{node:str}/qemu/{vmid:int}/clone", status_code=200)
    async def vm_clone(
        self,
        node: FromPath[str],
        vmid: FromPath[int],
        principal: Caller,
        bus: Bus,
        data: Body = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``POST /nodes/{node}/qemu/{vmid}/clone`` (``newid``, ``name``, ``full``, ...):
        the task's UPID."""
        return await _run(
            bus,
            principal,
            "proxmox.clone",
            {"node": node, "vmid": vmid},
            params=data,
            agent_id=agent_id,
            wait=wait,
        )

    @get("/proxmox/nodes/{node:str}/qemu/{vmid:int}/config")
    async def vm_config_get(
        self,
        node: FromPath[str],
        vmid: FromPath[int],
        principal: Caller,
        bus: Bus,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``GET /nodes/{node}/qemu/{vmid}/config``."""
        target = {"node": node, "vmid": vmid}
        return await _run(
            bus, principal, "proxmox.config-get", target, agent_id=agent_id, wait=wait
        )

    @put("/proxmox/nodes/{node:str}/qemu/{vmid:int}/config")
    async def vm_config_update(
        self,
        node: FromPath[str],
        vmid: FromPath[int],
        principal: Caller,
        bus: Bus,
        data: Body = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``PUT /nodes/{node}/qemu/{vmid}/config`` with the body's options."""
        target = {"node": node, "vmid": vmid}
        return await _run(
            bus,
            principal,
            "proxmox.config-update",
            target,
            params=data,
            agent_id=agent_id,
            wait=wait,
        )

    @get("/proxmox/nodes/{node:str}/tasks/{upid:str}/status")
    async def task_status(
        self,
        node: FromPath[str],
        upid: FromPath[str],
        principal: Caller,
        bus: Bus,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``GET /nodes/{node}/tasks/{upid}/status``."""
        target = {"node": node, "upid": upid}
        return await _run(
            bus, principal, "proxmox.task-status", target, agent_id=agent_id, wait=wait
        )

    @post("/proxmox/nodes/{node:str}/qemu/{vmid:int}/status/{action:str}", status_code=200)
    async def vm_power(
        self,
        node: FromPath[str],
        vmid: FromPath[int],
        action: FromPath[str],
        principal: Caller,
        bus: Bus,
        data: Body = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``POST /nodes/{node}/qemu/{vmid}/status/{action}`` (start, stop, shutdown,
        reset, reboot, suspend, resume): the task's UPID."""
        principal.authorize(USE_INFRA)
        if action not in VM_POWER_ACTIONS:
            raise BadRequestError(
                f"unknown VM action {action[:40]!r}",
                details=[
                    {"field": "action", "message": "one of " + ", ".join(sorted(VM_POWER_ACTIONS))}
                ],
            )
        target = {"node": node, "vmid": vmid, "action": action}
        return await _run(
            bus, principal, "proxmox.vm-action", target, params=data, agent_id=agent_id, wait=wait
        )

    @get("/proxmox/nodes/{node:str}/qemu/{vmid:int}/status/current")
    async def vm_status_current(
        self,
        node: FromPath[str],
        vmid: FromPath[int],
        principal: Caller,
        bus: Bus,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``GET /nodes/{node}/qemu/{vmid}/status/current``."""
        target = {"node": node, "vmid": vmid}
        return await _run(
            bus, principal, "proxmox.status-current", target, agent_id=agent_id, wait=wait
        )

    @delete("/proxmox/nodes/{node:str}/qemu/{vmid:int}", status_code=200)
    async def vm_delete(
        self,
        node: FromPath[str],
        vmid: FromPath[int],
        principal: Caller,
        bus: Bus,
        purge: FromQuery[bool | None] = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``DELETE /nodes/{node}/qemu/{vmid}`` (``?purge=true``): the task's UPID."""
        target = {"node": node, "vmid": vmid}
        params = {} if purge is None else {"purge": purge}
        return await _run(
            bus, principal, "proxmox.delete", target, params=params, agent_id=agent_id, wait=wait
        )

    @post("/proxmox/nodes/{node:str}/qemu/{vmid:int}/sendkey", status_code=200)
    async def vm_sendkey(
        self,
        node: FromPath[str],
        vmid: FromPath[int],
        principal: Caller,
        bus: Bus,
        data: Body = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """``PUT /nodes/{node}/qemu/{vmid}/sendkey`` with ``{key}`` (e.g. ``ctrl-alt-delete``)."""
        target = {"node": node, "vmid": vmid}
        return await _run(
            bus, principal, "proxmox.sendkey", target, params=data, agent_id=agent_id, wait=wait
        )

    # -- SSH to the Proxmox host -------------------------------------------------------------

    @post("/ssh/exec", status_code=200)
    async def ssh_exec(
        self,
        principal: Caller,
        bus: Bus,
        data: Body = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """Run ``{command}`` on the Proxmox host over SSH, if the agent's allow-list has it:
        ``{exit_status, stdout, stderr}``."""
        return await _run(bus, principal, "ssh.exec", {}, params=data, agent_id=agent_id, wait=wait)

    @post("/ssh/test", status_code=200)
    async def ssh_test(
        self,
        principal: Caller,
        bus: Bus,
        data: Body = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """Connect and authenticate to the host over SSH: ``{ok, host, port, username,
        server_version}``."""
        return await _run(bus, principal, "ssh.test", {}, params=data, agent_id=agent_id, wait=wait)

    @get("/ssh/vm-config/{vmid:int}")
    async def ssh_vm_config_get(
        self,
        vmid: FromPath[int],
        principal: Caller,
        bus: Bus,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """The VM's ``/etc/pve/qemu-server/{vmid}.conf`` read over SSH: ``{vmid, path,
        content}``."""
        target = {"vmid": vmid}
        return await _run(bus, principal, "ssh.vm-config-get", target, agent_id=agent_id, wait=wait)

    @put("/ssh/vm-config/{vmid:int}")
    async def ssh_vm_config_update(
        self,
        vmid: FromPath[int],
        principal: Caller,
        bus: Bus,
        data: Body = None,
        agent_id: AgentId = None,
        wait: Wait = None,
    ) -> Response[Any]:
        """Replace the VM's config file with ``{content}`` over SSH (SFTP, written to a
        temporary name, then renamed): ``{vmid, path, bytes}``."""
        target = {"vmid": vmid}
        return await _run(
            bus,
            principal,
            "ssh.vm-config-update",
            target,
            params=data,
            agent_id=agent_id,
            wait=wait,
        )
