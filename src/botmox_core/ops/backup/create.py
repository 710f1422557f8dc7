"""Creating a backup: the database (SQLite online backup or ``pg_dump``), every object and the
key ring files in one archive with a manifest."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from botmox_core.config import Settings
from botmox_core.ops.backup.archive import (
    FORMAT,
    MANIFEST,
    PGDUMP_MEMBER,
    SQLITE_MEMBER,
    VERSION,
    BackupError,
    Progress,
    _copy_stream,
    _NoProgress,
    _now,
    _sha256_file,
)
from botmox_core.ops.backup.installation import (
    _run,
    key_paths,
    object_keys,
    postgres_tool,
    sqlite_path,
    supabase_dsn,
)
from botmox_core.ports import ObjectStorage

__all__ = ["create_backup"]


def _backup_sqlite(settings: Settings, target: Path) -> None:
    source_path = sqlite_path(settings)
    if not source_path.is_file():
        raise BackupError(f"no botmox database at {source_path}")
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)  # consistent even while the server writes
        finally:
            copy.close()
    finally:
        source.close()


def _backup_postgres(settings: Settings, target: Path) -> None:
    _run(
        [
            postgres_tool("pg_dump"),
            "--format=custom",
            "--schema=botmox",
            "--no-owner",
            f"--file={target}",
            f"--dbname={supabase_dsn(settings)}",
        ],
        "pg_dump",
    )


def create_backup(
    settings: Settings,
    storage: ObjectStorage,
    output: Path,
    *,
    include_keys: bool = True,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write a backup archive of the installation to ``output`` (refused when it exists);
    returns the manifest."""
    report = progress or _NoProgress()
    if output.exists():
        raise BackupError(f"{output} exists: choose a new file name")
    if settings.data_backend not in ("sqlite", "supabase"):
        raise BackupError(f"backups of the {settings.data_backend} data backend are not supported")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        files: list[dict[str, Any]] = []
        (staging / "database").mkdir()
        report.step("database", None)
        if settings.data_backend == "sqlite":
            member = SQLITE_MEMBER
            _backup_sqlite(settings, staging / member)
        else:
            member = PGDUMP_MEMBER
            _backup_postgres(settings, staging / member)
        files.append({"path": member})
        objects: list[dict[str, Any]] = []
        keys = object_keys(storage, settings)
        (staging / "objects").mkdir()
        report.step("objects", len(keys))
        for index, key in enumerate(keys, 1):
            info = storage.head(key)
            if info is None:  # deleted since the listing
                continue
            path = f"objects/{index:06d}"
            with storage.open(key) as stream:
                digest, size = _copy_stream(stream, staging / path, _NoProgress())
            objects.append(
                {
                    "key": key,
                    "path": path,
                    "sha256": digest,
                    "size": size,
                    "content_type": info.content_type,
                }
            )
            files.append({"path": path})
            report.advance(1)
        key_members: dict[str, str] = {}
        if include_keys:
            (staging / "keys").mkdir()
            for kind, key_path in key_paths(settings).items():
                if key_path.is_file():
                    shutil.copyfile(key_path, staging / "keys" / kind)
                    key_members[kind] = f"keys/{kind}"
                    files.append({"path": f"keys/{kind}"})
        total = sum((staging / entry["path"]).stat().st_size for entry in files)
        report.step("checksums", total)
        for entry in files:
            entry["size"] = (staging / entry["path"]).stat().st_size
            entry["sha256"] = _sha256_file(staging / entry["path"], report)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created_at": _now(),
            "botmox_version": _version(),
            "data_backend": settings.data_backend,
            "storage": storage.name,
            "files": files,
            "objects": objects,
            "keys": key_members,
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        mode = "w:gz" if output.name.endswith((".gz", ".tgz")) else "w"
        partial = output.with_name(f".{output.name}.partial")
        report.step("archive", total)
        with tarfile.open(partial, mode) as archive:  # type: ignore[call-overload]
            archive.add(staging / MANIFEST, arcname=MANIFEST)
            for entry in files:
                archive.add(staging / entry["path"], arcname=entry["path"])
                report.advance(entry["size"])
        os.chmod(partial, 0o600)
        os.replace(partial, output)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            output.with_name(f".{output.name}.partial").unlink()


def _version() -> str:
    try:
        return metadata.version("botmox")
    except metadata.PackageNotFoundError:
        return "unknown"
