"""``botmox admin release|assignment list|show|revoke``: the module releases a tenant serves
and which release each user (or the tenant default) resolves to (``release publish`` and
``release assign`` are in :mod:`botmox_core.cli.admin`)."""

from __future__ import annotations

import attrs
import click

from botmox_core.cli._inventory import (
    Decorator,
    id_option,
    inventory_command,
    one,
    open_inventory,
    show,
    stamp,
    status_filter,
    user_filter,
)
from botmox_core.cli._output import emit
from botmox_core.cli.admin import _core, _operator, admin_group, release_group
from botmox_core.errors import NotFoundError
from botmox_core.models import Assignment, Release, ReleaseScope, ReleaseStatus

__all__ = ["assignment_group"]

_module_filter = click.option("--module", default=None, help="Only this module.")


# -- releases ------------------------------------------------------------------------------------


def _release_line(release: Release) -> str:
    return (
        f"{release.id}  {release.module}/{release.platform}/{release.channel} "
        f"{release.version}  {release.status.value:8} {release.size_bytes} bytes "
        f"sha256={release.sha256} created={stamp(release.created_at)}"
    )


_release_id = id_option("--id", "release_id", "Release id.", int)


@inventory_command(
    release_group,
    "list",
    _module_filter,
    status_filter([s.value for s in ReleaseStatus]),
    limit=True,
)
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
    show(releases, as_json, [_release_line(release) for release in releases])


@inventory_command(release_group, "show", _release_id)
def release_show(ctx: click.Context, tenant: str, release_id: int, as_json: bool) -> None:
    """Show one release."""
    with _core(ctx) as core:
        release = core.releases.get(_operator(tenant), release_id)
    show(release, as_json, [_release_line(release)])


@inventory_command(
    release_group,
    "revoke",
    _release_id,
    click.option(
        "--status",
        type=click.Choice(["disabled", "archived"]),
        default="disabled",
        show_default=True,
        help="The status that takes the release out of service.",
    ),
)
def release_revoke(
    ctx: click.Context, tenant: str, release_id: int, status: str, as_json: bool
) -> None:
    """Take a release out of service (resolves answer ARTIFACT_RELEASE_NOT_ACTIVE)."""
    with open_inventory(ctx) as (uow, inventory):
        release = one(
            inventory.set_release_status(tenant, release_id, ReleaseStatus(status)), "release"
        )
        uow.commit()
    show(release, as_json, [_release_line(release)])


# -- assignments ---------------------------------------------------------------------------------


def _assignment_line(assignment: Assignment) -> str:
    who = assignment.user_id or "(tenant default)"
    return (
        f"{who}  {assignment.module}/{assignment.platform}/{assignment.channel} -> release "
        f"{assignment.release_id}  assigned={stamp(assignment.assigned_at)}"
    )


@admin_group.group("assignment")
def assignment_group() -> None:
    """Release assignments (``admin release assign`` creates them)."""


_scope_options: list[Decorator] = [
    click.option("--module", required=True),
    click.option("--platform", required=True),
    click.option("--channel", default="stable", show_default=True),
    click.option("--user", "user_id", default=None, help="User (default: the tenant default)."),
]


@inventory_command(
    assignment_group,
    "list",
    _module_filter,
    user_filter("Only this user's assignments."),
    click.option("--defaults", "defaults_only", is_flag=True, help="Only tenant defaults."),
    limit=True,
)
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
    with open_inventory(ctx) as (_, inventory):
        found = inventory.assignments(
            tenant, module=module, user_id=user_id, defaults_only=defaults_only, limit=limit
        )
    show(list(found), as_json, [_assignment_line(a) for a in found])


@inventory_command(assignment_group, "show", *_scope_options)
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
        assignment = one(uow.assignments.get(tenant, user_id, scope), "assignment")
    show(assignment, as_json, [_assignment_line(assignment)])


@inventory_command(assignment_group, "revoke", *_scope_options)
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
    with open_inventory(ctx) as (uow, inventory):
        if not inventory.delete_assignment(tenant, user_id, scope):
            raise NotFoundError("no such assignment")
        uow.commit()
    emit(
        {"tenant_id": tenant, "user_id": user_id, **attrs.asdict(scope), "revoked": True},
        as_json,
        f"removed the assignment of {user_id or 'the tenant default'} for "
        f"{module}/{platform}/{channel}",
    )
