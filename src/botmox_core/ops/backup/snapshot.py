"""A comparable snapshot of an installation (every table's rows and every object's sha256), for
checking a restore."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

from botmox_core.config import Settings
from botmox_core.ops.backup.archive import CHUNK
from botmox_core.ops.backup.installation import (
    _plain,
    _quoted,
    _select,
    object_keys,
    sqlite_path,
    supabase_dsn,
)
from botmox_core.ports import ObjectStorage

__all__ = ["archive_bytes", "snapshot"]


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


def archive_bytes(manifest: dict[str, Any]) -> int:
    return sum(entry["size"] for entry in manifest["files"])
