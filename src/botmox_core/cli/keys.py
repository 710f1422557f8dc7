"""``botmox keys list | rotate | retire``: the lease-signing and URL-signing key rings.

They act on the key files of the configuration ``botmox serve`` uses (same ``--data-dir`` /
``--config``); running servers pick the change up by themselves (see docs/operations.md,
"Key rotation").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import click

from botmox_core.cli._group import BotmoxGroup
from botmox_core.cli._options import json_option, path_options, settings_from
from botmox_core.cli._output import emit
from botmox_core.ops import keys as key_ops


def _kind(command: Callable[..., Any]) -> Callable[..., Any]:
    command = click.option(
        "--url", "kind", flag_value="url", help="The download URL signing key ring."
    )(command)
    return click.option(
        "--lease", "kind", flag_value="lease", help="The lease token signing key ring."
    )(command)


def _require_kind(kind: str | None) -> key_ops.KeyRingKind:
    if kind == "lease":
        return "lease"
    if kind == "url":
        return "url"
    raise click.UsageError("say which ring: --lease or --url")


def _key_lines(keys: list[dict[str, Any]]) -> list[str]:
    lines = []
    for key in keys:
        state = key["state"]
        if state == "verifying":
            state = f"verifying until {key['verify_until']}" + (
                "" if key["verifies"] else " (over: retire it)"
            )
        elif state == "retired":
            state = f"retired {key['retired_at']}"
        legacy = " (legacy: also checks tokens/URLs without a key id)" if key["legacy"] else ""
        lines.append(f"  {key['kid']}  {state}{legacy}")
    return lines


@click.group("keys", cls=BotmoxGroup)
@path_options
def keys_group() -> None:
    """Lease-signing and URL-signing key rings: list, rotate, retire."""


@keys_group.command("list")
@path_options
@json_option
@click.pass_context
def list_command(ctx: click.Context, as_json: bool) -> None:
    """Every key of both rings with its id and state (never a secret)."""
    report = key_ops.list_keys(settings_from(ctx))
    lines = []
    for kind, title in (("lease", "lease signing keys"), ("url", "download URL keys")):
        ring = report[kind]
        where = "pinned by the url_key option" if ring["pinned"] else ring["file"]
        lines.append(f"{title}: {where}")
        lines.extend(_key_lines(ring["keys"]) or ["  (no file yet: created on first start)"])
    emit(report, as_json, "\n".join(lines))


@keys_group.command("rotate")
@path_options
@_kind
@click.option(
    "--verify-for",
    type=click.IntRange(min=0),
    default=None,
    help="Seconds the previous key keeps verifying [default: the lease TTL (--lease) or the "
    "download URL TTL (--url), plus 60].",
)
@json_option
@click.pass_context
def rotate_command(
    ctx: click.Context, kind: str | None, verify_for: int | None, as_json: bool
) -> None:
    """Add a new active key; the previous one keeps verifying what it signed."""
    chosen = _require_kind(kind)
    result = key_ops.rotate(
        settings_from(ctx),
        chosen,
        verify_for=None if verify_for is None else timedelta(seconds=verify_for),
    )
    demoted = ", ".join(
        f"{key['kid']} verifies until {key['verify_until']}" for key in result["demoted"]
    )
    emit(
        result,
        as_json,
        f"{chosen} key ring {result['file']}: new active key {result['kid']}"
        + (f"; {demoted}" if demoted else ""),
    )


@keys_group.command("retire")
@path_options
@_kind
@click.argument("kid", required=False)
@click.option(
    "--force", is_flag=True, help="Retire KID even though it still verifies (refuses its tokens)."
)
@json_option
@click.pass_context
def retire_command(
    ctx: click.Context, kind: str | None, kid: str | None, force: bool, as_json: bool
) -> None:
    """Retire KID, or every key whose verification window is over; its secret is erased."""
    chosen = _require_kind(kind)
    result = key_ops.retire(settings_from(ctx), chosen, kid, force=force)
    retired = ", ".join(result["retired"]) or "nothing to retire"
    emit(result, as_json, f"{chosen} key ring {result['file']}: retired {retired}")
