"""Writers of one SQLite file queue on ``<database>-writer`` (an flock) before ``BEGIN IMMEDIATE``:
a second writer waits for the first one's commit and goes on as soon as it ends; a lock held
by something else only delays a unit up to the busy timeout, then SQLite's own locking decides;
a forked child takes the lock on its own open file, not the parent's."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from botmox_core.backends.sqlite import SqliteBackend


def _write(backend: SqliteBackend, key: str, value: int) -> None:
    with backend.unit_of_work() as uow:
        uow.settings.modify("acme", lambda tree: {**tree, key: value})
        uow.commit()


def test_a_second_writer_waits_for_the_first_commit_then_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "botmox.sqlite3"
    first, second = SqliteBackend(db), SqliteBackend(db)
    done = threading.Event()
    try:
        with first.unit_of_work() as uow:
            uow.settings.modify("acme", lambda tree: {**tree, "a": 1})  # holds the queue
            assert Path(f"{db}-writer").is_file()
            waiter = threading.Thread(target=lambda: (_write(second, "b", 2), done.set()))
            waiter.start()
            assert not done.wait(0.3), "the second writer did not wait for the first"
            uow.commit()
            released = time.monotonic()
        assert done.wait(10)
        waiter.join()
        assert time.monotonic() - released < 5
        with second.read_unit_of_work() as uow:
            assert uow.settings.get("acme") == {"a": 1, "b": 2}
    finally:
        first.close()
        second.close()


def test_a_rolled_back_unit_lets_the_queue_go(tmp_path: Path) -> None:
    db = tmp_path / "botmox.sqlite3"
    first, second = SqliteBackend(db, busy_timeout=5), SqliteBackend(db, busy_timeout=5)
    try:
        with first.unit_of_work() as uow:
            uow.settings.modify("acme", lambda tree: {**tree, "a": 1})
        started = time.monotonic()
        _write(second, "b", 2)  # would wait the busy timeout if the lock were still held
        assert time.monotonic() - started < 4
        with pytest.raises(RuntimeError), first.unit_of_work() as uow:
            uow.settings.modify("acme", lambda tree: {**tree, "c": 3})
            raise RuntimeError("abort")
        started = time.monotonic()
        _write(second, "d", 4)
        assert time.monotonic() - started < 4
        with second.read_unit_of_work() as uow:
            assert uow.settings.get("acme") == {"b": 2, "d": 4}
    finally:
        first.close()
        second.close()


def test_a_lock_held_by_someone_else_delays_only_up_to_the_busy_timeout(tmp_path: Path) -> None:
    db = tmp_path / "botmox.sqlite3"
    backend = SqliteBackend(db, busy_timeout=0.5)
    stranger = os.open(f"{db}-writer", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(stranger, fcntl.LOCK_EX)  # not a SQLite lock: the data is free
        started = time.monotonic()
        _write(backend, "a", 1)
        waited = time.monotonic() - started
        assert 0.4 <= waited < 5, waited
        with backend.read_unit_of_work() as uow:
            assert uow.settings.get("acme") == {"a": 1}
    finally:
        os.close(stranger)
        backend.close()


def test_a_forked_child_queues_on_a_file_of_its_own(tmp_path: Path) -> None:
    db = tmp_path / "botmox.sqlite3"
    backend = SqliteBackend(db)
    try:
        _write(backend, "parent", 1)  # the parent has opened its lock file
        with backend.unit_of_work() as uow:
            uow.settings.modify("acme", lambda tree: {**tree, "held": 1})
            child = os.fork()
            if child == 0:  # pragma: no cover - runs in the child
                # the parent holds the queue: the child must not get it through the inherited
                # descriptor (same open file description, same lock)
                os._exit(0 if not backend._writers.acquire(0.3) else 3)
            _, status = os.waitpid(child, 0)
            uow.commit()
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        backend.close()
