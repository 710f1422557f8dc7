"""The throwaway-PostgreSQL kit other test suites reuse: it cleans up after itself and, without
PostgreSQL, skips — or fails under ``CI=true``."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from botmox_supabase import testing
from botmox_supabase.testing import (
    PostgresUnavailable,
    TemporaryPostgres,
    require_postgres,
    running_postgres,
)


def test_missing_binaries_say_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(testing, "find_postgres_bindir", lambda: None)
    with pytest.raises(PostgresUnavailable, match="postgresql' package"):
        TemporaryPostgres()


def test_require_postgres_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_postgres("no binaries")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        require_postgres("no binaries")


def test_unreachable_external_dsn_is_reported_without_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(testing.DSN_ENV, "postgresql://u:s3cr3t-pw@127.0.0.1:1/db?connect_timeout=1")
    with pytest.raises(PostgresUnavailable) as caught, running_postgres():
        pass
    assert "s3cr3t-pw" not in str(caught.value)


def test_cluster_is_stopped_and_deleted_on_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(testing.DSN_ENV, raising=False)
    try:
        cluster = TemporaryPostgres()
    except PostgresUnavailable as exc:
        require_postgres(str(exc))
    with cluster:
        with psycopg.connect(cluster.dsn) as conn:
            assert conn.execute("select current_setting('listen_addresses')").fetchone() == (
                "127.0.0.1",
            )
        pid = cluster._read_pid()
        root = cluster._root
        assert pid is not None and root.exists()
    assert not Path(root).exists()
    assert not testing._process_alive(pid)
