"""The built-in SQLite backend passes the vault conformance kit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.testing.vault import VaultRepositoryConformance


class TestSqliteVault(VaultRepositoryConformance[SqliteBackend]):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[SqliteBackend]:
        backend = SqliteBackend(tmp_path / "vault.sqlite3")
        yield backend
        backend.close()

    @pytest.fixture
    def second_backend(self, backend: SqliteBackend, tmp_path: Path) -> Iterator[SqliteBackend]:
        other = SqliteBackend(tmp_path / "vault.sqlite3")
        yield other
        other.close()
