"""Bench: ``botmox migrate`` of N domain records (mixed collections) into PostgreSQL, from the
RTDB emulator and from SQLite, beside a baseline measured in the same run.

Per source it prints: the migration's records/s and seconds; the baseline — reading the same
records alone through the same port reads (``read alone``) and inserting them alone with
``COPY`` into a fresh database of the same schema (``COPY alone``) — and the ratio
migration / (read + COPY) (target: ≤ 1.5); a second run over unchanged data (rows written:
target 0); parity of the two sides (target: under 10 s for 100,000 records); the process's peak
RSS (``ru_maxrss``, the whole process: seeding included).

    python bench/bench_migrate.py --records 100000 [--sources sqlite,rtdb]

PostgreSQL is a throwaway cluster (``initdb``/``pg_ctl``; ``fsync=off`` as every bench here);
the RTDB emulator is the plugin's pure-Python one, so its read rate is the emulator's, not
Firebase's.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.migration import MigrationOptions, migrate, parity
from botmox_core.migration.catalog import STREAMS
from botmox_core.migration.engine import read_stream
from botmox_core.ports import DataBackend

TENANT = "bench"
#: Share of the records per collection.
MIX = {
    Collection.BOTS: 0.6,
    Collection.NOTES: 0.2,
    Collection.FINANCE_OPERATIONS: 0.15,
    Collection.LICENSES: 0.05,
}


def records(total: int) -> Iterator[tuple[Collection, str, dict[str, Any]]]:
    for collection, share in MIX.items():
        for i in range(int(total * share)):
            yield (
                collection,
                f"{collection.name.lower()}-{i:07d}",
                {
                    "name": f"record {i}",
                    "level": i % 80,
                    "tags": ["a", "b"],
                    "nested": {"x": i, "y": "ü"},
                    "created_at": 1_700_000_000_000 + i,
                    "updated_at": 1_700_000_000_000 + i,
                },
            )


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    from botmox_supabase.testing import TemporaryPostgres

    with TemporaryPostgres(settings={"shared_buffers": "256MB", "fsync": "off"}) as server:
        yield server.dsn


def postgres_backend(admin: str, stack: contextlib.ExitStack) -> tuple[DataBackend, str]:
    from botmox_supabase.backend import PostgresDataBackend
    from botmox_supabase.migrations import apply_migrations
    from botmox_supabase.options import SupabaseOptions
    from botmox_supabase.testing import create_database, drop_database

    dsn = create_database(admin)
    stack.callback(drop_database, admin, dsn.rsplit("/", 1)[1])
    apply_migrations(dsn)
    backend = PostgresDataBackend(
        SupabaseOptions(database_url=dsn, pool_min_size=1, pool_max_size=4)
    )
    stack.callback(backend.close)
    return backend, dsn


def copy_alone(dsn: str, source: DataBackend) -> tuple[float, float, int]:
    """(seconds reading through the ports, seconds of COPY, rows)."""
    import psycopg
    from botmox_supabase.domain_repositories import COLLECTION_TABLES, dump_json

    from botmox_core.domain.listing import search_text

    started = time.perf_counter()
    rows: dict[Collection, list[tuple[str, str, str, str]]] = {}
    for stream in STREAMS:
        if not stream.name.startswith("records/") or not stream.available(source):
            continue
        for item in read_stream(source, stream, TENANT, None, 500):
            record: DomainRecord = item.value
            rows.setdefault(record.collection, []).append(
                (
                    TENANT,
                    record.id,
                    dump_json(dict(record.data)),
                    search_text(record.id, dict(record.data)),
                )
            )
    read_seconds = time.perf_counter() - started
    started = time.perf_counter()
    count = 0
    with psycopg.connect(dsn, autocommit=True) as connection:
        for collection, values in rows.items():
            table = COLLECTION_TABLES[collection]
            with connection.cursor().copy(
                f"copy botmox.{table} (tenant_id, id, data, search) from stdin"
            ) as copy:
                for row in values:
                    copy.write_row(row)
                    count += 1
    return read_seconds, time.perf_counter() - started, count


def seed_sqlite(path: Path, total: int) -> SqliteBackend:
    path.mkdir(parents=True, exist_ok=True)
    backend = SqliteBackend(path / "botmox.sqlite3", synchronous="OFF")
    batch: list[tuple[Collection, str, dict[str, Any]]] = []

    def flush() -> None:
        with backend.unit_of_work() as uow:
            for collection, record_id, data in batch:
                uow.records.add(DomainRecord(TENANT, collection, record_id, data))
            uow.commit()
        batch.clear()

    for row in records(total):
        batch.append(row)
        if len(batch) >= 5000:
            flush()
    flush()
    return backend


def seed_rtdb(host_port: str, total: int) -> DataBackend:
    from botmox_rtdb import build_backend
    from botmox_rtdb.domain_repositories import COLLECTION_PATHS
    from botmox_rtdb.testing import emulator_environ

    from botmox_core.config import load_settings

    grouped: dict[Collection, dict[str, Any]] = {}
    for collection, record_id, data in records(total):
        grouped.setdefault(collection, {})[record_id] = data
    for collection, values in grouped.items():
        answer = httpx.put(
            f"http://{host_port}/tenants/{TENANT}/{COLLECTION_PATHS[collection]}.json",
            params={"ns": "bench"},
            content=json.dumps(values),
            headers={"Authorization": "Bearer owner"},
            timeout=600,
        )
        answer.raise_for_status()
    return build_backend(load_settings(emulator_environ(host_port, "bench")))


def measure(name: str, source: DataBackend, admin: str, total: int) -> dict[str, Any]:
    with contextlib.ExitStack() as stack:
        target, _ = postgres_backend(admin, stack)
        _, baseline_dsn = postgres_backend(admin, stack)
        read_seconds, copy_seconds, copied = copy_alone(baseline_dsn, source)
        options = MigrationOptions(tenants=[TENANT], batch_size=500)
        started = time.perf_counter()
        first = migrate(source, target, options, source_id=name)
        migrate_seconds = time.perf_counter() - started
        started = time.perf_counter()
        second = migrate(source, target, options, source_id=name)
        rerun_seconds = time.perf_counter() - started
        report = parity(source, target, tenants=[TENANT])
        return {
            "source": name,
            "records": first.records,
            "copied_rows_baseline": copied,
            "migrate_seconds": round(migrate_seconds, 2),
            "records_per_second": round(first.records / migrate_seconds),
            "read_alone_seconds": round(read_seconds, 2),
            "copy_alone_seconds": round(copy_seconds, 2),
            "ratio_to_read_plus_copy": round(migrate_seconds / (read_seconds + copy_seconds), 2),
            "rerun_seconds": round(rerun_seconds, 2),
            "rerun_rows_written": second.writes,
            "parity_seconds": round(report.seconds, 2),
            "parity_ok": report.ok,
            "problems": first.problem_count,
            "peak_rss_mb": round(maxrss_mb()),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--sources", default="sqlite,rtdb")
    args = parser.parse_args()
    results = []
    with postgres() as admin, tempfile.TemporaryDirectory() as tmp:
        for name in args.sources.split(","):
            if name == "sqlite":
                source = seed_sqlite(Path(tmp) / "sqlite", args.records)
                try:
                    results.append(measure("sqlite", source, admin, args.records))
                finally:
                    source.close()
            elif name == "rtdb":
                from botmox_rtdb.rules import rules_document
                from botmox_rtdb.testing import running_emulator

                with running_emulator(rules=rules_document()) as host_port:
                    backend = seed_rtdb(host_port, args.records)
                    try:
                        results.append(measure("rtdb", backend, admin, args.records))
                    finally:
                        backend.close()
            else:
                raise SystemExit(f"unknown source {name!r}")
            print(json.dumps(results[-1]), flush=True)


if __name__ == "__main__":
    main()
