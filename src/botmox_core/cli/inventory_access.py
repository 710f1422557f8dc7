"""``botmox admin token|license|entitlement list|show|revoke``: who may call the API and lease
which modules (``token revoke`` and the ``create``/``set`` commands are in
:mod:`botmox_core.cli.admin`)."""

from __future__ import annotations

import attrs
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
from botmox_core.cli._options import tenant_ids
from botmox_core.cli.admin import _core, entitlement_group, license_group, token_group
from botmox_core.models import ApiToken, Entitlement, Licence, LicenceStatus
from botmox_core.services.principal import utcnow

__all__: list[str] = []


# -- tokens --------------------------------------------------------------------------------------


def _token_line(token: ApiToken) -> str:
    state = "revoked" if token.revoked_at else "active"
    if state == "active" and token.expires_at is not None and token.expires_at <= utcnow():
        state = "expired"
    return (
        f"{token.id}  {token.role.value:6} {state:8} user={token.user_id or '-'} "
        f"created={stamp(token.created_at)} expires={stamp(token.expires_at)} "
        f"label={token.label or '-'}"
    )


@inventory_command(
    token_group,
    "list",
    click.option("--role", default=None, help="Only tokens of this role."),
    user_filter("Only tokens acting as this user."),
    click.option("--include-revoked", is_flag=True, help="Revoked tokens too."),
    limit=True,
)
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
    with open_inventory(ctx) as (_, inventory):
        tokens = inventory.tokens(
            tenant, role=role, user_id=user_id, include_revoked=include_revoked, limit=limit
        )
    show(list(tokens), as_json, [_token_line(token) for token in tokens])


@inventory_command(token_group, "show", id_option("--id", "token_id", "Token id (tok_...)."))
def token_show(ctx: click.Context, tenant: str, token_id: str, as_json: bool) -> None:
    """Show one API token (its id, role, user, dates; never the token)."""
    with open_inventory(ctx) as (_, inventory):
        token = one(inventory.token(tenant, token_id), "token")
    show(token, as_json, [_token_line(token)])


# -- licences ------------------------------------------------------------------------------------


def _licence_line(licence: Licence) -> str:
    expiry = "perpetual" if licence.expires_at is None else f"until {stamp(licence.expires_at)}"
    return f"{licence.tenant_id}  {licence.status.value:9} {expiry}"


@inventory_command(
    license_group,
    "list",
    click.option(
        "--tenant",
        default=None,
        callback=tenant_ids,
        help="Only this tenant [default: every tenant].",
    ),
    status_filter([s.value for s in LicenceStatus]),
    tenant=False,
)
def license_list(ctx: click.Context, tenant: str | None, status: str | None, as_json: bool) -> None:
    """List tenants' licences."""
    with open_inventory(ctx) as (_, inventory):
        licences = [
            licence
            for licence in inventory.licences(tenant)
            if status is None or licence.status.value == status
        ]
    show(licences, as_json, [_licence_line(licence) for licence in licences])


@inventory_command(license_group, "show")
def license_show(ctx: click.Context, tenant: str, as_json: bool) -> None:
    """Show the tenant's licence."""
    with open_inventory(ctx) as (_, inventory):
        licence = one(next(iter(inventory.licences(tenant)), None), "licence")
    show(licence, as_json, [_licence_line(licence)])


@inventory_command(license_group, "revoke")
def license_revoke(ctx: click.Context, tenant: str, as_json: bool) -> None:
    """Make the tenant's licence inactive (new leases are refused with LICENSE_INACTIVE)."""
    with _core(ctx) as core:
        with core.backend.unit_of_work() as uow:
            current = one(uow.licences.get_licence(tenant), "licence")
        licence = core.licences.set_licence(tenant, "inactive", current.expires_at)
    show(licence, as_json, [_licence_line(licence)])


# -- entitlements --------------------------------------------------------------------------------


def _entitlement_line(entitlement: Entitlement) -> str:
    modules = ", ".join(sorted(entitlement.modules)) or "(none)"
    return f"{entitlement.user_id}  {modules}  updated={stamp(entitlement.updated_at)}"


_user_id = id_option("--user", "user_id", "User id.")


@inventory_command(entitlement_group, "list", user_filter("Only this user."))
def entitlement_list(ctx: click.Context, tenant: str, user_id: str | None, as_json: bool) -> None:
    """List the tenant's entitlements (which modules each user may lease)."""
    with open_inventory(ctx) as (_, inventory):
        entitlements = inventory.entitlements(tenant, user_id=user_id)
    show(list(entitlements), as_json, [_entitlement_line(e) for e in entitlements])


@inventory_command(entitlement_group, "show", _user_id)
def entitlement_show(ctx: click.Context, tenant: str, user_id: str, as_json: bool) -> None:
    """Show one user's entitlement."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        entitlement = one(uow.licences.get_entitlement(tenant, user_id), "entitlement")
    show(entitlement, as_json, [_entitlement_line(entitlement)])


@inventory_command(entitlement_group, "revoke", _user_id)
def entitlement_revoke(ctx: click.Context, tenant: str, user_id: str, as_json: bool) -> None:
    """Take every module from a user (new leases are refused with MODULE_NOT_ALLOWED)."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        current = one(uow.licences.get_entitlement(tenant, user_id), "entitlement")
        revoked = attrs.evolve(current, modules=frozenset(), updated_at=utcnow())
        uow.licences.put_entitlement(revoked)
        uow.commit()
    show(revoked, as_json, [_entitlement_line(revoked)])
