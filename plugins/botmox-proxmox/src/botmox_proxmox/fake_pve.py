"""A FAKE of the Proxmox VE HTTP API (``/api2/json``) for tests — not Proxmox.

Built from the Proxmox VE API documentation (the API viewer's schemas for the endpoints
below); it keeps a small in-memory cluster (one node, VMs, tasks) and answers with the same
envelopes, fields and types. Used two ways: in-process through ``responses``
(:meth:`FakeProxmox.install`) and, for end-to-end runs where the agent is another process,
as a loopback HTTPS server (:func:`botmox_proxmox.testing.serve_https`).

Covered (method, path → ``data``):

* ``POST /access/ticket`` (``username``, ``password``) → ``{username, ticket,
  CSRFPreventionToken, cap, clustername}``; 401 for a wrong password.
* ``GET /access/permissions`` → ``{path: {privilege: 1}}``.
* ``GET /version`` → ``{version, release, repoid}``.
* ``GET /cluster/resources`` (``type`` vm|node|storage) → ``[{id, type, node, status, vmid?,
  name?, maxcpu, maxmem, mem, maxdisk, disk, uptime, template?, storage?}]``.
* ``GET /nodes/{node}/qemu`` → ``[{vmid, name, status, cpus, cpu, maxmem, mem, maxdisk, disk,
  uptime, netin, netout, diskread, diskwrite, pid?, template?}]``.
* ``GET /nodes/{node}/qemu/{vmid}/status/current`` → the list fields plus ``qmpstatus``,
  ``ha {managed}``, ``agent``, ``running-machine``/``running-qemu`` when running.
* ``POST /nodes/{node}/qemu/{vmid}/status/{start|stop|shutdown|reset|reboot|suspend|resume}``
  → a UPID string; the task is recorded (``qmstart``, ``qmstop`` ...).
* ``POST /nodes/{node}/qemu/{vmid}/clone`` (``newid`` required, ``name``, ``full``, ...) → UPID
  (``qmclone``); the clone appears stopped.
* ``GET /nodes/{node}/qemu/{vmid}/config`` → ``{name, cores, sockets, memory, net0, scsi0,
  ostype, boot, digest, ...}``; ``PUT`` same path (options, ``delete``, ``digest``) → ``null``.
* ``DELETE /nodes/{node}/qemu/{vmid}`` (``purge``) → UPID (``qmdestroy``); a running VM → 500.
* ``PUT /nodes/{node}/qemu/{vmid}/sendkey`` (``key``) → ``null``.
* ``GET /nodes/{node}/tasks/{upid}/status`` → ``{upid, node, pid, pstart, starttime, type, id,
  user, status: running|stopped, exitstatus?}``.

Authentication as the API does it: a ``PVEAuthCookie`` ticket (writes also need the
``CSRFPreventionToken`` header) or ``Authorization: PVEAPIToken=user@realm!name=secret``;
anything else 401. Errors: 400 with ``errors {param: message}`` for bad parameters, 500 with a
message (``Configuration file 'nodes/pve/qemu-server/999.conf' does not exist``) for a missing
VM, 595 for an unknown node. Every request is recorded in :attr:`FakeProxmox.requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

__all__ = ["FakeProxmox", "FakeResponse"]

POWER = {
    "start": ("qmstart", "running"),
    "stop": ("qmstop", "stopped"),
    "shutdown": ("qmshutdown", "stopped"),
    "reset": ("qmreset", None),
    "reboot": ("qmreboot", "running"),
    "suspend": ("qmsuspend", "paused"),
    "resume": ("qmresume", "running"),
}


@attrs.frozen
class FakeResponse:
    status: int
    reason: str
    body: dict[str, Any]


def _vm(vmid: int, name: str, status: str = "stopped", **config: Any) -> dict[str, Any]:
    base = {
        "name": name,
        "cores": 2,
        "sockets": 1,
        "memory": "4096",
        "ostype": "win10",
        "boot": "order=scsi0;net0",
        "net0": "virtio=BC:24:11:00:00:%02X,bridge=vmbr0" % (vmid % 256),
        "scsi0": f"local-lvm:vm-{vmid}-disk-0,size=64G",
        "scsihw": "virtio-scsi-single",
    }
    base.update(config)
    return {"vmid": vmid, "status": status, "config": base, "started": 0.0}


class FakeProxmox:
    """The fake cluster. ``slow`` maps a path regex to seconds to sleep before answering."""

    def __init__(
        self,
        *,
        node: str = "pve",
        user: str = "root@pam",
        password: str | None = None,
        token: tuple[str, str] | None = None,
    ) -> None:
        self.node = node
        self.user = user
        self.password = password
        self.token = token
        self.vms: dict[int, dict[str, Any]] = {
            100: _vm(100, "farm-template", template=1),
            101: _vm(101, "farm-bot-01", "running"),
            102: _vm(102, "farm-bot-02"),
        }
        self.vms[101]["started"] = time.time() - 3600
        self.tasks: dict[str, dict[str, Any]] = {}
        self.tickets: dict[str, str] = {}
        self.slow: dict[str, float] = {}
        self.requests: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        self._lock = threading.Lock()
        self._pid = 40_000

    # -- plumbing -----------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, params: Mapping[str, str], headers: Mapping[str, str]
    ) -> FakeResponse:
        """Answer one request to ``/api2/json{path}``."""
        for pattern, seconds in self.slow.items():
            if re.search(pattern, path):
                time.sleep(seconds)
        with self._lock:
            self.requests.append((method, path, dict(params), dict(headers)))
            if method == "POST" and path == "/access/ticket":
                return self._ticket(params)
            problem = self._unauthenticated(method, headers)
            if problem is not None:
                return problem
            return self._route(method, path, dict(params))

    def install(self, mocked: Any, base_url: str) -> None:
        """Register this fake with a ``responses.RequestsMock`` for ``base_url``
        (``https://host:8006/api2/json``)."""
        pattern = re.compile(re.escape(base_url) + r"(/[^?]*)(\?.*)?$")

        def callback(request: Any) -> tuple[int, dict[str, str], str]:
            parts = urlsplit(request.url)
            path = unquote(pattern.match(request.url.split("#")[0]).group(1))  # type: ignore[union-attr]
            params = dict(parse_qsl(parts.query))
            body = request.body
            if isinstance(body, bytes):
                body = body.decode()
            if body:
                params.update(dict(parse_qsl(body)))
            answer = self.handle(request.method, path, params, dict(request.headers))
            return answer.status, {"Content-Type": "application/json"}, json.dumps(answer.body)

        for method in ("GET", "POST", "PUT", "DELETE"):
            mocked.add_callback(method, pattern, callback=callback)

    # -- auth ---------------------------------------------------------------------------------

    def _ticket(self, params: Mapping[str, str]) -> FakeResponse:
        if (
            self.password is None
            or params.get("username") != self.user
            or params.get("password") != self.password
        ):
            return FakeResponse(401, "authentication failure", {"data": None})
        ticket = f"PVE:{self.user}:{int(time.time()):08X}::" + secrets.token_urlsafe(48)
        csrf = f"{int(time.time()):08X}:" + secrets.token_urlsafe(24)
        self.tickets[ticket] = csrf
        return FakeResponse(
            200,
            "OK",
            {
                "data": {
                    "username": self.user,
                    "ticket": ticket,
                    "CSRFPreventionToken": csrf,
                    "clustername": "farm",
                    "cap": {
                        "vms": {"VM.PowerMgmt": 1, "VM.Clone": 1, "VM.Config.Options": 1},
                        "nodes": {"Sys.Audit": 1},
                    },
                }
            },
        )

    def _unauthenticated(self, method: str, headers: Mapping[str, str]) -> FakeResponse | None:
        lower = {k.lower(): v for k, v in headers.items()}
        authorization = lower.get("authorization", "")
        if self.token is not None and authorization.startswith("PVEAPIToken="):
            name, secret = self.token
            if authorization == f"PVEAPIToken={self.user}!{name}={secret}":
                return None
        cookie = lower.get("cookie", "")
        match = re.search(r"PVEAuthCookie=([^;]+)", cookie)
        if match is not None:
            ticket = unquote(match.group(1))
            csrf = self.tickets.get(ticket)
            if csrf is not None:
                if method != "GET" and lower.get("csrfpreventiontoken") != csrf:
                    return FakeResponse(
                        401, "Permission denied - invalid csrf token", {"data": None}
                    )
                return None
        return FakeResponse(401, "No ticket", {"data": None})

    # -- routes -------------------------------------------------------------------------------

    def _route(self, method: str, path: str, params: dict[str, str]) -> FakeResponse:
        routes: list[tuple[str, str, Callable[..., FakeResponse]]] = [
            ("GET", r"/version", self._version),
            ("GET", r"/access/permissions", self._permissions),
            ("GET", r"/cluster/resources", self._resources),
            ("GET", r"/nodes/(?P<node>[^/]+)/qemu", self._list),
            ("GET", r"/nodes/(?P<node>[^/]+)/qemu/(?P<vmid>\d+)/status/current", self._current),
            (
                "POST",
                r"/nodes/(?P<node>[^/]+)/qemu/(?P<vmid>\d+)/status/(?P<action>\w+)",
                self._power,
            ),
            ("POST", r"/nodes/(?P<node>[^/]+)/qemu/(?P<vmid>\d+)/clone", self._clone),
            ("GET", r"/nodes/(?P<node>[^/]+)/qemu/(?P<vmid>\d+)/config", self._config_get),
            ("PUT", r"/nodes/(?P<node>[^/]+)/qemu/(?P<vmid>\d+)/config", self._config_put),
            ("DELETE", r"/nodes/(?P<node>[^/]+)/qemu/(?P<vmid>\d+)", self._delete),
            ("PUT", r"/nodes/(?P<node>[^/]+)/qemu/(?P<vmid>\d+)/sendkey", self._sendkey),
            ("GET", r"/nodes/(?P<node>[^/]+)/tasks/(?P<upid>[^/]+)/status", self._task_status),
        ]
        for wanted, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match is None:
                continue
            if wanted != method:
                continue
            groups = match.groupdict()
            if "node" in groups and groups["node"] != self.node:
                return FakeResponse(595, f"no such node '{groups['node']}'", {"data": None})
            if "vmid" in groups:
                vmid = int(groups["vmid"])
                if vmid not in self.vms:
                    message = (
                        f"Configuration file 'nodes/{self.node}/qemu-server/{vmid}.conf' "
                        "does not exist"
                    )
                    return FakeResponse(500, message, {"data": None})
                groups["vmid"] = vmid
            return handler(params, **groups)
        return FakeResponse(501, f"Method '{method} {path}' not implemented", {"data": None})

    @staticmethod
    def _ok(data: Any) -> FakeResponse:
        return FakeResponse(200, "OK", {"data": data})

    @staticmethod
    def _bad(errors: dict[str, str]) -> FakeResponse:
        return FakeResponse(400, "Parameter verification failed.", {"data": None, "errors": errors})

    def _version(self, _params: dict[str, str]) -> FakeResponse:
        return self._ok({"version": "8.2.4", "release": "8.2", "repoid": "faa83925c9641325"})

    def _permissions(self, _params: dict[str, str]) -> FakeResponse:
        return self._ok({"/": {"Sys.Audit": 1, "VM.Audit": 1}, "/vms": {"VM.PowerMgmt": 1}})

    def _stats(self, vmid: int) -> dict[str, Any]:
        vm = self.vms[vmid]
        config = vm["config"]
        running = vm["status"] in ("running", "paused")
        entry: dict[str, Any] = {
            "vmid": vmid,
            "name": config["name"],
            "status": "running" if running else "stopped",
            "cpus": int(config.get("cores", 1)) * int(config.get("sockets", 1)),
            "cpu": 0.0312 if running else 0,
            "maxmem": int(config.get("memory", 512)) * 1024 * 1024,
            "mem": 1_717_986_918 if running else 0,
            "maxdisk": 68_719_476_736,
            "disk": 0,
            "uptime": int(time.time() - vm["started"]) if running else 0,
            "netin": 123_456 if running else 0,
            "netout": 65_432 if running else 0,
            "diskread": 987_654 if running else 0,
            "diskwrite": 456_789 if running else 0,
        }
        if running:
            entry["pid"] = 4_000 + vmid
        if config.get("template"):
            entry["template"] = 1
        return entry

    def _resources(self, params: dict[str, str]) -> FakeResponse:
        kind = params.get("type")
        if kind not in (None, "vm", "node", "storage", "sdn"):
            return self._bad({"type": "value 'x' does not have a value in the enumeration"})
        found: list[dict[str, Any]] = []
        if kind in (None, "node"):
            found.append(
                {
                    "id": f"node/{self.node}",
                    "type": "node",
                    "node": self.node,
                    "status": "online",
                    "maxcpu": 16,
                    "maxmem": 68_719_476_736,
                    "mem": 21_474_836_480,
                    "maxdisk": 100_861_726_720,
                    "disk": 10_737_418_240,
                    "uptime": 864_000,
                    "level": "",
                }
            )
        if kind in (None, "vm"):
            for vmid in sorted(self.vms):
                stats = self._stats(vmid)
                found.append(
                    {
                        "id": f"qemu/{vmid}",
                        "type": "qemu",
                        "node": self.node,
                        "vmid": vmid,
                        "name": stats["name"],
                        "status": stats["status"],
                        "maxcpu": stats["cpus"],
                        "maxmem": stats["maxmem"],
                        "mem": stats["mem"],
                        "maxdisk": stats["maxdisk"],
                        "disk": 0,
                        "uptime": stats["uptime"],
                        "template": int(bool(stats.get("template"))),
                    }
                )
        if kind in (None, "storage"):
            found.append(
                {
                    "id": f"storage/{self.node}/local-lvm",
                    "type": "storage",
                    "node": self.node,
                    "storage": "local-lvm",
                    "status": "available",
                    "plugintype": "lvmthin",
                    "content": "images,rootdir",
                    "maxdisk": 100_861_726_720,
                    "disk": 8_589_934_592,
                    "shared": 0,
                }
            )
        return self._ok(found)

    def _list(self, _params: dict[str, str], node: str) -> FakeResponse:
        return self._ok([self._stats(vmid) for vmid in sorted(self.vms)])

    def _current(self, _params: dict[str, str], node: str, vmid: int) -> FakeResponse:
        vm = self.vms[vmid]
        entry = self._stats(vmid)
        entry["qmpstatus"] = vm["status"]
        entry["ha"] = {"managed": 0}
        entry["agent"] = 1
        if vm["status"] in ("running", "paused"):
            entry["running-machine"] = "pc-i440fx-8.1+pve0"
            entry["running-qemu"] = "8.1.5"
        return self._ok(entry)

    def _task(self, kind: str, vmid: int, status: str = "stopped", exit_status: str = "OK") -> str:
        self._pid += 1
        start = int(time.time())
        upid = (
            f"UPID:{self.node}:{self._pid:08X}:{self._pid * 7:08X}:{start:08X}:"
            f"{kind}:{vmid}:{self.user}:"
        )
        task = {
            "upid": upid,
            "node": self.node,
            "pid": self._pid,
            "pstart": self._pid * 7,
            "starttime": start,
            "type": kind,
            "id": str(vmid),
            "user": self.user,
            "status": status,
        }
        if status == "stopped":
            task["exitstatus"] = exit_status
        self.tasks[upid] = task
        return upid

    def _power(self, params: dict[str, str], node: str, vmid: int, action: str) -> FakeResponse:
        if action not in POWER:
            return FakeResponse(
                501,
                f"Method 'POST /nodes/{node}/qemu/{vmid}/status/{action}' not implemented",
                {"data": None},
            )
        vm = self.vms[vmid]
        if vm["config"].get("template") and action == "start":
            return FakeResponse(500, "you can't start a vm if it's a template", {"data": None})
        kind, new_status = POWER[action]
        if new_status is not None:
            if new_status == "running" and vm["status"] == "stopped":
                vm["started"] = time.time()
            vm["status"] = new_status
        return self._ok(self._task(kind, vmid))

    def _clone(self, params: dict[str, str], node: str, vmid: int) -> FakeResponse:
        newid = params.get("newid", "")
        if not newid.isdigit() or not 100 <= int(newid) <= 999_999_999:
            return self._bad({"newid": "property is missing and it is not optional"})
        if int(newid) in self.vms:
            return FakeResponse(
                500, f"unable to create VM {newid}: config file already exists", {"data": None}
            )
        source = self.vms[vmid]["config"]
        config = {k: v for k, v in source.items() if k != "template"}
        config["name"] = params.get("name") or f"Copy-of-VM-{source['name']}"
        self.vms[int(newid)] = {
            "vmid": int(newid),
            "status": "stopped",
            "config": config,
            "started": 0.0,
        }
        return self._ok(self._task("qmclone", vmid))

    def _config_get(self, _params: dict[str, str], node: str, vmid: int) -> FakeResponse:
        config = dict(self.vms[vmid]["config"])
        config["digest"] = self._digest(vmid)
        for key in ("cores", "sockets", "template"):
            if key in config:
                config[key] = int(config[key])
        return self._ok(config)

    def _digest(self, vmid: int) -> str:
        encoded = json.dumps(self.vms[vmid]["config"], sort_keys=True).encode()
        return hashlib.sha1(encoded, usedforsecurity=False).hexdigest()

    def _config_put(self, params: dict[str, str], node: str, vmid: int) -> FakeResponse:
        digest = params.pop("digest", None)
        if digest is not None and digest != self._digest(vmid):
            return FakeResponse(
                500,
                "detected modified configuration - file changed by other user? Try again.",
                {"data": None},
            )
        deleted = [name for name in params.pop("delete", "").split(",") if name]
        errors = {
            name: "property is not defined in schema and the schema does not allow "
            "additional properties"
            for name in params
            if not re.fullmatch(
                r"(name|cores|sockets|memory|balloon|cpu|onboot|agent|description|tags|net\d|scsi\d|ostype|boot)",
                name,
            )
        }
        if errors:
            return self._bad(errors)
        config = self.vms[vmid]["config"]
        config.update(params)
        for name in deleted:
            config.pop(name, None)
        return self._ok(None)

    def _delete(self, params: dict[str, str], node: str, vmid: int) -> FakeResponse:
        if self.vms[vmid]["status"] != "stopped":
            return FakeResponse(500, f"VM {vmid} is running - destroy failed", {"data": None})
        del self.vms[vmid]
        return self._ok(self._task("qmdestroy", vmid))

    def _sendkey(self, params: dict[str, str], node: str, vmid: int) -> FakeResponse:
        if not params.get("key"):
            return self._bad({"key": "property is missing and it is not optional"})
        if self.vms[vmid]["status"] != "running":
            return FakeResponse(500, f"VM {vmid} not running", {"data": None})
        return self._ok(None)

    def _task_status(self, _params: dict[str, str], node: str, upid: str) -> FakeResponse:
        task = self.tasks.get(upid)
        if task is None:
            return FakeResponse(500, f"unable to parse worker upid '{upid}'", {"data": None})
        return self._ok(task)
