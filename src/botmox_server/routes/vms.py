"""VM registry routes."""

from __future__ import annotations

from typing import Any

from litestar import Response, get, post
from litestar.params import FromPath, JSONBody

from botmox_server.bodies import RegisterVmBody, VmStatusBody
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok


@post("/api/v1/vm/register", sync_to_thread=True, tags=["vm"])
def register_vm(data: JSONBody[RegisterVmBody], core: Core, principal: Caller) -> Response[Any]:
    """Register (or update) the caller's VM."""
    vm = core.vms.register(
        principal,
        vm_uuid=data.vm_uuid,
        user_id=data.user_id,
        vm_name=data.vm_name,
        project_id=data.project_id,
        status=data.status,
        metadata=data.metadata,
    )
    return ok(vm, 201)


@get("/api/v1/vm/{vm_uuid:str}/resolve", sync_to_thread=True, tags=["vm"])
def resolve_vm(vm_uuid: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
    """The VM record of the caller's tenant."""
    return ok(core.vms.resolve(principal, vm_uuid))


@post("/api/v1/vm/{vm_uuid:str}/status", sync_to_thread=True, status_code=200, tags=["vm"])
def set_vm_status(
    vm_uuid: FromPath[str], data: JSONBody[VmStatusBody], core: Core, principal: Caller
) -> Response[Any]:
    """Change a VM's status: active, paused or revoked (admin/infra). **Beyond** v1:
    registering never changes a status."""
    return ok(core.vms.set_status(principal, vm_uuid, data.status))
