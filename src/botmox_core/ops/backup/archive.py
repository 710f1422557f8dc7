"""The backup archive: its format constants, errors and progress, hashing, and reading and
verifying an archive against its manifest."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from botmox_core.errors import BotmoxError

__all__ = [
    "BackupError",
    "CHUNK",
    "FORMAT",
    "MANIFEST",
    "PGDUMP_MEMBER",
    "Progress",
    "SQLITE_MEMBER",
    "VERSION",
    "read_manifest",
    "verify_archive",
]


FORMAT = "botmox-backup"


VERSION = 1


MANIFEST = "manifest.json"


CHUNK = 1024 * 1024


SQLITE_MEMBER = "database/botmox.sqlite3"


PGDUMP_MEMBER = "database/botmox.pgdump"


class BackupError(BotmoxError):
    """A backup or restore that cannot be done (bad archive, non-empty target, tool failure)."""

    status_code = 400
    default_code = "BACKUP_ERROR"


class Progress(Protocol):
    """What long steps report to: ``step(description, total)`` starts one, ``advance(n)``."""

    def step(self, description: str, total: int | None) -> None: ...

    def advance(self, amount: int) -> None: ...


class _NoProgress:
    def step(self, description: str, total: int | None) -> None:
        return None

    def advance(self, amount: int) -> None:
        return None


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _sha256_file(path: Path, progress: Progress) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            progress.advance(len(chunk))
    return digest.hexdigest()


def _copy_stream(source: BinaryIO, target: Path, progress: Progress) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            handle.write(chunk)
            size += len(chunk)
            progress.advance(len(chunk))
    return digest.hexdigest(), size


def _open_archive(path: Path) -> tarfile.TarFile:
    try:
        return tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"{path} is not a backup archive: {exc}") from None


def read_manifest(archive: tarfile.TarFile) -> dict[str, Any]:
    try:
        member = archive.getmember(MANIFEST)
        handle = archive.extractfile(member)
        if handle is None:
            raise KeyError(MANIFEST)
        manifest = json.loads(handle.read(16 * 1024 * 1024))
    except (KeyError, ValueError, tarfile.TarError, OSError) as exc:
        raise BackupError(f"the archive has no readable {MANIFEST}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("not a botmox backup (manifest format)")
    if manifest.get("version") != VERSION:
        raise BackupError(f"backup format version {manifest.get('version')!r} is not supported")
    files = manifest.get("files")
    if not isinstance(files, list) or not all(
        isinstance(entry, dict)
        and isinstance(entry.get("path"), str)
        and isinstance(entry.get("sha256"), str)
        and isinstance(entry.get("size"), int)
        for entry in files
    ):
        raise BackupError("the manifest's file list is malformed")
    listed = {entry["path"] for entry in files}
    for entry in files:
        parts = Path(entry["path"]).parts
        if (
            entry["path"].startswith("/")
            or ".." in parts
            or parts[0]
            not in (
                "database",
                "objects",
                "keys",
            )
        ):
            raise BackupError(f"the manifest names an unsafe path {entry['path']!r}")
    for entry in manifest.get("objects", []):
        if entry.get("path") not in listed or not isinstance(entry.get("key"), str):
            raise BackupError("the manifest's object list is malformed")
    for path in (manifest.get("keys") or {}).values():
        if path not in listed:
            raise BackupError("the manifest's key list is malformed")
    return manifest


def verify_archive(path: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Check every member against the manifest (sha256 and size; nothing missing, nothing
    extra, regular files only); return the manifest. :class:`BackupError` otherwise."""
    report = progress or _NoProgress()
    with _open_archive(path) as archive:
        manifest = read_manifest(archive)
        expected = {entry["path"]: entry for entry in manifest["files"]}
        report.step("verify", sum(entry["size"] for entry in manifest["files"]))
        seen: set[str] = set()
        try:
            for member in archive:
                if member.name == MANIFEST:
                    continue
                entry = expected.get(member.name)
                if entry is None or not member.isfile() or member.name in seen:
                    raise BackupError(f"unexpected member {member.name!r} in the archive")
                seen.add(member.name)
                handle = archive.extractfile(member)
                assert handle is not None
                digest = hashlib.sha256()
                size = 0
                while chunk := handle.read(CHUNK):
                    digest.update(chunk)
                    size += len(chunk)
                    report.advance(len(chunk))
                if size != entry["size"] or digest.hexdigest() != entry["sha256"]:
                    raise BackupError(f"{member.name} does not match its sha256 in the manifest")
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise BackupError(f"the archive is damaged: {exc}") from None
        missing = sorted(set(expected) - seen)
        if missing:
            raise BackupError(f"the archive lacks {', '.join(missing[:5])}")
    return manifest


@contextlib.contextmanager
def _member(archive: tarfile.TarFile, name: str) -> Iterator[BinaryIO]:
    handle = archive.extractfile(name)
    if handle is None:
        raise BackupError(f"{name} is not a file")
    with handle:
        yield cast(BinaryIO, handle)


def _extract(archive: tarfile.TarFile, name: str, target: Path, sha256: str) -> None:
    """Copy one member to ``target`` and check it again (the archive may have changed since
    it was verified)."""
    with _member(archive, name) as source:
        digest, _ = _copy_stream(source, target, _NoProgress())
    if digest != sha256:
        raise BackupError(f"{name} changed since it was verified")
