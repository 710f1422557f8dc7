"""Where an installation keeps things (database, objects, key rings, PostgreSQL tools), listing
its objects, and whether a target is empty."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from botmox_core.backends.signed_urls import url_key_ring_path
from botmox_core.backends.sqlite import DEFAULT_FILENAME
from botmox_core.config import Settings
from botmox_core.errors import ConfigurationError
from botmox_core.ops.backup.archive import BackupError
from botmox_core.ports import ObjectStorage

__all__ = [
    "key_paths",
    "localfs_keys",
    "localfs_root",
    "object_keys",
    "postgres_tool",
    "sqlite_path",
    "supabase_dsn",
]


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
