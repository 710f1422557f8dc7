"""The ``sqlite`` schema: migrations, and files botmox must refuse without touching them."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from botmox_core.backends.sqlite import (
    SqliteBackend,
    create_sqlite_backend,
    schema,
)
from botmox_core.backends.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION, migrate
from botmox_core.config import load_settings
from botmox_core.errors import (
    DatabaseError,
    ServiceUnavailableError,
)
from botmox_core.models import AuditEvent, AuditResult, DownloadAuditEntry
from botmox_core.testing.repository import T0, make_lease, make_release


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "botmox.sqlite3"


@pytest.fixture
def backend(db_path: Path) -> Iterator[SqliteBackend]:
    db_path.parent.mkdir(parents=True, exist_ok=True)
    backend = SqliteBackend(db_path)
    yield backend
    backend.close()


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- schema and migrations ----------------------------------------------------------------------


def test_empty_file_is_migrated_to_the_current_schema(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.touch()
    SqliteBackend(db_path).close()
    with closing(_raw(db_path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert raw.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_schema")}
    assert {
        "api_tokens",
        "vms",
        "licences",
        "entitlements",
        "leases",
        "releases",
        "assignments",
        "download_audit",
    } <= tables


def test_reopening_keeps_data_and_does_not_migrate_again(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    first = SqliteBackend(db_path)
    with first.unit_of_work() as uow:
        stored = uow.releases.add(make_release("t", version="1.0"))
        uow.commit()
    first.close()
    with closing(_raw(db_path)) as raw:
        assert migrate(raw) == SCHEMA_VERSION  # nothing left to do
    second = SqliteBackend(db_path)
    try:
        with second.unit_of_work() as uow:
            assert uow.releases.get("t", stored.id) == stored
    finally:
        second.close()


def test_forward_migration_runs_only_the_missing_steps(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path.parent.mkdir(parents=True)
    backend = SqliteBackend(db_path)
    with backend.unit_of_work() as uow:
        stored = uow.releases.add(make_release("t", version="1.0"))
        uow.commit()
    backend.close()
    step = (
        "CREATE TABLE migration_probe (id INTEGER PRIMARY KEY) STRICT",
        "INSERT INTO migration_probe (id) SELECT id FROM releases",
    )
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, step))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with closing(_raw(db_path)) as raw:
        assert migrate(raw) == SCHEMA_VERSION
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        assert raw.execute("SELECT id FROM migration_probe").fetchall() == [(stored.id,)]


def test_failed_migration_leaves_the_file_at_its_version(
    db_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db_path.parent.mkdir(parents=True)
    SqliteBackend(db_path).close()
    broken = ("CREATE TABLE half_done (id INTEGER) STRICT", "THIS IS NOT SQL")
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(DatabaseError):
        SqliteBackend(db_path)
    with closing(_raw(db_path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        names = {row[0] for row in raw.execute("SELECT name FROM sqlite_schema")}
    assert "half_done" not in names


def test_newer_schema_is_refused(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    SqliteBackend(db_path).close()
    with closing(_raw(db_path)) as raw:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(DatabaseError, match="newer than this botmox"):
        SqliteBackend(db_path)


def test_foreign_sqlite_file_is_refused_and_left_untouched(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    with closing(_raw(db_path)) as raw:
        raw.execute("CREATE TABLE someone_elses (x)")
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError, match="not created by botmox"):
        SqliteBackend(db_path)
    assert db_path.read_bytes() == before


def test_download_audit_is_append_only_in_the_file(backend: SqliteBackend, db_path: Path) -> None:
    with backend.unit_of_work() as uow:
        uow.audit.append(DownloadAuditEntry("t", AuditEvent.RESOLVE_DENIED, AuditResult.DENIED, T0))
        uow.commit()
    with closing(_raw(db_path)) as raw:
        for statement in (
            "UPDATE download_audit SET tenant_id = 'x'",
            "DELETE FROM download_audit",
        ):
            with pytest.raises(sqlite3.IntegrityError, match="append-only"):
                raw.execute(statement)


# -- bad paths and files --------------------------------------------------------------------


def test_corrupted_file_is_a_clear_database_error_and_is_not_overwritten(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    db_path.write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    before = db_path.read_bytes()
    with pytest.raises(DatabaseError) as caught:
        SqliteBackend(db_path)
    assert caught.value.code == "DATABASE_ERROR"
    assert str(db_path) in caught.value.message
    assert "not a database" in caught.value.message
    assert db_path.read_bytes() == before


def test_directory_as_path_is_service_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ServiceUnavailableError) as caught:
        SqliteBackend(tmp_path)
    assert caught.value.code == "SERVICE_UNAVAILABLE"
    assert str(tmp_path) in caught.value.message


def test_factory_reports_an_uncreatable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    settings = load_settings(environ={"BOTMOX_SQLITE_PATH": str(blocker / "sub" / "db.sqlite3")})
    with pytest.raises(ServiceUnavailableError, match="cannot create the directory"):
        create_sqlite_backend(settings)


@pytest.mark.parametrize(
    ("column", "value"),
    [("expires_at", "next tuesday"), ("status", "zombie"), ("issued_at", "")],
)
def test_a_malformed_stored_row_is_a_database_error(
    backend: SqliteBackend, db_path: Path, column: str, value: str
) -> None:
    lease = make_lease("t")
    with backend.unit_of_work() as uow:
        uow.leases.add(lease)
        uow.commit()
    with closing(_raw(db_path)) as raw:
        raw.execute(f"UPDATE leases SET {column} = ?", (value,))
    with (
        pytest.raises(DatabaseError, match="stored lease record is malformed"),
        backend.unit_of_work() as uow,
    ):
        uow.leases.get("t", lease.id)
