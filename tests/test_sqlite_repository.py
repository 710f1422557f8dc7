"""The ``sqlite`` backend passes the repository conformance suite on a file and in memory,
and keeps its guarantees when threads, connections and processes share one file."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from botmox_core.backends.sqlite import (
    SqliteBackend,
)
from botmox_core.errors import (
    DatabaseError,
)
from botmox_core.testing import RepositoryConformance
from botmox_core.testing.repository import make_lease, make_release


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
    lease = make_lease(tenant)
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
            uow.releases.add(make_release("t", version="1.0"))
            held.set()
            time.sleep(0.4)
            uow.commit()

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(5)
        started = time.monotonic()
        with waiter.unit_of_work() as uow:
            stored = uow.releases.add(make_release("t", version="2.0"))
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
            uow.releases.add(make_release("t", version="1.0"))
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
        uow.releases.add(make_release("t", version="parent"))
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
        uow.releases.add(make_release("t", version="child"))
        uow.commit()


# -- the suite as a third party meets it ------------------------------------------------------


def test_a_subclass_without_backend_fixture_is_told_what_to_write(tmp_path: Path) -> None:
    module = tmp_path / "test_third_party.py"
    module.write_text(
        "from botmox_core.testing import RepositoryConformance\n\n"
        "class TestMine(RepositoryConformance):\n"
        "    pass\n"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            str(module),
            "-q",
            "-p",
            "no:cacheprovider",
            "-k",
            "test_backend_has_a_name",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TestMine must define a `backend` fixture" in result.stdout
    assert "def backend(self, tmp_path):" in result.stdout
