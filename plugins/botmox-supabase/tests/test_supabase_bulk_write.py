"""``after_bulk_write`` on a real PostgreSQL: an import (``botmox data import``) ends with the
domain tables vacuumed and analyzed, so lists are planned from fresh statistics and the trigram
indexes hold no pending entries; a role that owns no table gets no error."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

import psycopg
from botmox_supabase.backend import PostgresDataBackend
from psycopg import sql

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.domain.listing import ListQuery
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.services.domains.transfer import export_tenant, import_tenant

BOTS = 1500


def _bots(tenant: str, seed: int) -> list[DomainRecord]:
    rng = random.Random(seed)
    return [
        DomainRecord(
            tenant,
            Collection.BOTS,
            f"bot-{number:05d}",
            {
                "name": f"bot {number}",
                "status": rng.choice(("farming", "leveling", "banned")),
                "level": rng.randrange(1, 81),
                "created_at": 1_790_000_000_000 + number,
                "updated_at": 1_790_000_000_000 + number,
            },
        )
        for number in range(BOTS)
    ]


def _put(backend: PostgresDataBackend | SqliteBackend, records: list[DomainRecord]) -> None:
    for start in range(0, len(records), 500):
        with backend.unit_of_work() as uow:
            uow.records.put_many(records[start : start + 500])  # type: ignore[attr-defined]
            uow.commit()


def _pending_search_tuples(conn: psycopg.Connection) -> int:
    """Entries waiting in the pending lists of the GIN indexes on ``domain_search``."""
    row = conn.execute(
        "select coalesce(sum((pgstatginindex(i.indexrelid)).pending_tuples), 0)"
        " from pg_index i join pg_class c on c.oid = i.indexrelid join pg_am a on a.oid = c.relam"
        " where i.indrelid = 'botmox.domain_search'::regclass and a.amname = 'gin'"
    ).fetchone()
    assert row is not None
    return int(row[0])


def _analyzed(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute(
        "select coalesce(last_analyze, last_autoanalyze) is not null from pg_stat_user_tables"
        " where schemaname = 'botmox' and relname = %s",
        (table,),
    ).fetchone()
    return bool(row and row[0])


def test_an_import_leaves_fresh_statistics_and_no_pending_search_entries(
    own_database_url: str,
    make_backend: Callable[..., PostgresDataBackend],
    tmp_path: Path,
) -> None:
    target = make_backend(own_database_url)
    with psycopg.connect(own_database_url, autocommit=True) as conn:
        for table in ("bots", "domain_search"):  # so only the hook can analyze them here
            conn.execute(
                sql.SQL("alter table {} set (autovacuum_enabled = false)").format(
                    sql.Identifier("botmox", table)
                )
            )
        conn.execute("create extension if not exists pgstattuple")
        # Written without the hook (as a busy server does): pending entries, no statistics.
        _put(target, _bots("tenant-live", 1))
        assert _pending_search_tuples(conn) > 0
        assert not _analyzed(conn, "bots") and not _analyzed(conn, "domain_search")

        source = SqliteBackend(tmp_path / "source.sqlite3", synchronous="OFF")
        try:
            _put(source, _bots("tenant-import", 2))
            exported = io.BytesIO()
            export_tenant(source, "tenant-import", exported)
        finally:
            source.close()
        path = tmp_path / "tenant.jsonl"
        path.write_bytes(exported.getvalue())
        report = import_tenant(target, "tenant-import", path)
        assert not report.errors

        assert _pending_search_tuples(conn) == 0
        assert _analyzed(conn, "bots") and _analyzed(conn, "domain_search")
    with target.read_unit_of_work() as uow:
        page = uow.records.list(  # type: ignore[attr-defined]
            "tenant-import", Collection.BOTS, ListQuery(q="farming", sort="name")
        )
    expected = [r for r in _bots("tenant-import", 2) if r.data["status"] == "farming"]
    assert page.total == len(expected)


def test_a_role_that_owns_no_table_gets_no_error(
    login_role_dsn: str, make_backend: Callable[..., PostgresDataBackend]
) -> None:
    """As a login role that only may act as ``service_role`` (owner of nothing), PostgreSQL
    skips every table with a warning: the import still succeeds."""
    for mode in ("transaction", "session"):
        backend = make_backend(login_role_dsn, role="service_role", pooler_mode=mode)
        backend.after_bulk_write()
        backend.close()
