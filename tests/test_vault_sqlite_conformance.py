"""The built-in SQLite backend passes the vault conformance kit, including what its database file
holds at rest (read with a connection of its own, around the backend)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.testing.vault import (
    RawVaultDump,
    VaultAtRestConformance,
    VaultRepositoryConformance,
)


class TestSqliteVault(
    VaultRepositoryConformance[SqliteBackend], VaultAtRestConformance[SqliteBackend]
):
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

    @pytest.fixture
    def raw_vault_dump(self, tmp_path: Path) -> RawVaultDump:
        """The database as SQL text, read by a connection of its own (as ``sqlite3 .dump``)."""

        def dump() -> list[bytes]:
            connection = sqlite3.connect(tmp_path / "vault.sqlite3")
            try:
                return ["\n".join(connection.iterdump()).encode("utf-8")]
            finally:
                connection.close()

        return dump
