"""``botmox admin vm|lease list|show|revoke``: the tenant's registered VMs and the licence
leases issued to them."""

from __future__ import annotations

import click

from botmox_core.cli._inventory import (
    id_option,
    inventory_command,
    one,
    open_inventory,
    show,
    stamp,
    status_filter,
    user_filter,
)
from botmox_core.cli.admin import _core, _operator, admin_group
from botmox_core.models import Lease, Vm
from botmox_core.services.principal import utcnow

__all__ = ["lease_group", "vm_group"]


# -- VMs -----------------------------------------------------------------------------------------


def _vm_line(vm: Vm) -> str:
    return (
        f"{vm.vm_uuid}  {vm.status.value:7} user={vm.user_id} name={vm.vm_name or '-'} "
        f"project={vm.project_id or '-'} updated={stamp(vm.updated_at)}"
    )


@admin_group.group("vm")
def vm_group() -> None:
    """Registered VMs."""


_vm_uuid = id_option("--vm", "vm_uuid", "VM uuid.")


@inventory_command(
    vm_group,
    "list",
    status_filter(["active", "paused", "revoked"]),
    user_filter("Only this user's VMs."),
    limit=True,
)
def vm_list(
    ctx: click.Context,
    tenant: str,
    status: str | None,
    user_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the tenant's VMs, newest first."""
    with open_inventory(ctx) as (_, inventory):
        vms = inventory.vms(tenant, status=status, user_id=user_id, limit=limit)
    show(list(vms), as_json, [_vm_line(vm) for vm in vms])


@inventory_command(vm_group, "show", _vm_uuid)
def vm_show(ctx: click.Context, tenant: str, vm_uuid: str, as_json: bool) -> None:
    """Show one VM."""
    with _core(ctx) as core:
        vm = core.vms.resolve(_operator(tenant), vm_uuid)
    show(vm, as_json, [_vm_line(vm)])


@inventory_command(vm_group, "revoke", _vm_uuid)
def vm_revoke(ctx: click.Context, tenant: str, vm_uuid: str, as_json: bool) -> None:
    """Set a VM's status to revoked (new leases are refused with VM_INACTIVE)."""
    with _core(ctx) as core:
        vm = core.vms.set_status(_operator(tenant), vm_uuid, "revoked")
    show(vm, as_json, [_vm_line(vm)])


# -- leases --------------------------------------------------------------------------------------


def _lease_line(lease: Lease) -> str:
    state = lease.status.value
    if state == "active" and lease.expires_at <= utcnow():
        state = "expired"
    return (
        f"{lease.id}  {state:7} vm={lease.vm_uuid} user={lease.user_id} module={lease.module} "
        f"issued={stamp(lease.issued_at)} expires={stamp(lease.expires_at)}"
        + (f" reason={lease.revoke_reason}" if lease.revoke_reason else "")
    )


@admin_group.group("lease")
def lease_group() -> None:
    """Licence leases."""


_lease_id = id_option("--id", "lease_id", "Lease id.")


@inventory_command(
    lease_group,
    "list",
    status_filter(["active", "revoked"]),
    click.option("--vm", "vm_uuid", default=None, help="Only this VM's leases."),
    user_filter("Only this user's leases."),
    click.option("--module", default=None, help="Only leases of this module."),
    limit=True,
)
def lease_list(
    ctx: click.Context,
    tenant: str,
    status: str | None,
    vm_uuid: str | None,
    user_id: str | None,
    module: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the tenant's leases, newest first (never their tokens)."""
    with open_inventory(ctx) as (_, inventory):
        leases = inventory.leases(
            tenant,
            status=status,
            vm_uuid=vm_uuid.lower() if vm_uuid else None,
            user_id=user_id,
            module=module,
            limit=limit,
        )
    show(list(leases), as_json, [_lease_line(lease) for lease in leases])


@inventory_command(lease_group, "show", _lease_id)
def lease_show(ctx: click.Context, tenant: str, lease_id: str, as_json: bool) -> None:
    """Show one lease (never its token)."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        lease = one(uow.leases.get(tenant, lease_id), "lease")
    show(lease, as_json, [_lease_line(lease)])


@inventory_command(
    lease_group,
    "revoke",
    _lease_id,
    click.option("--reason", default=None, help="Why (kept with the lease)."),
)
def lease_revoke(
    ctx: click.Context, tenant: str, lease_id: str, reason: str | None, as_json: bool
) -> None:
    """Revoke a lease: its heartbeats answer LEASE_INACTIVE, its resolves too."""
    with _core(ctx) as core:
        lease = core.leases.revoke(_operator(tenant), lease_id, reason)
    show(lease, as_json, [_lease_line(lease)])
