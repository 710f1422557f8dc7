"""Backup and restore of an installation: the records, the objects and the signing keys, in one
archive with a manifest of sha256s.

The archive is a tar (gzip-compressed when its name ends in ``.gz`` or ``.tgz``)::

    manifest.json                 {"format": "botmox-backup", "version": 1, "created_at",
                                   "botmox_version", "data_backend", "storage",
                                   "files": [{"path", "sha256", "size"}],
                                   "objects": [{"key", "path", "sha256", "size", "content_type"}],
                                   "keys": {"lease": path?, "url": path?}}
    database/botmox.sqlite3       the embedded database (SQLite's online backup API), or
    database/botmox.pgdump        ``pg_dump --format=custom --schema=botmox`` (Supabase)
    objects/000001 ...            every object of the storage, read through the storage port
    keys/lease, keys/url          the lease and download URL key ring files

``files`` lists every member but the manifest; ``objects`` names the key each object file
restores to. Restore reads and checks every member's sha256 and size against the manifest before
it touches the target, restores only into an empty target (no records, no objects) unless told
to overwrite, and never leaves a partial restore behind:

- embedded (``sqlite`` + ``localfs``): everything is built in a staging directory inside the data
  directory and renamed into place; what was there is moved aside (``*.pre-restore-<stamp>``),
  and moved back if a step fails;
- Supabase: the dump is replayed by ``psql --single-transaction`` after ``drop schema if exists
  botmox cascade`` in the same transaction (a failure changes nothing); objects are put through
  the storage port first and deleted again if the database step fails.

Key ring files are restored beside the configured ones (what was there moved aside), so leases and
URLs signed before the backup keep verifying.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, BinaryIO, Protocol, cast

from botmox_core.backends.signed_urls import url_key_ring_path
from botmox_core.backends.sqlite import DEFAULT_FILENAME
from botmox_core.config import Settings
from botmox_core.errors import BotmoxError, ConfigurationError, StorageError
from botmox_core.ports import ObjectStorage

__all__ = [
    "FORMAT",
    "MANIFEST",
    "VERSION",
    "BackupError",
    "Progress",
    "create_backup",
    "read_manifest",
    "restore_backup",
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


# -- where an installation keeps things ------------------------------------------------------


def sqlite_path(settings: Settings) -> Path:
    configured = settings.plugin_options("sqlite").get("path", "").strip()
    if configured == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(configured).expanduser() if configured else settings.data_dir / DEFAULT_FILENAME


def localfs_root(settings: Settings) -> Path:
    root = settings.plugin_options("localfs").get("root")
    return Path(root) if root else settings.data_dir / "objects"


def key_paths(settings: Settings) -> dict[str, Path]:
    """The key ring files to back up and restore (a pinned ``url_key`` has no file)."""
    paths = {"lease": settings.lease_signing_key_path}
    options = settings.plugin_options("localfs")
    if not options.get("url_key", "").strip():
        paths["url"] = url_key_ring_path(settings.data_dir, options.get("url_key_file"))
    return paths


def supabase_dsn(settings: Settings) -> str:
    dsn = settings.plugin_options("supabase").get("database_url", "").strip()
    if not dsn:
        raise ConfigurationError("the supabase data backend needs database_url for backups")
    return dsn


def postgres_tool(name: str) -> str:
    """``pg_dump``/``pg_restore``/``psql``: from ``BOTMOX_PG_BINDIR``, PATH, or ``pg_config
    --bindir``."""
    bindir = os.environ.get("BOTMOX_PG_BINDIR")
    if bindir and (Path(bindir) / name).is_file():
        return str(Path(bindir) / name)
    found = shutil.which(name)
    if found:
        return found
    pg_config = shutil.which("pg_config")
    if pg_config:
        done = subprocess.run(  # noqa: S603 - pg_config from PATH, fixed arguments
            [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=False
        )
        candidate = Path(done.stdout.strip()) / name
        if done.returncode == 0 and candidate.is_file():
            return str(candidate)
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    raise ConfigurationError(
        f"{name} not found: install the PostgreSQL client tools (or set BOTMOX_PG_BINDIR)"
    )


def _run(argv: list[str], what: str, timeout: float = 3600) -> None:
    done = subprocess.run(  # noqa: S603 - PostgreSQL tools with our own arguments
        argv, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise BackupError(f"{what} failed: {done.stderr.strip()[-2000:]}")


# -- listing objects -------------------------------------------------------------------------


def localfs_keys(root: Path) -> list[str]:
    """The keys of the objects in a ``localfs`` directory (from its metadata files), sorted."""
    keys = []
    for meta in root.glob("*/*.meta.json"):
        with contextlib.suppress(OSError, ValueError):
            key = json.loads(meta.read_text()).get("key")
            if isinstance(key, str):
                keys.append(key)
    return sorted(keys)


def object_keys(storage: ObjectStorage, settings: Settings) -> list[str]:
    """Every object key of the storage, sorted. ``localfs``: its metadata files; an S3-like
    storage (a boto3 ``client`` and a ``bucket``): the bucket listing."""
    inner = getattr(storage, "inner", storage)  # ServerSignedStorage wraps plugins
    if inner.name == "localfs":
        return localfs_keys(Path(getattr(inner, "root", localfs_root(settings))))
    client = getattr(inner, "client", None)
    bucket = getattr(inner, "bucket", None)
    if client is not None and isinstance(bucket, str):
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys.extend(item["Key"] for item in page.get("Contents", []))
        return sorted(keys)
    raise BackupError(f"cannot list the objects of storage {storage.name!r} for a backup")


# -- create ----------------------------------------------------------------------------------


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


# -- read and verify -------------------------------------------------------------------------


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


# -- emptiness -------------------------------------------------------------------------------


def _sqlite_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'"
                " and name not in ('schema_version', 'schema_migrations')"
            )
        ]
        return sum(
            int(connection.execute(_select(f"select count(*) from {_quoted(table)}")).fetchone()[0])  # noqa: S608 - catalog names, quoted
            for table in tables
        )
    finally:
        connection.close()


def _postgres_rows(dsn: str) -> int:
    import psycopg  # the supabase plugin's dependency, present with that backend

    with psycopg.connect(dsn, autocommit=True) as connection:
        tables = connection.execute(
            "select tablename from pg_tables where schemaname = 'botmox'"
            " and tablename <> 'schema_migrations'"
        ).fetchall()
        total = 0
        for (table,) in tables:
            row = connection.execute(
                _select(f"select count(*) from botmox.{_quoted(table)}")  # noqa: S608 - catalog names, quoted
            ).fetchone()
            total += int(row[0]) if row else 0
        return total


# -- restore ---------------------------------------------------------------------------------


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


def snapshot(settings: Settings, storage: ObjectStorage) -> dict[str, Any]:
    """Every record (every row of every botmox table, sorted) and every object (key → sha256,
    size) of the installation: two snapshots compare equal when the data is the same. For
    restore drills."""
    tables: dict[str, list[list[Any]]] = {}
    if settings.data_backend == "sqlite":
        connection = sqlite3.connect(f"file:{sqlite_path(settings)}?mode=ro", uri=True)
        try:
            names = [
                row[0]
                for row in connection.execute(
                    "select name from sqlite_master where type = 'table'"
                    " and name not like 'sqlite_%' order by name"
                )
            ]
            for name in names:
                rows = connection.execute(_select(f"select * from {_quoted(name)}")).fetchall()  # noqa: S608 - catalog names, quoted
                tables[name] = sorted(([_plain(v) for v in row] for row in rows), key=repr)
        finally:
            connection.close()
    else:
        import psycopg

        with psycopg.connect(supabase_dsn(settings), autocommit=True) as pg:
            names = [
                row[0]
                for row in pg.execute(
                    "select tablename from pg_tables where schemaname = 'botmox' order by 1"
                ).fetchall()
            ]
            for name in names:
                rows = pg.execute(_select(f"select * from botmox.{_quoted(name)}")).fetchall()  # noqa: S608 - catalog names, quoted
                tables[name] = sorted(([_plain(v) for v in row] for row in rows), key=repr)
    objects = {}
    for key in object_keys(storage, settings):
        digest = hashlib.sha256()
        size = 0
        with storage.open(key) as stream:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        objects[key] = {"sha256": digest.hexdigest(), "size": size}
    return {"tables": tables, "objects": objects}


def _select(sql: str) -> str:
    """A query naming a table taken from the catalog (quoted with :func:`_quoted`)."""
    return sql


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value if isinstance(value, str | int | float | bool | type(None)) else str(value)


def archive_bytes(manifest: dict[str, Any]) -> int:
    return sum(entry["size"] for entry in manifest["files"])
