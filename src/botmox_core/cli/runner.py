"""``botmox runner ...``: what a runner script on a VM does, from the command line.

This module imports only click: the client (httpx) and the progress bar (rich) are imported
when a command runs (:mod:`botmox_core.cli._fetching`), so ``botmox runner fetch --help`` and
the start of a fetch stay fast on a small VM.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from botmox_core.errors import BotmoxError

__all__ = ["runner_group"]


@click.group("runner")
def runner_group() -> None:
    """Runner commands: fetch a licensed module onto this VM."""


@runner_group.command("fetch")
@click.option(
    "--server", envvar="BOTMOX_SERVER", required=True, help="Server base URL (also BOTMOX_SERVER)."
)
@click.option(
    "--token",
    envvar="BOTMOX_TOKEN",
    required=True,
    show_envvar=True,
    help="API token (prefer the BOTMOX_TOKEN environment variable).",
)
@click.option("--module", required=True, help="Module to fetch.")
@click.option("--platform", required=True, help="Platform, e.g. win64.")
@click.option("--channel", default="stable", show_default=True, help="Release channel.")
@click.option(
    "--dest",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where the verified file goes (replaced atomically).",
)
@click.option(
    "--vm-uuid",
    default=None,
    help="VM id [default: BOTMOX_VM_UUID, else derived from /etc/machine-id, else a "
    "generated id kept in ~/.config/botmox/vm-uuid].",
)
@click.option("--user", "user_id", default=None, help="User the VM belongs to.")
@click.option(
    "--retries",
    type=click.IntRange(0, 20),
    default=3,
    show_default=True,
    help="Retries of network errors, 5xx and 429 answers.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object on stdout.")
def fetch_command(
    server: str,
    token: str,
    module: str,
    platform: str,
    channel: str,
    dest: Path,
    vm_uuid: str | None,
    user_id: str | None,
    retries: int,
    as_json: bool,
) -> None:
    """Register this VM, lease MODULE, download the assigned release to DEST and verify it.

    When DEST already holds the resolved release (same size and sha256) nothing is downloaded
    and the command says "already up to date"; the lease and resolve still happen, so the
    licence gate and the audit entry hold. An interrupted download resumes on the next run; a
    file that fails verification never reaches DEST. On failure prints "error: CODE: message"
    on stderr and exits with status 1.
    """
    from botmox_core.cli._fetching import fetch

    try:
        result, up_to_date = fetch(
            server,
            token,
            module,
            platform,
            channel,
            dest,
            vm_uuid,
            user_id,
            retries,
            show_progress=not as_json,
        )
    except BotmoxError as error:
        click.echo(f"error: {error.code}: {error.message}", err=True)
        raise SystemExit(1) from None
    if as_json:
        click.echo(json.dumps({**result.to_json(), "up_to_date": up_to_date}, sort_keys=True))
    else:
        state = "already up to date, " if up_to_date else ""
        click.echo(
            f"{result.path}: {state}{module} {result.version} (release {result.release_id}), "
            f"{result.size_bytes} bytes, sha256 {result.sha256}"
        )
