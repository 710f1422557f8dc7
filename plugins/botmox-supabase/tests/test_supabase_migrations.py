"""Migrations: a fresh database reaches the latest schema with one call; applying again (through
``botmox db migrate`` or the raw SQL, as ``supabase db push`` would) leaves the schema unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import psycopg
import pytest
from botmox_supabase.migrations import (
    Migration,
    applied_migrations,
    apply_migrations,
    migrations_dir,
    shipped_migrations,
)

from botmox_core.errors import BadRequestError, ConfigurationError, DatabaseError

TABLES = {
    "api_tokens",
    "vms",
    "licences",
    "entitlements",
    "leases",
    "releases",
    "assignments",
    "download_audit",
    "agents",
    "commands",
    "command_output",
    # domain data (20261201000000)
    "resources_licenses",
    "resources_proxies",
    "resources_subscriptions",
    "workspace_notes",
    "workspace_calendar_events",
    "workspace_kanban_tasks",
    "bots",
    "finance_operations",
    "bot_lifecycle_log",
    "bot_archive",
    "finance_aggregates",
    "app_settings",
    # the narrow search table (20261205000000)
    "domain_search",
    # the vault (20261202000000)
    "vault_secrets",
    "vault_secret_versions",
    "vault_bindings",
    # the control entries (20261203000000)
    "control",
}


def catalog_snapshot(dsn: str) -> dict[str, Any]:
    """Everything about the botmox schema that a migration could change."""
    queries = {
        "columns": """
            select table_name, column_name, data_type, is_nullable, column_default, is_identity,
                   identity_generation
            from information_schema.columns where table_schema = 'botmox'
            order by table_name, column_name""",
        "constraints": """
            select conrelid::regclass::text, conname, pg_get_constraintdef(oid)
            from pg_constraint where connamespace = 'botmox'::regnamespace
            order by 1, 2""",
        "indexes": """
            select tablename, indexname, indexdef from pg_indexes where schemaname = 'botmox'
            order by 1, 2""",
        "policies": """
            select tablename, policyname, permissive, roles::text, cmd, qual, with_check
            from pg_policies where schemaname = 'botmox' order by 1, 2""",
        "rls": """
            select relname, relrowsecurity, relforcerowsecurity from pg_class
            where relnamespace = 'botmox'::regnamespace and relkind = 'r' order by 1""",
        "table_grants": """
            select table_name, grantee, privilege_type from information_schema.role_table_grants
            where table_schema = 'botmox' order by 1, 2, 3""",
        "column_grants": """
            select table_name, column_name, grantee, privilege_type
            from information_schema.column_privileges
            where table_schema = 'botmox' and grantee in ('anon', 'authenticated')
            order by 1, 2, 3, 4""",
        "functions": """
            select n.nspname, p.proname, pg_get_functiondef(p.oid), p.proacl::text
            from pg_proc p join pg_namespace n on n.oid = p.pronamespace
            where n.nspname in ('botmox', 'auth') order by 1, 2""",
        "schemas": """
            select nspname, nspacl::text from pg_namespace where nspname in ('botmox', 'auth')
            order by 1""",
        "roles": """
            select rolname, rolcanlogin, rolinherit, rolbypassrls from pg_roles
            where rolname in ('anon', 'authenticated', 'service_role') order by 1""",
        "migrations": "select version, name, checksum from botmox.schema_migrations order by 1",
    }
    with psycopg.connect(dsn) as conn:
        return {key: conn.execute(query).fetchall() for key, query in queries.items()}


def test_domain_tables_are_the_backends() -> None:
    from botmox_supabase.domain_repositories import DOMAIN_TABLES

    assert set(DOMAIN_TABLES) <= TABLES
    assert len(set(DOMAIN_TABLES)) == len(DOMAIN_TABLES) == 13


def test_vault_tables_are_the_backends() -> None:
    from botmox_supabase.vault_repositories import VAULT_TABLES

    assert set(VAULT_TABLES) <= TABLES
    assert len(set(VAULT_TABLES)) == len(VAULT_TABLES) == 3


def test_shipped_migrations_use_the_supabase_cli_layout() -> None:
    folder = migrations_dir()
    assert folder.parts[-2:] == ("supabase", "migrations")
    migrations = shipped_migrations()
    assert [m.version for m in migrations] == sorted(m.version for m in migrations)
    assert all(len(m.version) == 14 and m.version.isdigit() for m in migrations)


def test_fresh_database_reaches_latest_schema_in_one_call(empty_database_url: str) -> None:
    report = apply_migrations(empty_database_url)
    shipped = shipped_migrations()
    assert report.applied == tuple(m.version for m in shipped)
    assert report.already_applied == ()
    assert report.latest == shipped[-1].version
    snapshot = catalog_snapshot(empty_database_url)
    assert {row[0] for row in snapshot["rls"]} == TABLES | {
        "schema_migrations",
        "rate_limit_counters",
    }
    assert all(enabled and forced for _, enabled, forced in snapshot["rls"])
    with psycopg.connect(empty_database_url) as conn:
        recorded = applied_migrations(conn)
    assert recorded == {m.version: m.checksum for m in shipped}


def test_applying_twice_gives_the_same_schema(empty_database_url: str) -> None:
    apply_migrations(empty_database_url)
    first = catalog_snapshot(empty_database_url)
    report = apply_migrations(empty_database_url)
    assert report.applied == ()
    assert report.already_applied == tuple(m.version for m in shipped_migrations())
    assert catalog_snapshot(empty_database_url) == first


def test_raw_sql_reapplied_gives_the_same_schema(empty_database_url: str) -> None:
    """``supabase db push`` on a database migrated by ``botmox db migrate`` re-runs the files."""
    apply_migrations(empty_database_url)
    first = catalog_snapshot(empty_database_url)
    with psycopg.connect(empty_database_url) as conn:
        for migration in shipped_migrations():
            conn.execute(migration.sql.encode())
    assert catalog_snapshot(empty_database_url) == first
    # The comparison sees a real change (so equality above means something).
    with psycopg.connect(empty_database_url) as conn:
        conn.execute("drop policy leases_tenant_read on botmox.leases")
    assert catalog_snapshot(empty_database_url)["policies"] != first["policies"]


def test_changed_migration_is_refused(empty_database_url: str) -> None:
    apply_migrations(empty_database_url)
    shipped = shipped_migrations()
    tampered = [*shipped[:-1], Migration(shipped[-1].version, shipped[-1].name, "select 1;")]
    with pytest.raises(ConfigurationError, match="differs from the version applied"):
        apply_migrations(empty_database_url, tampered)


def test_failed_migration_is_rolled_back_and_not_recorded(empty_database_url: str) -> None:
    good = Migration("20990101000000", "good", "create table public.kept (id int);")
    bad = Migration(
        "20990101000001",
        "bad",
        "create table public.half_written (id int); select * from no_such_table;",
    )
    with pytest.raises(DatabaseError, match="20990101000001_bad failed"):
        apply_migrations(empty_database_url, [good, bad])
    with psycopg.connect(empty_database_url) as conn:
        assert set(applied_migrations(conn)) == {"20990101000000"}
        tables = {
            name
            for (name,) in conn.execute(
                "select tablename from pg_tables where schemaname = 'public'"
            ).fetchall()
        }
    assert tables == {"kept"}


def test_two_migrators_at_once_apply_each_version_once(empty_database_url: str) -> None:
    start = threading.Barrier(2)
    reports: list[Any] = []
    errors: list[BaseException] = []

    def migrate() -> None:
        start.wait(timeout=10)
        try:
            reports.append(apply_migrations(empty_database_url))
        except BaseException as exc:  # collected and re-raised by the test
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    applied = sorted(v for report in reports for v in report.applied)
    assert applied == [m.version for m in shipped_migrations()]
    snapshot = catalog_snapshot(empty_database_url)
    assert len(snapshot["migrations"]) == len(shipped_migrations())


def test_migrate_unreachable_database_is_service_unavailable() -> None:
    from botmox_core.errors import ServiceUnavailableError

    with pytest.raises(ServiceUnavailableError) as caught:
        apply_migrations("postgresql://u:secret-pw@127.0.0.1:1/db", connect_timeout=1)
    assert "secret-pw" not in str(caught.value)


def test_constraints_refuse_bad_rows(database_url: str) -> None:
    """Out-of-band: the database itself refuses what the contract forbids."""
    from botmox_supabase.error_mapping import map_database_errors

    bad_rows = [
        "insert into botmox.releases (tenant_id, module, platform, channel, version, object_key,"
        " sha256, size_bytes, status, created_at) values ('t', 'm', 'p', 'c', 'v', 'k',"
        " repeat('a', 64), 1, 'published', now())",
        "insert into botmox.leases (id, tenant_id, user_id, vm_uuid, module, status, token_hash,"
        " issued_at, expires_at) values ('l', 't', 'u', 'v', 'm', 'expired', repeat('a', 64),"
        " now(), now())",
        "insert into botmox.vms (tenant_id, vm_uuid, user_id, status, metadata, created_at,"
        " updated_at) values ('t', 'vm-1', 'u', 'active', '[1]', now(), now())",
        "insert into botmox.api_tokens (id, tenant_id, role, token_hash, created_at)"
        " values ('x', 't', 'root', repeat('a', 64), now())",
        "insert into botmox.api_tokens (id, tenant_id, role, token_hash, created_at)"
        " values ('x', 't', 'api', 'plaintext-token', now())",
        "insert into botmox.assignments (tenant_id, module, platform, channel, release_id,"
        " assigned_at) values ('t', 'm', 'p', 'c', 0, now())",
        # domain data: ids every backend can store, JSON objects only, known aggregates.
        "insert into botmox.bots (tenant_id, id, data, search) values ('t', 'a/b', '{}', '')",
        "insert into botmox.bots (tenant_id, id, data, search) values ('t', '', '{}', '')",
        "insert into botmox.bots (tenant_id, id, data, search) values ('t', 'b', '[1]', '')",
        "insert into botmox.bots (tenant_id, id, data, search) values ('', 'b', '{}', '')",
        "insert into botmox.finance_aggregates (tenant_id, key, data) values ('t', 'x', '{}')",
        "insert into botmox.app_settings (tenant_id, data) values ('t', '\"text\"')",
        "insert into botmox.bot_lifecycle_log (tenant_id, id, bot_id, type, message,"
        " timestamp_ms) values ('t', 'l', 'b', 'ban', 'm', -1)",
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for statement in bad_rows:
            with pytest.raises(BadRequestError), map_database_errors("insert"):
                conn.execute(statement.encode())


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from botmox_core.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )


def _clean_env() -> dict[str, str]:
    drop = ("BOTMOX_SUPABASE_DATABASE_URL", "SUPABASE_DB_URL", "DATABASE_URL", "BOTMOX_CONFIG")
    return {k: v for k, v in os.environ.items() if k not in drop}


def test_cli_db_migrate_twice(empty_database_url: str) -> None:
    env = _clean_env()
    first = _cli("db", "migrate", "--database-url", empty_database_url, "--json", env=env)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)["data"]
    assert data["applied"] == [m.version for m in shipped_migrations()]
    password = psycopg.conninfo.conninfo_to_dict(empty_database_url)["password"]
    assert password and password not in first.stdout + first.stderr
    env["BOTMOX_SUPABASE_DATABASE_URL"] = empty_database_url
    second = _cli("db", "migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "is up to date" in second.stdout
    assert password not in second.stdout + second.stderr


def test_cli_db_migrate_without_url_explains() -> None:
    result = _cli("db", "migrate", "--json", env=_clean_env())
    assert result.returncode == 1
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "CONFIGURATION_ERROR"
    assert "BOTMOX_SUPABASE_DATABASE_URL" in error["message"]
    assert "Traceback" not in result.stderr
