"""``botmox data export|import``: one tenant's domain data (resources, workspace, bots with their
lifecycle log and ban archive, finance, settings) as JSON lines, on the backend the server uses
(same ``--data-dir``/``--config``/environment). The format and the logic live in
:mod:`botmox_core.services.domains.transfer`; this module only parses options and draws."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from botmox_core.cli._group import BotmoxGroup
from botmox_core.cli._options import json_option, location_options, tenant_ids
from botmox_core.cli.admin import missing_data
from botmox_core.config import load_settings
from botmox_core.converter import get_converter
from botmox_core.plugin import load_registry
from botmox_core.ports import DataBackend
from botmox_core.services.domains.transfer import (
    ImportReport,
    export_to_path,
    import_tenant,
    readable_path,
)

__all__ = ["data_group"]

tenant_option = click.option("--tenant", required=True, callback=tenant_ids, help="Tenant id.")


@click.group("data", cls=BotmoxGroup)
@click.option("--data-dir", type=click.Path(path_type=Path), default=None)
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None)
@click.option("--init", is_flag=True, default=False)
@click.pass_context
def data_group(
    ctx: click.Context, data_dir: Path | None, config_file: str | None, init: bool
) -> None:
    """Export and import one tenant's domain data as JSON lines.

    They use the data backend ``botmox serve`` uses with the same configuration
    (``--data-dir``, ``--config``, ``BOTMOX_*``). ``--init`` lets ``import`` create a new
    embedded database.
    """
    ctx.obj = {"data_dir": data_dir, "config_file": config_file, "init": init}


@contextmanager
def _backend(ctx: click.Context) -> Iterator[DataBackend]:
    options = ctx.find_object(dict) or {}
    settings = load_settings(
        config_file=options.get("config_file"), data_dir=options.get("data_dir")
    )
    if options.get("init"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    elif settings.data_backend == "sqlite":
        missing = missing_data(attrs.evolve(settings, storage="none"))
        if missing is not None:
            raise click.ClickException(
                f"{missing}. Run from the directory `botmox serve` uses, or pass the same "
                "--data-dir/--config (or BOTMOX_DATA_DIR); --init creates a new database."
            )
    registry = load_registry(settings.environ)
    backend = registry.data_backends.get(settings.data_backend)(settings)
    try:
        yield backend
    finally:
        backend.close()


class _Bars:
    """Rich progress bars on stderr, one per collection (a :class:`TransferProgress`)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, TaskID] = {}

    def start(self, label: str, total: int | None) -> None:
        if label in self._tasks:
            self._progress.update(self._tasks[label], total=total)
        else:
            self._tasks[label] = self._progress.add_task(label, total=total)

    def advance(self, label: str, amount: int = 1) -> None:
        if label not in self._tasks:
            self.start(label, None)
        self._progress.advance(self._tasks[label], amount)


@contextmanager
def _bars(enabled: bool) -> Iterator[_Bars | None]:
    """Progress bars on stderr when a person watches (a TTY, no ``--json``)."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    progress = Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    with progress:
        yield _Bars(progress)


@data_group.command("export")
@tenant_option
@click.argument("target", metavar="FILE")
@json_option
@location_options
@click.pass_context
def export_command(ctx: click.Context, tenant: str, target: str, as_json: bool) -> None:
    """Write the tenant's domain data to FILE (``-``: standard output; gzip when FILE ends in
    ``.gz``). The summary goes to standard error when the data goes to standard output."""
    with _backend(ctx) as backend, _bars(not as_json) as bars:
        report = export_to_path(backend, tenant, target, progress=bars, stdout=sys.stdout.buffer)
    summary = {
        "tenant": report.tenant,
        "source_backend": report.source_backend,
        "exported_at": report.exported_at,
        "file": target,
        "items": report.items,
        "counts": report.counts,
        "sha256": report.sha256,
    }
    lines = [f"exported {report.items} items of tenant {tenant} to {target}"]
    lines += [f"  {label}: {count}" for label, count in report.counts.items()]
    click.echo(_render(summary, as_json, "\n".join(lines)), err=target == "-")


@data_group.command("import")
@tenant_option
@click.argument("source", metavar="FILE")
@click.option("--dry-run", is_flag=True, help="Check the file and count what would change.")
@click.option(
    "--allow-partial",
    is_flag=True,
    help="Import a file whose trailer is missing or does not match (truncated or altered).",
)
@click.option(
    "--continue-on-error",
    is_flag=True,
    help="Import the good lines and list the bad ones (exit status 1) instead of refusing.",
)
@json_option
@location_options
@click.pass_context
def import_command(
    ctx: click.Context,
    tenant: str,
    source: str,
    dry_run: bool,
    allow_partial: bool,
    continue_on_error: bool,
    as_json: bool,
) -> None:
    """Import FILE (``-``: standard input; plain or gzip) into the tenant. The whole file is
    checked first; nothing is written when a line is bad (unless ``--continue-on-error``) or
    the trailer is missing or does not match (unless ``--allow-partial``). Importing the same
    file again changes nothing."""
    with (
        readable_path(source, sys.stdin.buffer) as path,
        _backend(ctx) as backend,
        _bars(not as_json) as bars,
    ):
        report = import_tenant(
            backend,
            tenant,
            path,
            dry_run=dry_run,
            allow_partial=allow_partial,
            continue_on_error=continue_on_error,
            progress=bars,
        )
    click.echo(_render(_import_summary(report), as_json, _import_text(report)))
    if report.error_count:
        raise click.ClickException(f"{report.error_count} line(s) not imported (listed above)")


def _render(data: Any, as_json: bool, text: str) -> str:
    if not as_json:
        return text
    return json.dumps(get_converter().unstructure(data), indent=2, sort_keys=True)


def _import_summary(report: ImportReport) -> dict[str, Any]:
    return {
        "tenant": report.tenant,
        "source": {
            "tenant": report.header.get("tenant"),
            "backend": report.header.get("source_backend"),
            "exported_at": report.header.get("exported_at"),
        },
        "dry_run": report.dry_run,
        "complete": report.complete,
        "problems": report.problems,
        "counts": report.counts,
        "errors": [{"line": error.line, "message": error.message} for error in report.errors],
        "error_count": report.error_count,
    }


def _import_text(report: ImportReport) -> str:
    verb = "would import" if report.dry_run else "imported"
    lines = [
        f"{verb} into tenant {report.tenant} (exported from tenant "
        f"{report.header.get('tenant')} on {report.header.get('source_backend')})"
    ]
    for label, counts in report.counts.items():
        lines.append(
            f"  {label}: {counts['created']} created, {counts['updated']} updated, "
            f"{counts['unchanged']} unchanged"
        )
    lines += [f"warning: {problem}" for problem in report.problems]
    lines += [f"line {error.line}: {error.message}" for error in report.errors]
    if report.error_count > len(report.errors):
        lines.append(f"... and {report.error_count - len(report.errors)} more bad lines")
    return "\n".join(lines)
