"""The repository conformance suite, unchanged, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from botmox_core.ports import DataBackend
from botmox_core.testing import RepositoryConformance

from conftest import make_backend


class TestSupabaseConformance(RepositoryConformance):
    concurrency_threads = 6

    @pytest.fixture
    def backend(self, database_url: str) -> Iterator[DataBackend]:
        backend = make_backend(database_url, pool_max_size=8)
        yield backend
        backend.close()

    @pytest.fixture
    def second_backend(self, database_url: str) -> Iterator[DataBackend]:
        backend = make_backend(database_url, pool_max_size=8)
        yield backend
        backend.close()
