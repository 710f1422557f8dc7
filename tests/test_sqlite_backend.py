"""The ``sqlite`` backend as a plugin: options, error mapping of values the schema refuses,
unit-of-work misuse, lifecycle and health."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import attrs
import pytest

from botmox_core.backends.sqlite import (
    SqliteBackend,
    SqliteUnitOfWork,
    create_sqlite_backend,
)
from botmox_core.config import load_settings
from botmox_core.errors import (
    BadRequestError,
    BotmoxError,
    ConfigurationError,
    DatabaseError,
    DuplicateError,
    ServiceUnavailableError,
)
from botmox_core.models import AuditEvent, AuditResult, DownloadAuditEntry
from botmox_core.plugin import load_registry
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
            uow.releases.add(make_release("t", version="1.0"))
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
        original = uow.releases.add(make_release("t", version="1.0"))
        uow.commit()
    for clash, constraint, words in (
        (make_release("t", version="1.0"), "release_version", "version"),
        (
            make_release("t", version="1.1", object_key=original.object_key),
            "release_object_key",
            "object_key",
        ),
    ):
        with pytest.raises(DuplicateError) as caught, backend.unit_of_work() as uow:
            uow.releases.add(clash)
        assert caught.value.details == {"constraint": constraint}
        assert words in caught.value.message


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(
            lambda uow: uow.releases.add(make_release("t", version="9", sha256="B" * 64)), id="sha"
        ),
        pytest.param(
            lambda uow: uow.releases.add(make_release("t", version="9", size_bytes=2**70)), id="big"
        ),
        pytest.param(
            lambda uow: uow.leases.add(make_lease("t", issued_at=datetime(2026, 1, 1))), id="naive"
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
        pytest.param(lambda uow: uow.leases.add(make_lease("t", module="\ud800")), id="surrogate"),
        pytest.param(lambda uow: uow.leases.add(make_lease("t", status="gone")), id="status"),
        pytest.param(lambda uow: uow.leases.add(make_lease("t", user_id=None)), id="null"),
        pytest.param(lambda uow: uow.leases.add(make_lease("t", user_id=["a"])), id="type"),
        pytest.param(lambda uow: uow.audit.list("t", limit=-1), id="limit"),
    ],
)
def test_bad_values_are_bad_requests_and_store_nothing(
    backend: SqliteBackend, write: Callable[[SqliteUnitOfWork], object]
) -> None:
    with backend.unit_of_work() as uow:
        uow.releases.add(make_release("t", version="1.0"))
        uow.commit()
    with pytest.raises(BadRequestError) as caught, backend.unit_of_work() as uow:
        write(uow)
        uow.commit()
    assert caught.value.code == "BAD_REQUEST"
    with backend.unit_of_work() as uow:
        assert [r.version for r in uow.releases.list("t")] == ["1.0"]
        assert list(uow.audit.list("t")) == []


def test_modify_must_keep_id_and_tenant(backend: SqliteBackend) -> None:
    lease = make_lease("t")
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
        uow.releases.add(make_release("t", version="kept"))
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


def test_a_transaction_sqlite_aborted_never_half_commits(backend: SqliteBackend) -> None:
    first, second = make_lease("t"), make_lease("t")
    with backend.unit_of_work() as uow:
        uow.leases.add(first)
        assert backend._connection is not None
        backend._connection.execute("ROLLBACK")  # what SQLite does on some I/O or full errors
        with pytest.raises(DatabaseError, match="aborted"):
            uow.leases.add(second)
        with pytest.raises(DatabaseError, match="aborted"):
            uow.commit()
    with backend.unit_of_work() as uow:
        assert uow.leases.get("t", first.id) is None
        assert uow.leases.get("t", second.id) is None
