"""The agent/command repository conformance suite, unchanged, on a real PostgreSQL (a second
backend instance on the same database checks claims across connection pools)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from botmox_core.ports import DataBackend
from botmox_core.testing.agents import AgentRepositoryConformance


class TestSupabaseAgentConformance(AgentRepositoryConformance):
    @pytest.fixture
    def backend(self, database_url: str, make_backend: Callable[..., DataBackend]) -> DataBackend:
        return make_backend(database_url)

    @pytest.fixture
    def second_backend(
        self, database_url: str, make_backend: Callable[..., DataBackend]
    ) -> DataBackend:
        return make_backend(database_url)
