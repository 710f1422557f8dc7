"""``botmox backup create | verify | restore``: one archive of the records, the objects and the
signing keys (see :mod:`botmox_core.ops.backup` and docs/operations.md, "Backup and restore")."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from botmox_core.cli._group import BotmoxGroup
from botmox_core.cli._options import json_option, path_options, settings_from
from botmox_core.cli._output import emit
from botmox_core.config import Settings
from botmox_core.ops import backup as backup_ops
from botmox_core.ports import ObjectStorage

progress_option = click.option(
    "--progress/--no-progress", default=True, help="Progress bars on stderr (only on a terminal)."
)


def _storage(settings: Settings) -> ObjectStorage:
    """The configured storage, built without creating keys (``localfs`` is only read here)."""
    if settings.storage == "localfs":
        from botmox_core.backends.localfs import LocalFsStorage

        return LocalFsStorage(
            backup_ops.localfs_root(settings), base_url=settings.base_url, url_key=bytes(32)
        )
    from botmox_core.plugin import load_registry

    return load_registry(settings.environ).storages.get(settings.storage)(settings)


class _Bars:
    """:class:`botmox_core.ops.backup.Progress` on a rich display."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def step(self, description: str, total: int | None) -> None:
        if self.task is not None:
            self.progress.update(self.task, visible=False)
        self.task = self.progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self.task is not None:
            self.progress.advance(self.task, amount)


@contextmanager
def _bars(enabled: bool) -> Iterator[backup_ops.Progress | None]:
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    display = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    with display:
        yield _Bars(display)


@click.group("backup", cls=BotmoxGroup)
@path_options
def backup_group() -> None:
    """Back up and restore an installation: records, objects and signing keys."""


@backup_group.command("create")
@path_options
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--no-keys", is_flag=True, help="Leave the signing key files out of the archive.")
@progress_option
@json_option
@click.pass_context
def create_command(
    ctx: click.Context, output: Path, no_keys: bool, progress: bool, as_json: bool
) -> None:
    """Write a backup archive to OUTPUT (.tar, or .tar.gz / .tgz compressed)."""
    settings = settings_from(ctx)
    storage = _storage(settings)
    try:
        with _bars(progress) as bars:
            manifest = backup_ops.create_backup(
                settings, storage, output, include_keys=not no_keys, progress=bars
            )
    finally:
        storage.close()
    emit(
        {"archive": str(output), "manifest": manifest},
        as_json,
        f"{output}: {manifest['data_backend']} database, {len(manifest['objects'])} objects, "
        f"keys: {', '.join(manifest['keys']) or 'none'} "
        f"({backup_ops.archive_bytes(manifest)} bytes)",
    )


@backup_group.command("verify")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@progress_option
@json_option
def verify_command(archive: Path, progress: bool, as_json: bool) -> None:
    """Check every file of ARCHIVE against its manifest's sha256s (changes nothing)."""
    with _bars(progress) as bars:
        manifest = backup_ops.verify_archive(archive, bars)
    emit(
        manifest,
        as_json,
        f"{archive}: ok, {len(manifest['files'])} files match the manifest "
        f"(created {manifest['created_at']}, {manifest['data_backend']} + {manifest['storage']})",
    )


@backup_group.command("restore")
@path_options
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--force",
    is_flag=True,
    help="Replace a target that holds records or objects (refused without it).",
)
@progress_option
@json_option
@click.pass_context
def restore_command(
    ctx: click.Context, archive: Path, force: bool, progress: bool, as_json: bool
) -> None:
    """Restore ARCHIVE into the configured installation (stop the server first)."""
    settings = settings_from(ctx)
    storage = None if settings.storage == "localfs" else _storage(settings)
    try:
        with _bars(progress) as bars:
            result = backup_ops.restore_backup(
                settings, storage, archive, force=force, progress=bars
            )
    finally:
        if storage is not None:
            storage.close()
    manifest = result["manifest"]
    aside = result["moved_aside"]
    emit(
        result,
        as_json,
        f"restored {archive} ({manifest['created_at']}): {len(manifest['objects'])} objects"
        + (f"; previous files moved aside: {', '.join(aside)}" if aside else ""),
    )
