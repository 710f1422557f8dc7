"""The repository conformance suite, unchanged, on a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from botmox_core.ports import DataBackend
from botmox_core.testing import RepositoryConformance


class TestSupabaseConformance(RepositoryConformance):
    concurrency_threads = 6

    @pytest.fixture
    def backend(self, database_url: str, make_backend: Callable[..., DataBackend]) -> DataBackend:
        return make_backend(database_url)

    @pytest.fixture
    def second_backend(
        self, database_url: str, make_backend: Callable[..., DataBackend]
    ) -> DataBackend:
        return make_backend(database_url)
