"""Restoring a backup: embedded (staged and swapped into place, moved back on failure) or
shared (``psql --single-transaction``, objects put first and removed on failure)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botmox_core.config import Settings
from botmox_core.errors import StorageError
from botmox_core.ops.backup.archive import (
    PGDUMP_MEMBER,
    SQLITE_MEMBER,
    BackupError,
    Progress,
    _extract,
    _member,
    _NoProgress,
    _open_archive,
    verify_archive,
)
from botmox_core.ops.backup.installation import (
    _postgres_rows,
    _run,
    _sqlite_rows,
    key_paths,
    localfs_keys,
    localfs_root,
    object_keys,
    postgres_tool,
    sqlite_path,
    supabase_dsn,
)
from botmox_core.ports import ObjectStorage

__all__ = ["restore_backup"]


def restore_backup(
    settings: Settings,
    storage: ObjectStorage | None,
    archive_path: Path,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Restore ``archive_path`` into the configured installation (see the module docstring).
    ``storage`` is the configured object storage; ``None`` for ``localfs``, which is restored
    as files (nothing is created before the restore, not even a URL key). Returns
    ``{manifest, records_before, objects_before, moved_aside}``."""
    report = progress or _NoProgress()
    manifest = verify_archive(archive_path, report)
    if manifest["data_backend"] != settings.data_backend:
        raise BackupError(
            f"the backup is of a {manifest['data_backend']} data backend, the installation "
            f"uses {settings.data_backend}"
        )
    if storage is None:
        if settings.storage != "localfs":
            raise BackupError(f"restoring into storage {settings.storage!r} needs the storage")
        existing_objects = localfs_keys(localfs_root(settings))
    else:
        existing_objects = object_keys(storage, settings)
    if settings.data_backend == "sqlite":
        records = _sqlite_rows(sqlite_path(settings))
    else:
        records = _postgres_rows(supabase_dsn(settings))
    if (records or existing_objects) and not force:
        raise BackupError(
            f"the target is not empty ({records} records, {len(existing_objects)} objects): "
            "restore into an empty installation, or pass --force to replace it"
        )
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    with _open_archive(archive_path) as archive:
        if settings.data_backend == "sqlite" and (storage is None or _is_localfs(storage)):
            moved = _restore_embedded(settings, archive, manifest, stamp, report)
        elif storage is None:
            raise BackupError("restoring into this installation needs its object storage")
        else:
            moved = _restore_shared(
                settings, storage, archive, manifest, set(existing_objects), stamp, report
            )
    return {
        "manifest": manifest,
        "records_before": records,
        "objects_before": len(existing_objects),
        "moved_aside": [str(path) for path in moved],
    }


def _is_localfs(storage: ObjectStorage) -> bool:
    return getattr(storage, "inner", storage).name == "localfs"


class _Swap:
    """Renames staged files into place, moving what was there aside; undoes it all on failure."""

    def __init__(self, stamp: str) -> None:
        self.stamp = stamp
        self.done: list[tuple[Path, Path | None]] = []  # (target, moved-aside copy)

    def put(self, staged: Path, target: Path) -> None:
        aside = None
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if target.exists() or target.is_symlink():
            aside = target.with_name(f"{target.name}.pre-restore-{self.stamp}")
            os.replace(target, aside)
        self.done.append((target, aside))
        os.replace(staged, target)

    def aside(self, target: Path) -> None:
        """Move ``target`` aside with nothing in its place."""
        aside = target.with_name(f"{target.name}.pre-restore-{self.stamp}")
        os.replace(target, aside)
        self.done.append((target, aside))

    def undo(self) -> None:
        for target, aside in reversed(self.done):
            with contextlib.suppress(OSError):
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
                if aside is not None:
                    os.replace(aside, target)

    def moved(self) -> list[Path]:
        return [aside for _, aside in self.done if aside is not None]


def _restore_keys(
    archive: tarfile.TarFile,
    manifest: dict[str, Any],
    settings: Settings,
    staging: Path,
    swap: _Swap,
) -> None:
    sums = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    targets = key_paths(settings)
    for kind, member in (manifest.get("keys") or {}).items():
        target = targets.get(kind)
        if target is None:
            continue  # a pinned url_key: the operator keeps it
        staged = staging / f"key-{kind}"
        _extract(archive, member, staged, sums[member])
        if target.is_file() and target.read_bytes() == staged.read_bytes():
            continue
        swap.put(staged, target)


def _restore_embedded(
    settings: Settings,
    archive: tarfile.TarFile,
    manifest: dict[str, Any],
    stamp: str,
    report: Progress,
) -> list[Path]:
    from botmox_core.backends.localfs import LocalFsStorage

    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=".restore-", dir=settings.data_dir))
    swap = _Swap(stamp)
    try:
        sums = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
        report.step("database", None)
        _extract(archive, SQLITE_MEMBER, staging / "db", sums[SQLITE_MEMBER])
        objects = LocalFsStorage(staging / "objects", base_url="http://restore", url_key=b"r" * 32)
        report.step("objects", len(manifest["objects"]))
        _put_objects(archive, manifest, objects)
        database = sqlite_path(settings)
        swap.put(staging / "db", database)
        for suffix in ("-wal", "-shm"):  # a previous database's journal must not survive
            journal = database.with_name(database.name + suffix)
            if journal.exists():
                swap.aside(journal)
        swap.put(staging / "objects", localfs_root(settings))
        _restore_keys(archive, manifest, settings, staging, swap)
    except BaseException:
        swap.undo()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return swap.moved()


def _put_objects(
    archive: tarfile.TarFile,
    manifest: dict[str, Any],
    storage: ObjectStorage,
    put: Callable[[str], None] | None = None,
) -> None:
    for entry in manifest["objects"]:
        with _member(archive, entry["path"]) as stream:
            info = storage.put(
                entry["key"], stream, size=entry["size"], content_type=entry.get("content_type")
            )
        if put is not None:
            put(entry["key"])
        if info.sha256 is not None and info.sha256 != entry["sha256"]:
            raise StorageError(f"object {entry['key']!r} was stored with another sha256")


def _restore_shared(
    settings: Settings,
    storage: ObjectStorage,
    archive: tarfile.TarFile,
    manifest: dict[str, Any],
    existing: set[str],
    stamp: str,
    report: Progress,
) -> list[Path]:
    if settings.data_backend != "supabase" or PGDUMP_MEMBER not in {
        entry["path"] for entry in manifest["files"]
    }:
        raise BackupError("this archive cannot be restored into this installation")
    sums = {entry["path"]: entry["sha256"] for entry in manifest["files"]}
    staging = Path(tempfile.mkdtemp(prefix="botmox-restore-"))
    created: list[str] = []
    swap = _Swap(stamp)
    try:
        dump = staging / "botmox.pgdump"
        _extract(archive, PGDUMP_MEMBER, dump, sums[PGDUMP_MEMBER])
        script = staging / "botmox.sql"
        _run(
            [postgres_tool("pg_restore"), "--no-owner", f"--file={script}", str(dump)],
            "pg_restore (reading the dump)",
        )
        report.step("objects", len(manifest["objects"]))
        _put_objects(
            archive,
            manifest,
            storage,
            put=lambda key: created.append(key) if key not in existing else None,
        )
        report.step("database", None)
        _run(
            [
                postgres_tool("psql"),
                "--no-psqlrc",
                "--quiet",
                "--single-transaction",
                "--set=ON_ERROR_STOP=1",
                f"--dbname={supabase_dsn(settings)}",
                "--command=drop schema if exists botmox cascade",
                f"--file={script}",
            ],
            "psql (restoring the database)",
        )
        _restore_keys(archive, manifest, settings, staging, swap)
    except BaseException:
        for key in created:
            with contextlib.suppress(Exception):
                storage.delete(key)
        swap.undo()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return swap.moved()
