"""Fixtures: one real PostgreSQL per session, a migrated template, a fresh database per test."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit

import psycopg
import pytest
from botmox_supabase.backend import PostgresDataBackend
from botmox_supabase.options import SupabaseOptions
from botmox_supabase.testing import (
    PostgresUnavailable,
    create_database,
    drop_database,
    make_template,
    require_postgres,
    reset_database,
    running_postgres,
)
from psycopg.sql import SQL, Identifier, Literal

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="session")
def postgres_admin_dsn() -> Iterator[str]:
    """Superuser DSN of the session's PostgreSQL (skips, or fails under CI=true, without one)."""
    try:
        manager = running_postgres()
        dsn = manager.__enter__()
    except PostgresUnavailable as exc:
        require_postgres(str(exc))
    try:
        yield dsn
    finally:
        manager.__exit__(None, None, None)


@pytest.fixture(scope="session")
def template_db(postgres_admin_dsn: str) -> Iterator[str]:
    name = f"botmox_tpl_{secrets.token_hex(4)}"
    make_template(postgres_admin_dsn, name)
    yield name
    drop_database(postgres_admin_dsn, name)


@pytest.fixture(scope="session")
def shared_database_url(postgres_admin_dsn: str, template_db: str) -> Iterator[str]:
    dsn = create_database(postgres_admin_dsn, template=template_db)
    yield dsn
    drop_database(postgres_admin_dsn, urlsplit(dsn).path.lstrip("/"))


@pytest.fixture
def database_url(shared_database_url: str) -> str:
    """DSN (superuser) of a database at the latest schema with every table empty."""
    reset_database(shared_database_url)
    return shared_database_url


@pytest.fixture
def own_database_url(postgres_admin_dsn: str, template_db: str) -> Iterator[str]:
    """DSN of a database at the latest schema that only this test uses (it may alter it)."""
    dsn = create_database(postgres_admin_dsn, template=template_db)
    yield dsn
    drop_database(postgres_admin_dsn, urlsplit(dsn).path.lstrip("/"))


@pytest.fixture
def empty_database_url(postgres_admin_dsn: str) -> Iterator[str]:
    """DSN of a fresh database without any botmox schema."""
    dsn = create_database(postgres_admin_dsn)
    yield dsn
    drop_database(postgres_admin_dsn, urlsplit(dsn).path.lstrip("/"))


BackendFactory = Callable[..., PostgresDataBackend]


@pytest.fixture
def make_backend() -> Iterator[BackendFactory]:
    """``make_backend(dsn, **options)``: a backend closed at the end of the test."""
    made: list[PostgresDataBackend] = []

    def make(dsn: str, **overrides: object) -> PostgresDataBackend:
        options: dict[str, object] = {
            "database_url": dsn,
            "pool_min_size": 1,
            "pool_max_size": 8,
            "pool_timeout": 5.0,
        }
        options.update(overrides)
        backend = PostgresDataBackend(SupabaseOptions(**options))  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def pg_backend(database_url: str, make_backend: BackendFactory) -> PostgresDataBackend:
    """A backend on :func:`database_url`."""
    return make_backend(database_url)


@pytest.fixture
def sql(database_url: str) -> Iterator[psycopg.Connection]:
    """An autocommit superuser connection to the test's database (out-of-band checks)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def login_role(database_url: str) -> Iterator[tuple[str, str]]:
    """A login role without BYPASSRLS that may SET ROLE service_role (what a dedicated server
    user on Supabase would be); yields (name, password)."""
    name, password = f"botmox_srv_{secrets.token_hex(4)}", secrets.token_hex(16)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            SQL("create role {} login password {}").format(Identifier(name), Literal(password))
        )
        conn.execute(SQL("grant service_role to {}").format(Identifier(name)))
    yield name, password
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SQL("drop role {}").format(Identifier(name)))


@pytest.fixture
def login_role_dsn(database_url: str, login_role: tuple[str, str]) -> str:
    """``database_url`` as :func:`login_role` (its name and password instead of the user)."""
    name, password = login_role
    info = psycopg.conninfo.conninfo_to_dict(database_url)
    return f"postgresql://{name}:{password}@{info['host']}:{info['port']}/{info['dbname']}"
