"""``botmox admin ...``: operator commands acting directly on the configured backends (the same
configuration as ``botmox serve``), so they work while the server runs."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from botmox_core.backends.sqlite import DEFAULT_FILENAME
from botmox_core.bootstrap import App, bootstrap
from botmox_core.cli._group import BotmoxGroup
from botmox_core.cli._options import (
    CONFIG_HELP,
    DATA_DIR_HELP,
    INIT_HELP,
    json_option,
    location_options,
    tenant_ids,
)
from botmox_core.cli._output import byte_progress, emit
from botmox_core.config import Settings, load_settings
from botmox_core.converter import parse_timestamp
from botmox_core.errors import BadRequestError
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.services.principal import utcnow

log = logging.getLogger(__name__)

tenant_option = click.option("--tenant", required=True, callback=tenant_ids, help="Tenant id.")


@click.group("admin", cls=BotmoxGroup)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option(
    "--config", "config_file", type=click.Path(dir_okay=False), default=None, help=CONFIG_HELP
)
@click.option("--init", is_flag=True, default=False, help=INIT_HELP)
@click.pass_context
def admin_group(
    ctx: click.Context, data_dir: Path | None, config_file: str | None, init: bool
) -> None:
    """Operator commands: tokens, licences, entitlements, releases, assignments, VMs,
    leases (list, show, revoke).

    They act on the same backends as ``botmox serve`` with the same configuration: run them
    from the same directory or pass the same ``--data-dir``/``--config``. A data directory that
    does not exist is refused (it would be a new, empty installation whose tokens the server
    does not know) unless ``--init`` is given.
    """
    ctx.obj = {"data_dir": data_dir, "config_file": config_file, "init": init}


def missing_data(settings: Settings) -> str | None:
    """What the configured embedded backends need but is absent, or ``None``.

    Only files the embedded backends keep their data in count: the SQLite database (``sqlite``
    data backend) and the data directory holding local objects and the URL key (``localfs``
    storage). With other backends (``supabase``, ``rtdb``, ``s3`` ...) the data directory holds
    no data and is not checked.
    """
    if settings.data_backend == "sqlite":
        configured = settings.plugin_options("sqlite").get("path", "").strip()
        if configured != ":memory:":
            database = (
                Path(configured).expanduser()
                if configured
                else settings.data_dir / DEFAULT_FILENAME
            )
            if not database.is_file():
                return f"no botmox database at {database.absolute()}"
    if settings.storage == "localfs":
        options = settings.plugin_options("localfs")
        root = options.get("root")
        if root and not Path(root).is_dir():
            return f"no localfs object directory at {Path(root).absolute()}"
        if not (root and options.get("url_key")) and not settings.data_dir.is_dir():
            return f"no botmox data dir at {settings.data_dir.absolute()}"
    return None


@contextmanager
def _core(ctx: click.Context) -> Iterator[App]:
    options = ctx.find_object(dict) or {}
    settings = load_settings(
        config_file=options.get("config_file"), data_dir=options.get("data_dir")
    )
    if not options.get("init"):
        missing = missing_data(settings)
        if missing is not None:
            raise click.ClickException(
                f"{missing}. Run from the directory `botmox serve` uses, or pass the same "
                "--data-dir/--config (or BOTMOX_DATA_DIR); --init creates a new, empty "
                "installation there."
            )
    core = bootstrap(settings)
    try:
        yield core
    finally:
        core.close()


def _operator(tenant: str) -> Principal:
    return Principal(tenant_id=tenant, role=Role.ADMIN, subject="cli")


def _future_timestamp(value: str | None, option: str) -> datetime | None:
    """An ISO 8601 timestamp that lies in the future (an expiry already past is a mistake)."""
    if value is None:
        return None
    try:
        moment = parse_timestamp(value)
    except ValueError:
        raise BadRequestError(f"{option}: not an ISO 8601 timestamp: {value!r}") from None
    now = utcnow()
    if moment <= now:
        raise BadRequestError(
            f"{option}: {moment:%Y-%m-%dT%H:%M:%SZ} is not in the future "
            f"(now {now:%Y-%m-%dT%H:%M:%SZ})"
        )
    return moment


@admin_group.group("token")
def token_group() -> None:
    """API tokens."""


@token_group.command("create")
@tenant_option
@click.option(
    "--role", required=True, type=click.Choice([r.value for r in Role if r != Role.AGENT])
)
@click.option("--user", "user_id", default=None, help="User the token acts as.")
@click.option("--label", default=None, help="Free-form note.")
@click.option("--expires-at", default=None, help="ISO 8601 expiry (default: never).")
@json_option
@location_options
@click.pass_context
def token_create(
    ctx: click.Context,
    tenant: str,
    role: str,
    user_id: str | None,
    label: str | None,
    expires_at: str | None,
    as_json: bool,
) -> None:
    """Create an API token. The token is printed once and stored only as a hash."""
    with _core(ctx) as core:
        created = core.tokens.create(
            tenant,
            role,
            user_id=user_id,
            label=label,
            expires_at=_future_timestamp(expires_at, "--expires-at"),
        )
    record = created.record
    emit(
        {
            "id": record.id,
            "token": created.secret,
            "tenant_id": record.tenant_id,
            "role": record.role,
            "user_id": record.user_id,
            "expires_at": record.expires_at,
        },
        as_json,
        created.secret,
    )


@token_group.command("revoke")
@tenant_option
@click.option("--id", "token_id", required=True, help="Token id (tok_...).")
@json_option
@location_options
@click.pass_context
def token_revoke(ctx: click.Context, tenant: str, token_id: str, as_json: bool) -> None:
    """Revoke an API token."""
    with _core(ctx) as core:
        done = core.tokens.revoke(tenant, token_id)
        if done:
            _announce_revocation(core, tenant, token_id)
    if not done:
        raise click.ClickException(f"no token {token_id} for tenant {tenant}")
    emit({"id": token_id, "revoked": True}, as_json, f"revoked {token_id}")


def _announce_revocation(core: Any, tenant: str, token_id: str) -> None:
    """Best effort: running servers that hear it on the agent transport forget cached tokens at
    once; those that do not stop accepting the token within the revocation bound anyway."""
    import asyncio

    from botmox_core.services.tokens import announce_revocation

    async def announce() -> None:
        await core.transport.start()
        try:
            await announce_revocation(core.transport, tenant, token_id)
        finally:
            await core.transport.stop()

    try:
        asyncio.run(asyncio.wait_for(announce(), timeout=5))
    except Exception as exc:  # the revocation itself is committed; the bound still holds
        log.warning("could not announce the revocation to running servers: %s", exc)


@admin_group.group("license")
def license_group() -> None:
    """Tenant licences."""


@license_group.command("set")
@tenant_option
@click.option("--status", required=True, type=click.Choice(["active", "inactive", "suspended"]))
@click.option("--expires-at", default=None, help="ISO 8601 expiry.")
@click.option("--perpetual", is_flag=True, help="Never expires.")
@json_option
@location_options
@click.pass_context
def license_set(
    ctx: click.Context,
    tenant: str,
    status: str,
    expires_at: str | None,
    perpetual: bool,
    as_json: bool,
) -> None:
    """Create or replace the tenant's licence."""
    if perpetual and expires_at:
        raise click.UsageError("--perpetual and --expires-at exclude each other")
    if not perpetual and not expires_at and status == "active":
        raise click.UsageError("an active licence needs --expires-at or --perpetual")
    with _core(ctx) as core:
        licence = core.licences.set_licence(
            tenant, status, _future_timestamp(expires_at, "--expires-at")
        )
    expiry = (
        "perpetual"
        if licence.expires_at is None
        else f"until {licence.expires_at:%Y-%m-%dT%H:%M:%SZ}"
    )
    emit(licence, as_json, f"licence of {tenant}: {licence.status.value}, {expiry}")


@admin_group.group("entitlement")
def entitlement_group() -> None:
    """User entitlements."""


@entitlement_group.command("set")
@tenant_option
@click.option("--user", "user_id", required=True, help="User id.")
@click.option(
    "--module",
    "modules",
    required=True,
    multiple=True,
    help="Module the user may lease (repeat; '*' allows all).",
)
@json_option
@location_options
@click.pass_context
def entitlement_set(
    ctx: click.Context, tenant: str, user_id: str, modules: tuple[str, ...], as_json: bool
) -> None:
    """Create or replace which modules a user may lease."""
    with _core(ctx) as core:
        entitlement = core.licences.set_entitlement(tenant, user_id, modules)
        unpublished = core.licences.modules_without_releases(tenant, entitlement.modules)
    if unpublished:
        click.echo(
            f"warning: tenant {tenant} has no release of {', '.join(unpublished)} yet; the "
            "entitlement is stored but leads to no download until one is published "
            "(check the module name)",
            err=True,
        )
    emit(
        entitlement,
        as_json,
        f"{user_id}@{tenant} may lease: {', '.join(sorted(entitlement.modules))}",
    )


@admin_group.group("release")
def release_group() -> None:
    """Releases and assignments."""


@release_group.command("publish")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@tenant_option
@click.option("--module", required=True)
@click.option("--platform", required=True)
@click.option("--channel", default="stable", show_default=True)
@click.option("--version", "version", required=True)
@click.option(
    "--status",
    default="active",
    show_default=True,
    type=click.Choice(["active", "draft", "disabled", "archived"]),
)
@click.option(
    "--sha256",
    "expected_sha256",
    default=None,
    help="Refuse the release unless the stored object has this sha256.",
)
@json_option
@location_options
@click.pass_context
def release_publish(
    ctx: click.Context,
    file: Path,
    tenant: str,
    module: str,
    platform: str,
    channel: str,
    version: str,
    status: str,
    expected_sha256: str | None,
    as_json: bool,
) -> None:
    """Upload FILE, verify the stored object's sha256 and size, and publish it. Prints the
    release id."""
    size = file.stat().st_size
    with _core(ctx) as core, byte_progress(not as_json) as progress, file.open("rb") as stream:
        callbacks: dict[str, Any] = {}
        if progress is not None:
            upload = progress.add_task("upload", total=size)
            verify = progress.add_task("verify", total=size)
            callbacks = {
                "progress": lambda n: progress.advance(upload, n),
                "verify_progress": lambda n: progress.advance(verify, n),
            }
        release = core.releases.upload_and_publish(
            _operator(tenant),
            stream,
            module=module,
            platform=platform,
            channel=channel,
            version=version,
            filename=_filename(file),
            size=size,
            status=status,
            expected_sha256=expected_sha256,
            **callbacks,
        )
    emit(release, as_json, str(release.id))


def _filename(path: Path) -> str:
    cleaned = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in path.name)
    return cleaned.lstrip("._-")[:100] or "artifact.bin"


@release_group.command("assign")
@tenant_option
@click.option("--release-id", required=True, type=int)
@click.option("--module", required=True)
@click.option("--platform", required=True)
@click.option("--channel", default="stable", show_default=True)
@click.option("--user", "user_id", default=None, help="User (default: the tenant default).")
@json_option
@location_options
@click.pass_context
def release_assign(
    ctx: click.Context,
    tenant: str,
    release_id: int,
    module: str,
    platform: str,
    channel: str,
    user_id: str | None,
    as_json: bool,
) -> None:
    """Assign a release to a user, or as the tenant default."""
    with _core(ctx) as core:
        assignment = core.releases.assign(
            _operator(tenant),
            module=module,
            platform=platform,
            channel=channel,
            release_id=release_id,
            user_id=user_id,
        )
    who = user_id or "tenant default"
    emit(
        assignment,
        as_json,
        f"release {release_id} assigned to {who} for {module}/{platform}/{channel}",
    )


@admin_group.command("audit")
@tenant_option
@click.option("--lease-id", default=None)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@json_option
@location_options
@click.pass_context
def audit(ctx: click.Context, tenant: str, lease_id: str | None, limit: int, as_json: bool) -> None:
    """Show download audit entries, newest first."""
    with _core(ctx) as core:
        entries = core.downloads.audit_log(_operator(tenant), lease_id=lease_id, limit=limit)
    lines = [
        f"{e.created_at:%Y-%m-%dT%H:%M:%SZ} {e.result.value:7} {e.reason_code or '-':30} "
        f"lease={e.lease_id or '-'} vm={e.vm_uuid or '-'} release={e.release_id or '-'}"
        for e in entries
    ]
    emit(entries, as_json, "\n".join(lines) or "no audit entries")
