"""The embedded SQLite backend passes the agent/command repository conformance suite (file and
in-memory; a second instance on the same file checks claims across connections)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.testing.agents import AgentRepositoryConformance


class TestSqliteFileAgents(AgentRepositoryConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(tmp_path / "botmox.sqlite3", synchronous="NORMAL")
        yield backend
        backend.close()

    @pytest.fixture
    def second_backend(self, backend: SqliteBackend) -> Iterator[SqliteBackend]:
        second = SqliteBackend(backend.path, synchronous="NORMAL")
        yield second
        second.close()


class TestSqliteMemoryAgents(AgentRepositoryConformance):
    @pytest.fixture
    def backend(self) -> Iterator[SqliteBackend]:
        backend = SqliteBackend()
        yield backend
        backend.close()
