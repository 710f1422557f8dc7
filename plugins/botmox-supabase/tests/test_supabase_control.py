"""The control entries (write freeze, migration lock and checkpoints) and the tenant list on
PostgreSQL (migration 20261203000000): the conformance kit, and row-level security (operators
only: an authenticated tenant user can neither read nor write them)."""

from __future__ import annotations

from collections.abc import Callable

import psycopg
import pytest
from botmox_supabase.backend import PostgresDataBackend

from botmox_core.testing.control import ControlRepositoryConformance


class TestSupabaseControl(ControlRepositoryConformance):
    @pytest.fixture
    def backend(
        self, database_url: str, make_backend: Callable[..., PostgresDataBackend]
    ) -> PostgresDataBackend:
        return make_backend(database_url)

    @pytest.fixture
    def second_backend(
        self, database_url: str, make_backend: Callable[..., PostgresDataBackend]
    ) -> PostgresDataBackend:
        return make_backend(database_url)


def test_authenticated_users_cannot_read_or_write_control_entries(
    database_url: str, make_backend: Callable[..., PostgresDataBackend]
) -> None:
    backend = make_backend(database_url)
    with backend.unit_of_work() as uow:
        uow.control.modify("writes_frozen", lambda current: {"frozen_at": 1})
        uow.commit()
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in (
            "select count(*) from botmox.control",
            "delete from botmox.control",
            "insert into botmox.control (key, value) values ('x', '{}')",
        ):
            with conn.transaction(), pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("set local role authenticated")
                conn.execute(statement)
    with backend.unit_of_work() as uow:
        assert uow.control.get("writes_frozen") == {"frozen_at": 1}
