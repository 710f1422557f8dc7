"""The ``sqlite`` backend: the repository conformance suite on a file and in memory, plus what
only SQLite has (WAL file shared by processes, migrations, error mapping)."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest

from botmox_core.backends.sqlite import (
    SqliteBackend,
    SqliteUnitOfWork,
    create_sqlite_backend,
    schema,
)
from botmox_core.backends.sqlite.schema import APPLICATION_ID, SCHEMA_VERSION, migrate
from botmox_core.config import load_settings
from botmox_core.errors import (
    BadRequestError,
    BotmoxError,
    ConfigurationError,
    DatabaseError,
    DuplicateError,
    ServiceUnavailableError,
)
from botmox_core.models import (
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    Lease,
    LeaseStatus,
    Release,
    ReleaseStatus,
)
from botmox_core.plugin import load_registry
from botmox_core.testing import RepositoryConformance


class TestSqliteFileConformance(RepositoryConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(tmp_path / "botmox.sqlite3")
        yield backend
        backend.close()

    @pytest.fixture
    def second_backend(self, backend: SqliteBackend) -> Iterator[SqliteBackend]:
        second = SqliteBackend(backend.path)
        yield second
        second.close()


class TestSqliteMemoryConformance(RepositoryConformance):
    @pytest.fixture
    def backend(self) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(":memory:")
        yield backend
        backend.close()


# -- helpers ---------------------------------------------------------------------------------

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _lease(tenant: str, **changes: Any) -> Lease:
    lease = Lease(
        id=f"lease_{uuid.uuid4().hex}",
        tenant_id=tenant,
        user_id="user-1",
        vm_uuid="vm-0001",
        module="fishing",
        status=LeaseStatus.ACTIVE,
        token_hash="a" * 64,
        issued_at=T0,
        expires_at=T0 + timedelta(minutes=5),
        revoke_reason="",
    )
    return attrs.evolve(lease, **changes)


def _release(tenant: str, version: str, **changes: Any) -> Release:
    release = Release(
        id=0,
        tenant_id=tenant,
        module="fishing",
        platform="windows",
        channel="stable",
        version=version,
        object_key=f"fishing/{version}.zip",
        sha256="b" * 64,
        size_bytes=10,
        status=ReleaseStatus.ACTIVE,
        created_at=T0,
    )
    return attrs.evolve(release, **changes)


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


# -- several processes on one file -------------------------------------------------------------

WRITER = """
import json, sys, time
from datetime import timedelta
from pathlib import Path
from typing import Any
import attrs
from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.models import Release, ReleaseStatus, DownloadAuditEntry, AuditEvent, AuditResult
from botmox_core.converter import parse_timestamp

path, tenant, lease_id, count, name, go = sys.argv[1:7]
backend = SqliteBackend(path, busy_timeout=30)
while not Path(go).exists():
    time.sleep(0.005)
ids = []
for step in range(int(count)):
    tag = f"[{name}.{step}]"
    with backend.unit_of_work() as uow:
        uow.leases.modify(tenant, lease_id, lambda cur: attrs.evolve(
            cur,
            revoke_reason=(cur.revoke_reason or "") + tag,
            expires_at=cur.expires_at + timedelta(seconds=1),
        ))
        release = uow.releases.add(Release(
            0, tenant, "fishing", "windows", "stable", f"{name}.{step}", f"{name}/{step}.zip",
            "c" * 64, 1, ReleaseStatus.ACTIVE, parse_timestamp("2026-11-24T12:00:00Z"),
        ))
        uow.audit.append(DownloadAuditEntry(
            tenant, AuditEvent.RESOLVE_SUCCESS, AuditResult.ALLOWED,
            parse_timestamp("2026-11-24T12:00:00Z"), lease_id=lease_id,
        ))
        uow.commit()
    ids.append(release.id)
backend.close()
print(json.dumps(ids))
"""


def test_processes_share_one_file_without_lost_updates_or_lock_errors(
    backend: SqliteBackend, tmp_path: Path
) -> None:
    tenant, count, workers = "tenant-p", 40, 3
    lease = _lease(tenant)
    with backend.unit_of_work() as uow:
        uow.leases.add(lease)
        uow.commit()
    go = tmp_path / "go"
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                backend.path,
                tenant,
                lease.id,
                str(count),
                f"p{n}",
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    try:
        go.touch()
        results = [process.communicate(timeout=120) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err, err
    ids = [i for out, _ in results for i in json.loads(out)]
    assert len(ids) == len(set(ids)) == workers * count
    with backend.unit_of_work() as uow:
        got = uow.leases.get(tenant, lease.id)
        assert got is not None
        assert got.expires_at == lease.expires_at + timedelta(seconds=workers * count)
        tags = sorted((got.revoke_reason or "").strip("[]").split("]["))
        assert tags == sorted(f"p{n}.{s}" for n in range(workers) for s in range(count))
        assert {r.id for r in uow.releases.list(tenant)} == set(ids)
        assert len(uow.audit.list(tenant, lease_id=lease.id, limit=1000)) == workers * count


OPENER = """
import sys, time
from pathlib import Path
from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.converter import parse_timestamp
from botmox_core.models import Release, ReleaseStatus

path, name, go = sys.argv[1:4]
while not Path(go).exists():
    time.sleep(0.001)
backend = SqliteBackend(path)
with backend.unit_of_work() as uow:
    uow.releases.add(Release(
        0, "t", "fishing", "windows", "stable", name, name + ".zip", "d" * 64, 1,
        ReleaseStatus.ACTIVE, parse_timestamp("2026-11-24T12:00:00Z"),
    ))
    uow.commit()
backend.close()
"""


@pytest.mark.parametrize("attempt", range(3))
def test_processes_creating_a_fresh_file_at_once_migrate_it_once(
    tmp_path: Path, attempt: int
) -> None:
    path, go, workers = tmp_path / "fresh.sqlite3", tmp_path / "go", 4
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(path), f"v{n}", str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(workers)
    ]
    try:
        time.sleep(0.3)  # let every interpreter start and wait for the signal
        go.touch()
        results = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    for process, (_out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err
    backend = SqliteBackend(path)
    try:
        with backend.unit_of_work() as uow:
            versions = sorted(r.version for r in uow.releases.list("t"))
        assert versions == [f"v{n}" for n in range(workers)]
    finally:
        backend.close()


def test_writer_waits_for_a_unit_held_by_another_connection(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    holder, waiter = SqliteBackend(db_path), SqliteBackend(db_path, busy_timeout=10)
    held = threading.Event()

    def hold() -> None:
        with holder.unit_of_work() as uow:
            uow.releases.add(_release("t", "1.0"))
            held.set()
            time.sleep(0.4)
            uow.commit()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        with waiter.unit_of_work() as uow:
            stored = uow.releases.add(_release("t", "2.0"))
            uow.commit()
        assert time.monotonic() - started >= 0.2  # it really waited for the other writer
    finally:
        thread.join()
        holder.close()
        waiter.close()
    assert stored.id == 2


def test_lock_held_past_busy_timeout_is_a_database_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    holder, impatient = SqliteBackend(db_path), SqliteBackend(db_path, busy_timeout=0.05)
    try:
        with holder.unit_of_work() as uow:
            uow.releases.add(_release("t", "1.0"))
            with pytest.raises(DatabaseError) as caught, impatient.unit_of_work():
                pass
            uow.commit()
        assert caught.value.code == "DATABASE_ERROR"
        assert caught.value.retryable
        assert "locked" in caught.value.message
        assert not isinstance(caught.value.__cause__, type(None))  # chained, not leaked
    finally:
        holder.close()
        impatient.close()


def test_backend_opened_before_fork_works_in_the_child(backend: SqliteBackend) -> None:
    with backend.unit_of_work() as uow:
        uow.releases.add(_release("t", "parent"))
        uow.commit()
    context = multiprocessing.get_context("fork")
    child = context.Process(target=_add_release_in_child, args=(backend,))
    child.start()
    child.join(30)
    if child.is_alive():
        child.kill()
        child.join()
    assert child.exitcode == 0
    with backend.unit_of_work() as uow:
        assert [r.version for r in uow.releases.list("t")] == ["child", "parent"]


def _add_release_in_child(backend: SqliteBackend) -> None:
    with backend.unit_of_work() as uow:
        uow.releases.add(_release("t", "child"))
        uow.commit()


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
        stored = uow.releases.add(_release("t", "1.0"))
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
        stored = uow.releases.add(_release("t", "1.0"))
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


# -- plugin registration and options ------------------------------------------------------------


def test_sqlite_is_registered_and_defaults_to_the_data_dir(tmp_path: Path) -> None:
    # Built-ins only: a third-party plugin installed in the environment must not matter here.
    registry = load_registry(environ={"BOTMOX_PLUGINS": "no-external-plugins"})
    factory = registry.data_backends.get("sqlite")
    settings = load_settings(environ={"BOTMOX_DATA_DIR": str(tmp_path / "state")})
    backend = factory(settings)
    try:
        assert backend.name == "sqlite"
        assert (tmp_path / "state" / "botmox.sqlite3").is_file()
        assert backend.check_health().ok
    finally:
        backend.close()


def test_memory_path_option_gives_a_private_in_memory_database(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"BOTMOX_DATA_DIR": str(tmp_path / "unused"), "BOTMOX_SQLITE_PATH": ":memory:"}
    )
    first, second = create_sqlite_backend(settings), create_sqlite_backend(settings)
    try:
        assert first.in_memory and second.in_memory
        with first.unit_of_work() as uow:
            uow.releases.add(_release("t", "1.0"))
            uow.commit()
        with second.unit_of_work() as uow:
            assert list(uow.releases.list("t")) == []
    finally:
        first.close()
        second.close()
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("BOTMOX_SQLITE_BUSY_TIMEOUT_MS", "soon", "busy_timeout_ms"),
        ("BOTMOX_SQLITE_BUSY_TIMEOUT_MS", "-1", "busy_timeout_ms"),
        ("BOTMOX_SQLITE_SYNCHRONOUS", "sometimes", "synchronous"),
    ],
)
def test_bad_options_are_configuration_errors(
    tmp_path: Path, key: str, value: str, message: str
) -> None:
    settings = load_settings(environ={"BOTMOX_DATA_DIR": str(tmp_path), key: value})
    with pytest.raises(ConfigurationError, match=message):
        create_sqlite_backend(settings)


# -- values the schema refuses ---------------------------------------------------------------


def test_duplicate_messages_say_which_rule(backend: SqliteBackend) -> None:
    with backend.unit_of_work() as uow:
        uow.releases.add(_release("t", "1.0"))
        uow.commit()
    for clash, constraint, words in (
        (_release("t", "1.0", object_key="other.zip"), "release_version", "version"),
        (_release("t", "1.1", object_key="fishing/1.0.zip"), "release_object_key", "object_key"),
    ):
        with pytest.raises(DuplicateError) as caught, backend.unit_of_work() as uow:
            uow.releases.add(clash)
        assert caught.value.details == {"constraint": constraint}
        assert words in caught.value.message


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda uow: uow.releases.add(_release("t", "9", sha256="B" * 64)), id="sha"),
        pytest.param(lambda uow: uow.releases.add(_release("t", "9", size_bytes=2**70)), id="big"),
        pytest.param(
            lambda uow: uow.leases.add(_lease("t", issued_at=datetime(2026, 1, 1))), id="naive"
        ),
        pytest.param(
            lambda uow: uow.audit.append(
                DownloadAuditEntry(
                    "t", AuditEvent.RESOLVE_DENIED, AuditResult.DENIED, T0, metadata={"x": {1, 2}}
                )
            ),
            id="metadata-not-json",
        ),
        pytest.param(
            lambda uow: uow.audit.append(
                DownloadAuditEntry(
                    "t",
                    AuditEvent.RESOLVE_DENIED,
                    AuditResult.DENIED,
                    T0,
                    metadata={"x": float("nan")},
                )
            ),
            id="metadata-nan",
        ),
        pytest.param(lambda uow: uow.leases.add(_lease("t", module="\ud800")), id="surrogate"),
        pytest.param(lambda uow: uow.leases.add(_lease("t", status="gone")), id="status"),
        pytest.param(lambda uow: uow.leases.add(_lease("t", user_id=None)), id="null"),
        pytest.param(lambda uow: uow.leases.add(_lease("t", user_id=["a"])), id="type"),
        pytest.param(lambda uow: uow.audit.list("t", limit=-1), id="limit"),
    ],
)
def test_bad_values_are_bad_requests_and_store_nothing(
    backend: SqliteBackend, write: Callable[[SqliteUnitOfWork], object]
) -> None:
    with backend.unit_of_work() as uow:
        uow.releases.add(_release("t", "1.0"))
        uow.commit()
    with pytest.raises(BadRequestError) as caught, backend.unit_of_work() as uow:
        write(uow)
        uow.commit()
    assert caught.value.code == "BAD_REQUEST"
    with backend.unit_of_work() as uow:
        assert [r.version for r in uow.releases.list("t")] == ["1.0"]
        assert list(uow.audit.list("t")) == []


def test_modify_must_keep_id_and_tenant(backend: SqliteBackend) -> None:
    lease = _lease("t")
    with backend.unit_of_work() as uow:
        uow.leases.add(lease)
        uow.commit()
    for change in ({"id": "lease_other"}, {"tenant_id": "u"}):
        with pytest.raises(BadRequestError), backend.unit_of_work() as uow:
            uow.leases.modify("t", lease.id, lambda cur, c=change: attrs.evolve(cur, **c))
            uow.commit()
    with backend.unit_of_work() as uow:
        assert uow.leases.get("t", lease.id) == lease


def test_disk_full_is_a_database_error_and_commits_nothing(backend: SqliteBackend) -> None:
    with backend.unit_of_work() as uow:
        uow.releases.add(_release("t", "kept"))
        uow.commit()
    assert backend._connection is not None
    pages = backend._connection.execute("PRAGMA page_count").fetchone()[0]
    backend._connection.execute(f"PRAGMA max_page_count = {pages + 2}")
    with pytest.raises(DatabaseError, match="full"), backend.unit_of_work() as uow:
        for n in range(200):
            uow.audit.append(
                DownloadAuditEntry(
                    "t",
                    AuditEvent.RESOLVE_DENIED,
                    AuditResult.DENIED,
                    T0,
                    metadata={"pad": "x" * 4000, "n": n},
                )
            )
        uow.commit()
    with backend.unit_of_work() as uow:
        assert list(uow.audit.list("t")) == []
        assert [r.version for r in uow.releases.list("t")] == ["kept"]


# -- unit of work misuse and lifecycle --------------------------------------------------------


def test_nested_units_in_one_thread_fail_instead_of_deadlocking(backend: SqliteBackend) -> None:
    with (
        backend.unit_of_work(),
        pytest.raises(BotmoxError, match="cannot be nested"),
        backend.unit_of_work(),
    ):
        pass
    with backend.unit_of_work() as uow:  # the backend is still usable
        assert list(uow.releases.list("t")) == []


def test_repositories_outside_the_with_block_fail(backend: SqliteBackend) -> None:
    uow = backend.unit_of_work()
    with pytest.raises(BotmoxError, match="outside its with-block"):
        uow.releases.list("t")
    with uow:
        pass
    with pytest.raises(BotmoxError, match="outside its with-block"):
        uow.commit()
    with pytest.raises(BotmoxError, match="only once"), uow:
        pass


def test_closed_backend_refuses_units_and_reports_unhealthy(backend: SqliteBackend) -> None:
    backend.close()
    with pytest.raises(ServiceUnavailableError), backend.unit_of_work():
        pass
    report = backend.check_health()
    assert not report.ok and "closed" in (report.detail or "")
    backend.close()


def test_health_reports_latency_of_a_real_round_trip(backend: SqliteBackend) -> None:
    report = backend.check_health()
    assert report.ok and report.name == "sqlite"
    assert report.latency_ms is not None and 0 <= report.latency_ms < 1000
    assert "schema version" in (report.detail or "")


def test_repr_names_the_path_only(backend: SqliteBackend, db_path: Path) -> None:
    assert repr(backend) == f"SqliteBackend(path={str(db_path)!r})"


def test_health_of_a_deleted_file_is_not_ok_and_does_not_recreate_it(
    backend: SqliteBackend, db_path: Path
) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    report = backend.check_health()
    assert not report.ok
    assert not db_path.exists()


def test_relative_path_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    backend = SqliteBackend("rel.sqlite3")
    try:
        assert backend.path == str(tmp_path / "rel.sqlite3")
    finally:
        backend.close()
