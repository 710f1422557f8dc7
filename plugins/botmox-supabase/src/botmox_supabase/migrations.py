"""Applying the shipped Supabase CLI migrations (``supabase/migrations/*.sql``) to a database.

:func:`apply_migrations` is what ``botmox db migrate`` runs. Each migration runs in its own
transaction that first takes a transaction-level advisory lock, then re-reads which versions are
applied: two migrators started at once serialise, and the second finds nothing left to do. The
lock is transaction-scoped, so this also works through Supavisor's transaction mode. Applied
versions are recorded in ``botmox.schema_migrations`` with the sha256 of the file; a shipped file
that differs from the one applied is refused rather than silently re-run.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from importlib import resources
from pathlib import Path

import attrs
import psycopg

from botmox_core.errors import ConfigurationError, DatabaseError, ServiceUnavailableError
from botmox_supabase.error_mapping import map_database_error, map_database_errors

__all__ = [
    "MIGRATION_LOCK_KEY",
    "Migration",
    "MigrationReport",
    "apply_migrations",
    "applied_migrations",
    "shipped_migrations",
]

# pg_advisory_xact_lock key: the first 8 bytes of sha256("botmox.schema_migrations").
MIGRATION_LOCK_KEY = int.from_bytes(
    hashlib.sha256(b"botmox.schema_migrations").digest()[:8], "big", signed=True
)

_FILE_NAME = re.compile(r"^(?P<version>\d{14})_(?P<name>[a-z0-9_]+)\.sql$")

_BOOKKEEPING_SQL = """
create schema if not exists botmox;
create table if not exists botmox.schema_migrations (
  version     text        not null primary key,
  name        text        not null,
  checksum    text        not null,
  applied_at  timestamptz not null default now()
);
alter table botmox.schema_migrations enable row level security;
alter table botmox.schema_migrations force row level security;
"""


@attrs.frozen
class Migration:
    """One shipped migration file.

    Attributes:
        version: the 14-digit timestamp prefix (Supabase CLI layout).
        name: the rest of the file name, without ``.sql``.
        sql: the file's text.
    """

    version: str
    name: str
    sql: str = attrs.field(repr=False)

    @property
    def checksum(self) -> str:
        """Hex sha256 of the file's UTF-8 text."""
        return hashlib.sha256(self.sql.encode("utf-8")).hexdigest()


@attrs.frozen
class MigrationReport:
    """Outcome of :func:`apply_migrations`.

    Attributes:
        applied: versions applied by this run, in order.
        already_applied: versions found applied before this run.
        latest: the newest shipped version (the schema the database is now at).
    """

    applied: tuple[str, ...]
    already_applied: tuple[str, ...]
    latest: str


def migrations_dir() -> Path:
    """The folder holding the shipped ``<timestamp>_<name>.sql`` files (for ``supabase db push``,
    copy or link it as ``supabase/migrations``)."""
    return Path(str(resources.files("botmox_supabase") / "supabase" / "migrations"))


def shipped_migrations(directory: Path | None = None) -> list[Migration]:
    """The migrations in ``directory`` (default: the shipped ones), oldest first."""
    folder = directory or migrations_dir()
    found: list[Migration] = []
    for path in sorted(folder.glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match is None:
            raise ConfigurationError(
                f"migration file name {path.name!r} is not <14 digits>_<name>.sql"
            )
        found.append(Migration(match["version"], match["name"], path.read_text(encoding="utf-8")))
    if not found:
        raise ConfigurationError(f"no migrations found in {folder}")
    return found


def applied_migrations(conn: psycopg.Connection) -> dict[str, str]:
    """Applied versions and their checksums (empty when the bookkeeping table does not exist)."""
    exists = conn.execute("select to_regclass('botmox.schema_migrations') is not null").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("select version, checksum from botmox.schema_migrations").fetchall()
    return {str(version): str(checksum) for version, checksum in rows}


def _check_unchanged(migrations: Sequence[Migration], applied: dict[str, str]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded is not None and recorded != migration.checksum:
            raise ConfigurationError(
                f"migration {migration.version}_{migration.name} differs from the version applied "
                f"to this database (checksum {recorded[:12]}..., shipped "
                f"{migration.checksum[:12]}...); ship schema changes as a new migration"
            )


def apply_migrations(
    database_url: str,
    migrations: Sequence[Migration] | None = None,
    *,
    connect_timeout: float = 10,
    now: datetime | None = None,
) -> MigrationReport:
    """Bring the database at ``database_url`` to the latest shipped schema.

    Idempotent: versions already recorded are skipped. Raises :class:`ConfigurationError` when a
    recorded migration's checksum differs from the shipped file, and the mapped database errors
    (:class:`~botmox_core.errors.ServiceUnavailableError`, :class:`DatabaseError`) when the
    database cannot be reached or a migration fails (that migration is rolled back).
    """
    todo = list(migrations) if migrations is not None else shipped_migrations()
    applied_now: list[str] = []
    with (
        map_database_errors("migrate"),
        psycopg.connect(
            database_url, connect_timeout=max(1, int(connect_timeout)), prepare_threshold=None
        ) as conn,
    ):
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
            conn.execute(_BOOKKEEPING_SQL)
            before = applied_migrations(conn)
        _check_unchanged(todo, before)
        for migration in todo:
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
                current = applied_migrations(conn)
                _check_unchanged([migration], current)
                if migration.version in current:
                    continue
                try:
                    conn.execute(migration.sql.encode("utf-8"))
                except psycopg.Error as exc:
                    mapped = map_database_error(exc, "migrate")
                    if isinstance(mapped, ServiceUnavailableError):
                        raise mapped from exc
                    raise DatabaseError(
                        f"migration {migration.version}_{migration.name} failed "
                        f"({exc.sqlstate or type(exc).__name__}): "
                        f"{exc.diag.message_primary or 'see the database log'}"
                    ) from exc
                conn.execute(
                    "insert into botmox.schema_migrations (version, name, checksum, applied_at)"
                    " values (%s, %s, %s, coalesce(%s, now()))",
                    (migration.version, migration.name, migration.checksum, now),
                )
                applied_now.append(migration.version)
    return MigrationReport(
        applied=tuple(applied_now),
        already_applied=tuple(v for v in sorted(before) if v in {m.version for m in todo}),
        latest=todo[-1].version,
    )
