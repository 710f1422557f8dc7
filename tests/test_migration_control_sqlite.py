"""The control entries (write freeze, migration lock and checkpoints) on SQLite: the conformance
kit, on a file (with a second instance on it) and in memory; the schema upgrade to version 5."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.backends.sqlite.schema import MIGRATIONS, SCHEMA_VERSION
from botmox_core.testing.control import ControlRepositoryConformance


class TestSqliteFileControl(ControlRepositoryConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(tmp_path / "botmox.sqlite3", synchronous="OFF")
        yield backend
        backend.close()

    @pytest.fixture
    def second_backend(self, backend: SqliteBackend) -> Iterator[SqliteBackend]:
        other = SqliteBackend(backend.path, synchronous="OFF")
        yield other
        other.close()


class TestSqliteMemoryControl(ControlRepositoryConformance):
    @pytest.fixture
    def backend(self) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(":memory:")
        yield backend
        backend.close()


def test_a_version_4_database_gains_the_control_table(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA application_id = 1651339128")
    for statements in MIGRATIONS[:4]:
        for statement in statements:
            connection.execute(statement)
    connection.execute("PRAGMA user_version = 4")
    connection.commit()
    connection.close()
    backend = SqliteBackend(path, synchronous="OFF")
    try:
        with backend.unit_of_work() as uow:
            uow.control.modify("writes_frozen", lambda current: {"frozen": True})
            uow.commit()
        with backend.unit_of_work() as uow:
            assert uow.control.get("writes_frozen") == {"frozen": True}
    finally:
        backend.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5
    check.close()
