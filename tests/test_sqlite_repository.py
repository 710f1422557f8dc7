"""The ``sqlite`` backend: the repository conformance suite on a file and in memory, plus what
only SQLite has (WAL file shared by processes, migrations, error mapping)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from botmox_core.backends.sqlite import SqliteBackend
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
