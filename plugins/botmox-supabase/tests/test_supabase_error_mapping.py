"""The one place where database errors become botmox errors, checked against real PostgreSQL
errors (raised by a real server) and the pool's own exceptions."""

from __future__ import annotations

import psycopg
import psycopg_pool
import pytest
from botmox_supabase.error_mapping import UNIQUE_RULES, map_database_error, map_database_errors

from botmox_core.errors import (
    BadRequestError,
    DatabaseError,
    DuplicateError,
    ServiceUnavailableError,
)


def _raised(dsn: str, statement: str) -> psycopg.Error:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(statement.encode())
        except psycopg.Error as exc:
            return exc
    raise AssertionError(f"{statement!r} did not fail")


def test_unique_violation_names_the_rule(database_url: str) -> None:
    insert = (
        "insert into botmox.releases (tenant_id, module, platform, channel, version, object_key,"
        " sha256, size_bytes, status, created_at) values ('t', 'm', 'p', 'c', 'v', 'k{n}',"
        " repeat('a', 64), 1, 'active', now())"
    )
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(insert.format(n=1).encode())
    error = map_database_error(_raised(database_url, insert.format(n=2)), "release add")
    assert isinstance(error, DuplicateError)
    assert (error.status, error.code) == (409, "DUPLICATE")
    assert error.message == UNIQUE_RULES["releases_scope_version_key"]
    assert error.details == {"constraint": "releases_scope_version_key"}


def test_every_unique_constraint_has_a_rule(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        names = {
            name
            for (name,) in conn.execute(
                "select conname from pg_constraint where connamespace = 'botmox'::regnamespace"
                " and contype in ('u', 'p') and conrelid <> 'botmox.schema_migrations'::regclass"
            ).fetchall()
        }
    assert names == set(UNIQUE_RULES)


def test_check_violation_is_bad_request(database_url: str) -> None:
    exc = _raised(
        database_url,
        "insert into botmox.licences (tenant_id, status, updated_at) values ('t', 'gold', now())",
    )
    error = map_database_error(exc, "licence put")
    assert isinstance(error, BadRequestError) and error.status == 400
    assert "licences_status_check" in error.message


def test_other_server_errors_are_database_errors(database_url: str) -> None:
    error = map_database_error(_raised(database_url, "select * from no_such_table"), "query")
    assert isinstance(error, DatabaseError) and (error.status, error.code) == (
        502,
        "DATABASE_ERROR",
    )
    assert error.retryable


def test_terminated_session_is_service_unavailable(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as victim:
        pid = victim.info.backend_pid
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("select pg_terminate_backend(%s)", (pid,))
        with pytest.raises(ServiceUnavailableError) as caught, map_database_errors("query"):
            victim.execute("select 1")
    assert caught.value.status == 503 and caught.value.retryable


def test_pool_timeout_and_closed_pool_are_service_unavailable() -> None:
    for exc in (psycopg_pool.PoolTimeout("timeout"), psycopg_pool.PoolClosed("closed")):
        error = map_database_error(exc, "connect")
        assert isinstance(error, ServiceUnavailableError)


def test_unreachable_server_is_service_unavailable_without_the_password() -> None:
    with pytest.raises(ServiceUnavailableError) as caught, map_database_errors("connect"):
        psycopg.connect("postgresql://u:s3cr3t-pw@127.0.0.1:1/db", connect_timeout=1)
    assert "s3cr3t-pw" not in caught.value.message


def test_assignment_to_a_missing_or_foreign_release_is_refused(database_url: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        (theirs,) = conn.execute(
            "insert into botmox.releases (tenant_id, module, platform, channel, version,"
            " object_key, sha256, size_bytes, status, created_at) values ('tenant-b', 'm', 'p',"
            " 'c', 'v', 'k', repeat('a', 64), 1, 'active', now()) returning id"
        ).fetchone()
    for release_id in (theirs, theirs + 1000):
        exc = _raised(
            database_url,
            "insert into botmox.assignments (tenant_id, module, platform, channel, release_id,"
            f" assigned_at) values ('tenant-a', 'm', 'p', 'c', {int(release_id)}, now())",
        )
        error = map_database_error(exc, "assignment put")
        assert isinstance(error, BadRequestError)
        assert error.message == "the assigned release does not exist for the tenant"
