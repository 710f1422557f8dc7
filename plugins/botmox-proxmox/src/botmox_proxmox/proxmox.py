"""The ``infra.proxmox.*`` handlers: one Proxmox VE API call each, through proxmoxer.

Every handler returns ``{"data": ...}`` exactly as the Proxmox VE API answers (``/api2/json``
wraps every answer in ``data``): a UPID string for the asynchronous actions (clone, power,
delete), ``null`` for synchronous updates, objects and lists for reads. ``login`` is the one
exception: Proxmox's ticket and CSRF token are credentials and stay on the agent, so its
``data`` holds only ``username``, ``cap`` and ``clustername`` (or the token's identity).

The payload is the server's (:mod:`botmox_core.services.infra`): ``target`` (path
parameters), ``params`` (the caller's body, passed on as the API's parameters) and
``credentials`` (the opened vault secrets: ``token_secret`` or ``password``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import requests
from proxmoxer import ProxmoxAPI
from proxmoxer.core import AuthenticationError, ResourceException

from botmox_core.agent import CommandContext
from botmox_proxmox.settings import ProxmoxSettings

__all__ = ["PROXMOX_HANDLERS", "ProxmoxActionError", "connect"]

#: Names of Proxmox API parameters a caller may pass (the API checks their values).
PARAM_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}", re.ASCII)
POWER_ACTIONS = frozenset({"start", "stop", "shutdown", "reset", "reboot", "suspend", "resume"})


class ProxmoxActionError(RuntimeError):
    """The Proxmox API refused or could not be reached (the command fails with this text)."""


def _params(ctx: CommandContext) -> dict[str, Any]:
    params = ctx.payload.get("params") or {}
    if not isinstance(params, Mapping):
        raise ProxmoxActionError("params must be an object")
    for name in params:
        if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
            raise ProxmoxActionError(f"not a Proxmox API parameter name: {str(name)[:40]!r}")
    return dict(params)


def _target(ctx: CommandContext) -> dict[str, Any]:
    target = ctx.payload.get("target") or {}
    return dict(target) if isinstance(target, Mapping) else {}


def connect(settings: ProxmoxSettings, credentials: Mapping[str, Any]) -> ProxmoxAPI:
    """A proxmoxer client with the agent's settings and the command's opened credentials:
    API token when ``BOTMOX_PROXMOX_TOKEN_NAME`` is set, else a ticket from the password."""
    common: dict[str, Any] = {
        "port": settings.port,
        "user": settings.user,
        "verify_ssl": settings.verify_ssl,
        "timeout": settings.timeout,
        "service": "PVE",
    }
    if settings.token_name is not None:
        secret = credentials.get("token_secret")
        if not isinstance(secret, str) or not secret:
            raise ProxmoxActionError(
                "no API token secret: bind a vault secret to field proxmox.token_secret of "
                "this agent"
            )
        return ProxmoxAPI(
            settings.host, token_name=settings.token_name, token_value=secret, **common
        )
    password = credentials.get("password")
    if not isinstance(password, str) or not password:
        raise ProxmoxActionError(
            "no password: bind a vault secret to field proxmox.password of this agent (or set "
            "BOTMOX_PROXMOX_TOKEN_NAME and bind proxmox.token_secret)"
        )
    return ProxmoxAPI(settings.host, password=password, **common)


def _call(ctx: CommandContext, action: Callable[[ProxmoxAPI, dict[str, Any]], Any]) -> Any:
    """Run one API call; every failure becomes a :class:`ProxmoxActionError` whose text holds
    the status and Proxmox's message, never a credential."""
    settings = ProxmoxSettings.from_env()
    credentials = ctx.payload.get("credentials") or {}
    try:
        api = connect(settings, credentials)
        return action(api, _target(ctx))
    except ResourceException as exc:
        # Proxmox VE puts its message in the HTTP reason phrase (proxmoxer's ``content``) and
        # parameter errors in the body's ``errors``
        message = str(exc.content or exc.status_message or "").strip()[:500]
        detail = f": {exc.errors}" if getattr(exc, "errors", None) else ""
        raise ProxmoxActionError(f"Proxmox API {exc.status_code} {message}{detail}") from None
    except AuthenticationError:
        raise ProxmoxActionError("Proxmox API refused the credentials (401)") from None
    except requests.Timeout:
        raise ProxmoxActionError(
            f"Proxmox API did not answer within {settings.timeout:g} s"
        ) from None
    except requests.RequestException as exc:
        raise ProxmoxActionError(f"Proxmox API unreachable: {type(exc).__name__}") from None


def _node_vm(api: ProxmoxAPI, target: Mapping[str, Any]) -> Any:
    return api.nodes(str(target["node"])).qemu(int(target["vmid"]))


def status(ctx: CommandContext) -> dict[str, Any]:
    """``GET /version``."""
    return {"data": _call(ctx, lambda api, _t: api.version.get())}


def login(ctx: CommandContext) -> dict[str, Any]:
    """Authenticate: a ticket (``POST /access/ticket``) or the API token (``GET
    /access/permissions``); the ticket and CSRF token never leave the agent."""
    settings = ProxmoxSettings.from_env()

    def check(api: ProxmoxAPI, _target: Mapping[str, Any]) -> dict[str, Any]:
        if settings.token_name is not None:
            cap = api.access.permissions.get()
            return {"username": f"{settings.user}!{settings.token_name}", "cap": cap}
        password = (ctx.payload.get("credentials") or {}).get("password")
        answer = api.access.ticket.post(username=settings.user, password=password)
        return {key: answer[key] for key in ("username", "cap", "clustername") if key in answer}

    return {"data": _call(ctx, check)}


def vm_list(ctx: CommandContext) -> dict[str, Any]:
    """``GET /nodes/{node}/qemu``."""
    return {"data": _call(ctx, lambda api, t: api.nodes(str(t["node"])).qemu.get())}


def cluster_resources(ctx: CommandContext) -> dict[str, Any]:
    """``GET /cluster/resources`` (``type``)."""
    params = _params(ctx)
    return {"data": _call(ctx, lambda api, _t: api.cluster.resources.get(**params))}


def clone(ctx: CommandContext) -> dict[str, Any]:
    """``POST /nodes/{node}/qemu/{vmid}/clone`` (``newid`` ...): the task's UPID."""
    params = _params(ctx)
    if "newid" not in params:
        raise ProxmoxActionError("clone needs newid")
    return {"data": _call(ctx, lambda api, t: _node_vm(api, t).clone.post(**params))}


def config_get(ctx: CommandContext) -> dict[str, Any]:
    """``GET /nodes/{node}/qemu/{vmid}/config``."""
    return {"data": _call(ctx, lambda api, t: _node_vm(api, t).config.get())}


def config_update(ctx: CommandContext) -> dict[str, Any]:
    """``PUT /nodes/{node}/qemu/{vmid}/config`` (synchronous: ``null``)."""
    params = _params(ctx)
    if not params:
        raise ProxmoxActionError("config update needs at least one option")
    return {"data": _call(ctx, lambda api, t: _node_vm(api, t).config.put(**params))}


def task_status(ctx: CommandContext) -> dict[str, Any]:
    """``GET /nodes/{node}/tasks/{upid}/status``."""
    return {
        "data": _call(
            ctx, lambda api, t: api.nodes(str(t["node"])).tasks(str(t["upid"])).status.get()
        )
    }


def vm_action(ctx: CommandContext) -> dict[str, Any]:
    """``POST /nodes/{node}/qemu/{vmid}/status/{action}``: the task's UPID."""
    action = str(_target(ctx).get("action"))
    if action not in POWER_ACTIONS:
        raise ProxmoxActionError(f"unknown VM action {action[:40]!r}")
    params = _params(ctx)
    return {"data": _call(ctx, lambda api, t: _node_vm(api, t).status(action).post(**params))}


def status_current(ctx: CommandContext) -> dict[str, Any]:
    """``GET /nodes/{node}/qemu/{vmid}/status/current``."""
    return {"data": _call(ctx, lambda api, t: _node_vm(api, t).status.current.get())}


def delete(ctx: CommandContext) -> dict[str, Any]:
    """``DELETE /nodes/{node}/qemu/{vmid}`` (``purge``): the task's UPID."""
    params = {
        key: int(bool(value)) if isinstance(value, bool) else value
        for key, value in _params(ctx).items()
    }
    return {"data": _call(ctx, lambda api, t: _node_vm(api, t).delete(**params))}


def sendkey(ctx: CommandContext) -> dict[str, Any]:
    """``PUT /nodes/{node}/qemu/{vmid}/sendkey`` (``key``): ``null``."""
    params = _params(ctx)
    if not isinstance(params.get("key"), str):
        raise ProxmoxActionError("sendkey needs key (e.g. ctrl-alt-delete)")
    return {"data": _call(ctx, lambda api, t: _node_vm(api, t).sendkey.put(**params))}


#: Command type → handler (sync: the runtime runs them on a worker thread).
PROXMOX_HANDLERS: dict[str, Callable[[CommandContext], dict[str, Any]]] = {
    "infra.proxmox.status": status,
    "infra.proxmox.login": login,
    "infra.proxmox.vm-list": vm_list,
    "infra.proxmox.cluster-resources": cluster_resources,
    "infra.proxmox.clone": clone,
    "infra.proxmox.config-get": config_get,
    "infra.proxmox.config-update": config_update,
    "infra.proxmox.task-status": task_status,
    "infra.proxmox.vm-action": vm_action,
    "infra.proxmox.status-current": status_current,
    "infra.proxmox.delete": delete,
    "infra.proxmox.sendkey": sendkey,
}
