"""``botmox admin <kind> list|show|revoke``: see and revoke what a tenant holds — tokens,
licences, entitlements, releases, assignments, VMs and leases — on the configured backends
(the same configuration as ``botmox serve``, like every ``botmox admin`` command).

Listings read the backend's :class:`~botmox_core.ports.inventory.Inventory`; revocations go
through the services where one exists (tokens, leases, VMs, licences). Hashes of tokens and
leases are never printed: a token is shown once, by ``token create``. Agents and commands live
with the server's agent bus and are handled over HTTP (:mod:`botmox_core.cli.operate`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import attrs
import click

from botmox_core.cli._output import emit
from botmox_core.cli.admin import (
    _core,
    _operator,
    admin_group,
    entitlement_group,
    json_option,
    license_group,
    location_options,
    release_group,
    tenant_option,
    token_group,
)
from botmox_core.converter import get_converter
from botmox_core.errors import NotFoundError
from botmox_core.models import (
    ApiToken,
    Assignment,
    Entitlement,
    Lease,
    Licence,
    LicenceStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Vm,
)
from botmox_core.ports.inventory import Inventory, inventory_of
from botmox_core.ports.repositories import UnitOfWork
from botmox_core.services.principal import utcnow

__all__ = ["public_view"]

#: Fields never printed (hashes are credentials' fingerprints, not for screens or logs).
HIDDEN_FIELDS = frozenset({"token_hash", "previous_token_hash"})

limit_option = click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, 10_000), help="At most."
)


def public_view(value: Any) -> Any:
    """A record as JSON-ready data without its hashes (lists element-wise)."""
    if isinstance(value, list | tuple):
        return [public_view(item) for item in value]
    data = get_converter().unstructure(value)
    if isinstance(data, dict):
        return {key: item for key, item in data.items() if key not in HIDDEN_FIELDS}
    return data


def _stamp(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def _show(value: Any, as_json: bool, lines: Sequence[str]) -> None:
    emit(public_view(value), as_json, "\n".join(lines) if lines else "none")


@contextmanager
def _inventory(ctx: click.Context) -> Iterator[tuple[UnitOfWork, Inventory]]:
    """A unit of work on the configured backend and its inventory (the caller commits)."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        found = inventory_of(uow)
        if found is None:
            raise click.ClickException(
                f"the {core.backend.name} data backend keeps no operator inventory (listing "
                "and these revocations need sqlite or supabase)"
            )
        yield uow, found


def _one(found: Any, what: str) -> Any:
    if found is None:
        raise NotFoundError(f"no such {what}")
    return found


# -- tokens --------------------------------------------------------------------------------------


def _token_line(token: ApiToken) -> str:
    state = "revoked" if token.revoked_at else "active"
    if state == "active" and token.expires_at is not None and token.expires_at <= utcnow():
        state = "expired"
    return (
        f"{token.id}  {token.role.value:6} {state:8} user={token.user_id or '-'} "
        f"created={_stamp(token.created_at)} expires={_stamp(token.expires_at)} "
        f"label={token.label or '-'}"
    )


@token_group.command("list")
@tenant_option
@click.option("--role", default=None, help="Only tokens of this role.")
@click.option("--user", "user_id", default=None, help="Only tokens acting as this user.")
@click.option("--include-revoked", is_flag=True, help="Revoked tokens too.")
@limit_option
@json_option
@location_options
@click.pass_context
def token_list(
    ctx: click.Context,
    tenant: str,
    role: str | None,
    user_id: str | None,
    include_revoked: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List the tenant's API tokens, newest first (never the tokens themselves)."""
    with _inventory(ctx) as (_, inventory):
        tokens = inventory.tokens(
            tenant, role=role, user_id=user_id, include_revoked=include_revoked, limit=limit
        )
    _show(list(tokens), as_json, [_token_line(token) for token in tokens])


@token_group.command("show")
@tenant_option
@click.option("--id", "token_id", required=True, help="Token id (tok_...).")
@json_option
@location_options
@click.pass_context
def token_show(ctx: click.Context, tenant: str, token_id: str, as_json: bool) -> None:
    """Show one API token (its id, role, user, dates; never the token)."""
    with _inventory(ctx) as (_, inventory):
        token = _one(inventory.token(tenant, token_id), "token")
    _show(token, as_json, [_token_line(token)])


# -- licences and entitlements -------------------------------------------------------------------


def _licence_line(licence: Licence) -> str:
    expiry = "perpetual" if licence.expires_at is None else f"until {_stamp(licence.expires_at)}"
    return f"{licence.tenant_id}  {licence.status.value:9} {expiry}"


@license_group.command("list")
@click.option("--tenant", default=None, help="Only this tenant [default: every tenant].")
@click.option("--status", type=click.Choice([s.value for s in LicenceStatus]), default=None)
@json_option
@location_options
@click.pass_context
def license_list(ctx: click.Context, tenant: str | None, status: str | None, as_json: bool) -> None:
    """List tenants' licences."""
    with _inventory(ctx) as (_, inventory):
        licences = [
            licence
            for licence in inventory.licences(tenant)
            if status is None or licence.status.value == status
        ]
    _show(licences, as_json, [_licence_line(licence) for licence in licences])


@license_group.command("show")
@tenant_option
@json_option
@location_options
@click.pass_context
def license_show(ctx: click.Context, tenant: str, as_json: bool) -> None:
    """Show the tenant's licence."""
    with _inventory(ctx) as (_, inventory):
        licence = _one(next(iter(inventory.licences(tenant)), None), "licence")
    _show(licence, as_json, [_licence_line(licence)])


@license_group.command("revoke")
@tenant_option
@json_option
@location_options
@click.pass_context
def license_revoke(ctx: click.Context, tenant: str, as_json: bool) -> None:
    """Make the tenant's licence inactive (new leases are refused with LICENSE_INACTIVE)."""
    with _core(ctx) as core:
        with core.backend.unit_of_work() as uow:
            current = _one(uow.licences.get_licence(tenant), "licence")
        licence = core.licences.set_licence(tenant, "inactive", current.expires_at)
    _show(licence, as_json, [_licence_line(licence)])


def _entitlement_line(entitlement: Entitlement) -> str:
    modules = ", ".join(sorted(entitlement.modules)) or "(none)"
    return f"{entitlement.user_id}  {modules}  updated={_stamp(entitlement.updated_at)}"


@entitlement_group.command("list")
@tenant_option
@click.option("--user", "user_id", default=None, help="Only this user.")
@json_option
@location_options
@click.pass_context
def entitlement_list(ctx: click.Context, tenant: str, user_id: str | None, as_json: bool) -> None:
    """List the tenant's entitlements (which modules each user may lease)."""
    with _inventory(ctx) as (_, inventory):
        entitlements = inventory.entitlements(tenant, user_id=user_id)
    _show(list(entitlements), as_json, [_entitlement_line(e) for e in entitlements])


@entitlement_group.command("show")
@tenant_option
@click.option("--user", "user_id", required=True, help="User id.")
@json_option
@location_options
@click.pass_context
def entitlement_show(ctx: click.Context, tenant: str, user_id: str, as_json: bool) -> None:
    """Show one user's entitlement."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        entitlement = _one(uow.licences.get_entitlement(tenant, user_id), "entitlement")
    _show(entitlement, as_json, [_entitlement_line(entitlement)])


@entitlement_group.command("revoke")
@tenant_option
@click.option("--user", "user_id", required=True, help="User id.")
@json_option
@location_options
@click.pass_context
def entitlement_revoke(ctx: click.Context, tenant: str, user_id: str, as_json: bool) -> None:
    """Take every module from a user (new leases are refused with MODULE_NOT_ALLOWED)."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        current = _one(uow.licences.get_entitlement(tenant, user_id), "entitlement")
        revoked = attrs.evolve(current, modules=frozenset(), updated_at=utcnow())
        uow.licences.put_entitlement(revoked)
        uow.commit()
    _show(revoked, as_json, [_entitlement_line(revoked)])


# -- releases and assignments --------------------------------------------------------------------


def _release_line(release: Release) -> str:
    return (
        f"{release.id}  {release.module}/{release.platform}/{release.channel} "
        f"{release.version}  {release.status.value:8} {release.size_bytes} bytes "
        f"sha256={release.sha256} created={_stamp(release.created_at)}"
    )


@release_group.command("list")
@tenant_option
@click.option("--module", default=None, help="Only this module.")
@click.option("--status", type=click.Choice([s.value for s in ReleaseStatus]), default=None)
@limit_option
@json_option
@location_options
@click.pass_context
def release_list(
    ctx: click.Context,
    tenant: str,
    module: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the tenant's releases, newest first."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        releases = [
            release
            for release in uow.releases.list(tenant, module)
            if status is None or release.status.value == status
        ][:limit]
    _show(releases, as_json, [_release_line(release) for release in releases])


@release_group.command("show")
@tenant_option
@click.option("--id", "release_id", required=True, type=int, help="Release id.")
@json_option
@location_options
@click.pass_context
def release_show(ctx: click.Context, tenant: str, release_id: int, as_json: bool) -> None:
    """Show one release."""
    with _core(ctx) as core:
        release = core.releases.get(_operator(tenant), release_id)
    _show(release, as_json, [_release_line(release)])


@release_group.command("revoke")
@tenant_option
@click.option("--id", "release_id", required=True, type=int, help="Release id.")
@click.option(
    "--status",
    type=click.Choice(["disabled", "archived"]),
    default="disabled",
    show_default=True,
    help="The status that takes the release out of service.",
)
@json_option
@location_options
@click.pass_context
def release_revoke(
    ctx: click.Context, tenant: str, release_id: int, status: str, as_json: bool
) -> None:
    """Take a release out of service (resolves answer ARTIFACT_RELEASE_NOT_ACTIVE)."""
    with _inventory(ctx) as (uow, inventory):
        release = _one(
            inventory.set_release_status(tenant, release_id, ReleaseStatus(status)), "release"
        )
        uow.commit()
    _show(release, as_json, [_release_line(release)])


def _assignment_line(assignment: Assignment) -> str:
    who = assignment.user_id or "(tenant default)"
    return (
        f"{who}  {assignment.module}/{assignment.platform}/{assignment.channel} -> release "
        f"{assignment.release_id}  assigned={_stamp(assignment.assigned_at)}"
    )


@admin_group.group("assignment")
def assignment_group() -> None:
    """Release assignments (``admin release assign`` creates them)."""


_scope_options = [
    click.option("--module", required=True),
    click.option("--platform", required=True),
    click.option("--channel", default="stable", show_default=True),
    click.option("--user", "user_id", default=None, help="User (default: the tenant default)."),
]


def _scope(command: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_scope_options):
        command = option(command)
    return command


@assignment_group.command("list")
@tenant_option
@click.option("--module", default=None, help="Only this module.")
@click.option("--user", "user_id", default=None, help="Only this user's assignments.")
@click.option("--defaults", "defaults_only", is_flag=True, help="Only tenant defaults.")
@limit_option
@json_option
@location_options
@click.pass_context
def assignment_list(
    ctx: click.Context,
    tenant: str,
    module: str | None,
    user_id: str | None,
    defaults_only: bool,
    limit: int,
    as_json: bool,
) -> None:
    """List the tenant's assignments, newest first."""
    if user_id and defaults_only:
        raise click.UsageError("--user and --defaults exclude each other")
    with _inventory(ctx) as (_, inventory):
        found = inventory.assignments(
            tenant, module=module, user_id=user_id, defaults_only=defaults_only, limit=limit
        )
    _show(list(found), as_json, [_assignment_line(a) for a in found])


@assignment_group.command("show")
@tenant_option
@_scope
@json_option
@location_options
@click.pass_context
def assignment_show(
    ctx: click.Context,
    tenant: str,
    module: str,
    platform: str,
    channel: str,
    user_id: str | None,
    as_json: bool,
) -> None:
    """Show the assignment of a user (or the tenant default) for a scope."""
    scope = ReleaseScope(module=module, platform=platform, channel=channel)
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        assignment = _one(uow.assignments.get(tenant, user_id, scope), "assignment")
    _show(assignment, as_json, [_assignment_line(assignment)])


@assignment_group.command("revoke")
@tenant_option
@_scope
@json_option
@location_options
@click.pass_context
def assignment_revoke(
    ctx: click.Context,
    tenant: str,
    module: str,
    platform: str,
    channel: str,
    user_id: str | None,
    as_json: bool,
) -> None:
    """Remove an assignment (a user's falls back to the tenant default; without a default,
    resolves answer ARTIFACT_ASSIGNMENT_NOT_FOUND)."""
    scope = ReleaseScope(module=module, platform=platform, channel=channel)
    with _inventory(ctx) as (uow, inventory):
        if not inventory.delete_assignment(tenant, user_id, scope):
            raise NotFoundError("no such assignment")
        uow.commit()
    emit(
        {"tenant_id": tenant, "user_id": user_id, **attrs.asdict(scope), "revoked": True},
        as_json,
        f"removed the assignment of {user_id or 'the tenant default'} for "
        f"{module}/{platform}/{channel}",
    )


# -- VMs and leases ------------------------------------------------------------------------------


def _vm_line(vm: Vm) -> str:
    return (
        f"{vm.vm_uuid}  {vm.status.value:7} user={vm.user_id} name={vm.vm_name or '-'} "
        f"project={vm.project_id or '-'} updated={_stamp(vm.updated_at)}"
    )


@admin_group.group("vm")
def vm_group() -> None:
    """Registered VMs."""


@vm_group.command("list")
@tenant_option
@click.option("--status", type=click.Choice(["active", "paused", "revoked"]), default=None)
@click.option("--user", "user_id", default=None, help="Only this user's VMs.")
@limit_option
@json_option
@location_options
@click.pass_context
def vm_list(
    ctx: click.Context,
    tenant: str,
    status: str | None,
    user_id: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List the tenant's VMs, newest first."""
    with _inventory(ctx) as (_, inventory):
        vms = inventory.vms(tenant, status=status, user_id=user_id, limit=limit)
    _show(list(vms), as_json, [_vm_line(vm) for vm in vms])


@vm_group.command("show")
@tenant_option
@click.option("--vm", "vm_uuid", required=True, help="VM uuid.")
@json_option
@location_options
@click.pass_context
def vm_show(ctx: click.Context, tenant: str, vm_uuid: str, as_json: bool) -> None:
    """Show one VM."""
    with _core(ctx) as core:
        vm = core.vms.resolve(_operator(tenant), vm_uuid)
    _show(vm, as_json, [_vm_line(vm)])


@vm_group.command("revoke")
@tenant_option
@click.option("--vm", "vm_uuid", required=True, help="VM uuid.")
@json_option
@location_options
@click.pass_context
def vm_revoke(ctx: click.Context, tenant: str, vm_uuid: str, as_json: bool) -> None:
    """Set a VM's status to revoked (new leases are refused with VM_INACTIVE)."""
    with _core(ctx) as core:
        vm = core.vms.set_status(_operator(tenant), vm_uuid, "revoked")
    _show(vm, as_json, [_vm_line(vm)])


def _lease_line(lease: Lease) -> str:
    state = lease.status.value
    if state == "active" and lease.expires_at <= utcnow():
        state = "expired"
    return (
        f"{lease.id}  {state:7} vm={lease.vm_uuid} user={lease.user_id} module={lease.module} "
        f"issued={_stamp(lease.issued_at)} expires={_stamp(lease.expires_at)}"
        + (f" reason={lease.revoke_reason}" if lease.revoke_reason else "")
    )


@admin_group.group("lease")
def lease_group() -> None:
    """Licence leases."""


@lease_group.command("list")
@tenant_option
@click.option("--status", type=click.Choice(["active", "revoked"]), default=None)
@click.option("--vm", "vm_uuid", default=None, help="Only this VM's leases.")
@click.option("--user", "user_id", default=None, help="Only this user's leases.")
@click.option("--module", default=None, help="Only leases of this module.")
@limit_option
@json_option
@location_options
@click.pass_context
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
    with _inventory(ctx) as (_, inventory):
        leases = inventory.leases(
            tenant,
            status=status,
            vm_uuid=vm_uuid.lower() if vm_uuid else None,
            user_id=user_id,
            module=module,
            limit=limit,
        )
    _show(list(leases), as_json, [_lease_line(lease) for lease in leases])


@lease_group.command("show")
@tenant_option
@click.option("--id", "lease_id", required=True, help="Lease id.")
@json_option
@location_options
@click.pass_context
def lease_show(ctx: click.Context, tenant: str, lease_id: str, as_json: bool) -> None:
    """Show one lease (never its token)."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        lease = _one(uow.leases.get(tenant, lease_id), "lease")
    _show(lease, as_json, [_lease_line(lease)])


@lease_group.command("revoke")
@tenant_option
@click.option("--id", "lease_id", required=True, help="Lease id.")
@click.option("--reason", default=None, help="Why (kept with the lease).")
@json_option
@location_options
@click.pass_context
def lease_revoke(
    ctx: click.Context, tenant: str, lease_id: str, reason: str | None, as_json: bool
) -> None:
    """Revoke a lease: its heartbeats answer LEASE_INACTIVE, its resolves too."""
    with _core(ctx) as core:
        lease = core.leases.revoke(_operator(tenant), lease_id, reason)
    _show(lease, as_json, [_lease_line(lease)])
