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

from botmox_core.ops.backup.archive import CHUNK as CHUNK
from botmox_core.ops.backup.archive import (
    FORMAT,
    MANIFEST,
    VERSION,
    BackupError,
    Progress,
    read_manifest,
    verify_archive,
)
from botmox_core.ops.backup.archive import PGDUMP_MEMBER as PGDUMP_MEMBER
from botmox_core.ops.backup.archive import SQLITE_MEMBER as SQLITE_MEMBER
from botmox_core.ops.backup.create import create_backup
from botmox_core.ops.backup.installation import key_paths as key_paths
from botmox_core.ops.backup.installation import localfs_keys as localfs_keys
from botmox_core.ops.backup.installation import localfs_root as localfs_root
from botmox_core.ops.backup.installation import object_keys as object_keys
from botmox_core.ops.backup.installation import postgres_tool as postgres_tool
from botmox_core.ops.backup.installation import sqlite_path as sqlite_path
from botmox_core.ops.backup.installation import supabase_dsn as supabase_dsn
from botmox_core.ops.backup.restore import _restore_keys as _restore_keys
from botmox_core.ops.backup.restore import restore_backup
from botmox_core.ops.backup.snapshot import archive_bytes as archive_bytes
from botmox_core.ops.backup.snapshot import snapshot as snapshot

__all__ = [
    "BackupError",
    "FORMAT",
    "MANIFEST",
    "Progress",
    "VERSION",
    "create_backup",
    "read_manifest",
    "restore_backup",
    "verify_archive",
]
