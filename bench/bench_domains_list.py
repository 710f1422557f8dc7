"""Listing domain records: a page of 50 with ``q`` and ``sort`` from 100,000 bots of one tenant
(10 other tenants hold 100,000 bots each), done by the backend, beside the seed's approach (load
the tenant's whole collection and filter, sort and page it in Python) measured in the same run.

Target: p99 <= 25 ms for the backend's listing, and at least 10x faster than the baseline.
Then the latency of a create and of a patch through the port on the loaded dataset (what the
listing's indexes cost the writes).

A backend is a parameter (``--backend NAME``): a :class:`Target` builds a
:class:`~botmox_core.ports.domains.DomainDataBackend`, bulk-loads the dataset its own fastest way,
and reads a tenant's whole collection the way the seed did (one query). Listing is measured
through the port (``uow.records.list`` in a unit of work, as the services call it); the baseline
is the target's ``load_all`` plus :func:`~botmox_core.domain.listing.apply_query`. Add a backend
by adding a target to :data:`TARGETS`.

``BOTMOX_BENCH_QUICK=1`` shrinks the dataset to 10,000 bots per tenant; figures are printed
(``--json`` for machines), never asserted. Beside wall-clock latency, the calling thread's CPU
time per list is printed: for SQLite (in-process) that is all the work, what a list costs when
other load on the machine does not preempt it (for PostgreSQL it is the client's share only).

    python bench/bench_domains_list.py [--backend sqlite|postgres] [--json] [--rounds 200]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, Protocol

from botmox_core.backends.sqlite.backend import SqliteBackend
from botmox_core.backends.sqlite.domains import INSERT_PARTITION, INSERT_RECORD, encode_record
from botmox_core.domain.listing import ListQuery, apply_query
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.ports.domains import DomainDataBackend
from botmox_core.ports.repositories import read_unit_of_work

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
PER_TENANT = 10_000 if QUICK else 100_000
OTHER_TENANTS = 10
TENANT = "bench-tenant"
T0_MS = 1_790_000_000_000
STATUSES = ("offline", "prepare", "leveling", "profession", "farming", "banned")
PROJECTS = ("wow_tbc", "wow_midnight", "wow_classic")
CLASSES = ("warrior", "mage", "priest", "hunter", "rogue", "druid", "paladin", "warlock")
REALMS = ("Firemaw", "Gehennas", "Golemagg", "Pyrewood", "Everlook", "Venoxis")

#: (label, query): what a farm operator types: a name fragment, a status, a realm.
QUERIES: tuple[tuple[str, ListQuery], ...] = (
    ("q=bot-4242 sort=name", ListQuery(q="bot-4242", sort="name", limit=50)),
    ("q=farming sort=updated_at desc", ListQuery(q="farming", sort="updated_at", descending=True)),
    ("q=firemaw sort=name page=3", ListQuery(q="firemaw", sort="name", page=3)),
    ("q=vm-17 sort=level desc", ListQuery(q="vm-17", sort="level", descending=True)),
)


def bot(rng: random.Random, number: int) -> tuple[str, dict[str, Any]]:
    """One bot as the web client stores it (validated fields plus passthrough objects)."""
    created = T0_MS + number * 1000 + rng.randrange(1000)
    return f"bot{number:07d}-{rng.randrange(16**6):06x}", {
        "name": f"bot-{number}",
        "project_id": rng.choice(PROJECTS),
        "status": rng.choice(STATUSES),
        "level": rng.randrange(1, 81),
        "gold": round(rng.random() * 10_000, 2),
        "realm": rng.choice(REALMS),
        "vm_name": f"vm-{rng.randrange(400)}",
        "character": {
            "name": f"Char{rng.randrange(10**6)}",
            "level": rng.randrange(1, 81),
            "class": rng.choice(CLASSES),
            "server": rng.choice(REALMS),
            "faction": rng.choice(("alliance", "horde")),
        },
        "farm": {"total_gold": rng.randrange(10**6), "location": "Nagrand", "profile": "herbs"},
        "created_at": created,
        "updated_at": created + rng.randrange(10**7),
    }


def dataset() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(tenant, id, data) of every bot: the measured tenant first, then the others."""
    for index, tenant in enumerate([TENANT, *(f"other-{n}" for n in range(OTHER_TENANTS))]):
        rng = random.Random(index)
        for number in range(PER_TENANT):
            record_id, data = bot(rng, number)
            yield tenant, record_id, data


class Target(Protocol):
    """One backend under measurement."""

    name: str

    def open(self, workdir: Path) -> AbstractContextManager[DomainDataBackend]:
        """The backend on a fresh store in ``workdir``; closed (and dropped) on exit."""

    def load(
        self, backend: DomainDataBackend, rows: Iterator[tuple[str, str, dict[str, Any]]]
    ) -> int:
        """Bulk-load the bots; how many were loaded."""

    def load_all(self, backend: DomainDataBackend, tenant: str) -> list[DomainRecord]:
        """The seed's approach: the tenant's whole bot collection, decoded, in one query."""


class SqliteTarget:
    """The embedded SQLite backend on a WAL file (``synchronous=FULL``, as served)."""

    name = "sqlite"

    def __init__(self) -> None:
        self._reader: sqlite3.Connection | None = None

    @contextmanager
    def open(self, workdir: Path) -> Iterator[DomainDataBackend]:
        backend = SqliteBackend(workdir / "bench.sqlite3")
        try:
            yield backend
        finally:
            if self._reader is not None:
                self._reader.close()
            backend.close()

    def load(
        self, backend: DomainDataBackend, rows: Iterator[tuple[str, str, dict[str, Any]]]
    ) -> int:
        assert isinstance(backend, SqliteBackend)
        connection = sqlite3.connect(backend.path, isolation_level=None)
        connection.execute("PRAGMA cache_size = -524288")  # 512 MiB: the indexes grow at random
        count = 0
        try:
            connection.execute("BEGIN IMMEDIATE")
            collection = Collection.BOTS.value
            partitions: set[str] = set()

            def encoded() -> Iterator[dict[str, str]]:
                nonlocal count
                for tenant, record_id, data in rows:
                    if tenant not in partitions:  # the backend's own statements, in bulk
                        connection.execute(INSERT_PARTITION, (tenant, collection))
                        partitions.add(tenant)
                    columns = encode_record(record_id, data)
                    count += 1
                    yield {
                        "tenant_id": tenant,
                        "collection": collection,
                        "id": record_id,
                        "search": columns.search,
                        "sort_keys": columns.sort_keys,
                        "data": columns.data,
                    }

            connection.executemany(INSERT_RECORD, encoded())
            connection.execute("COMMIT")
            connection.execute("ANALYZE")
        finally:
            connection.close()
        return count

    def load_all(self, backend: DomainDataBackend, tenant: str) -> list[DomainRecord]:
        assert isinstance(backend, SqliteBackend)
        connection = self._reader or sqlite3.connect(backend.path, check_same_thread=False)
        self._reader = connection
        rows = connection.execute(
            "SELECT id, data FROM domain_records WHERE tenant_id = ? AND collection = ?",
            (tenant, Collection.BOTS.value),
        ).fetchall()
        return [DomainRecord(tenant, Collection.BOTS, row[0], json.loads(row[1])) for row in rows]


class PostgresTarget:
    """The Supabase backend on a real PostgreSQL (``--backend postgres``): a scratch database
    on ``BOTMOX_BENCH_POSTGRES_DSN`` / ``BOTMOX_TEST_POSTGRES_DSN`` (a superuser DSN), else a
    throwaway cluster (``initdb``/``pg_ctl``; shared_buffers 256MB, the load unlogged by
    ``fsync=off``: reads are what is measured). Loaded with ``COPY`` through the backend's own
    encoding (``dump_json``, ``search_text``), then ``VACUUM ANALYZE`` as autovacuum would."""

    name = "postgres"

    def __init__(self) -> None:
        self._reader: Any = None

    @contextmanager
    def open(self, workdir: Path) -> Iterator[DomainDataBackend]:
        from botmox_supabase.backend import PostgresDataBackend
        from botmox_supabase.migrations import apply_migrations
        from botmox_supabase.options import SupabaseOptions
        from botmox_supabase.testing import TemporaryPostgres, create_database, drop_database

        with contextlib.ExitStack() as stack:
            admin = os.environ.get("BOTMOX_BENCH_POSTGRES_DSN") or os.environ.get(
                "BOTMOX_TEST_POSTGRES_DSN"
            )
            if not admin:
                server = stack.enter_context(
                    TemporaryPostgres(settings={"shared_buffers": "256MB"})
                )
                admin = server.dsn
            dsn = create_database(admin)
            stack.callback(drop_database, admin, dsn.rsplit("/", 1)[1])
            apply_migrations(dsn)
            backend = PostgresDataBackend(
                SupabaseOptions(database_url=dsn, pool_min_size=1, pool_max_size=4)
            )
            stack.callback(backend.close)
            stack.callback(lambda: self._reader is not None and self._reader.close())
            yield backend

    def load(
        self, backend: DomainDataBackend, rows: Iterator[tuple[str, str, dict[str, Any]]]
    ) -> int:
        import psycopg
        from botmox_supabase.backend import PostgresDataBackend
        from botmox_supabase.domain_repositories import dump_json

        from botmox_core.domain.listing import search_text

        assert isinstance(backend, PostgresDataBackend)
        count = 0
        with psycopg.connect(backend.options.database_url, autocommit=True) as connection:
            with connection.cursor().copy(
                "copy botmox.bots (tenant_id, id, data, search) from stdin"
            ) as copy:
                for tenant, record_id, data in rows:
                    copy.write_row(
                        (tenant, record_id, dump_json(data), search_text(record_id, data))
                    )
                    count += 1
            # The search table too (filled by the bots' triggers): its trigram index's pending
            # list is merged by VACUUM, as autovacuum would after a load.
            connection.execute("vacuum analyze botmox.bots, botmox.domain_search")
        return count

    def load_all(self, backend: DomainDataBackend, tenant: str) -> list[DomainRecord]:
        import psycopg
        from botmox_supabase.backend import PostgresDataBackend

        assert isinstance(backend, PostgresDataBackend)
        if self._reader is None:
            self._reader = psycopg.connect(backend.options.database_url, autocommit=True)
        rows = self._reader.execute(
            "select id, data from botmox.bots where tenant_id = %s", (tenant,)
        ).fetchall()
        return [DomainRecord(tenant, Collection.BOTS, row[0], row[1]) for row in rows]


#: The backends this bench knows, by ``--backend`` name.
TARGETS: dict[str, Callable[[], Target]] = {"sqlite": SqliteTarget, "postgres": PostgresTarget}


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def timed(action: Callable[[], object], rounds: int, cpu: list[float] | None = None) -> list[float]:
    """Milliseconds of each of ``rounds`` calls (after one warm-up call); with ``cpu``, the
    calling thread's CPU milliseconds of each call are appended to it (for SQLite, in-process,
    all the work: what the call costs when the machine's other load does not preempt it)."""
    action()
    samples = []
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.thread_time()
        action()
        samples.append((time.perf_counter() - started) * 1000)
        if cpu is not None:
            cpu.append((time.thread_time() - started_cpu) * 1000)
    return samples


def run(target: Target, rounds: int, baseline_rounds: int) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-domains-") as workdir,
        target.open(Path(workdir)) as backend,
    ):
        started = time.perf_counter()
        loaded = target.load(backend, dataset())
        load_seconds = time.perf_counter() - started
        results: list[dict[str, Any]] = []
        for label, query in QUERIES:

            def listed(q: ListQuery = query) -> Any:
                with read_unit_of_work(backend) as uow:  # as the service lists
                    return uow.records.list(TENANT, Collection.BOTS, q)

            def baseline(q: ListQuery = query) -> Any:
                return apply_query(target.load_all(backend, TENANT), q)

            ours, seeds = listed(), baseline()
            assert [r.id for r in ours.records] == [r.id for r in seeds.records], label
            assert ours.total == seeds.total, label
            cpu: list[float] = []
            mine = timed(listed, rounds, cpu)
            seed = timed(baseline, baseline_rounds)
            results.append(
                {
                    "query": label,
                    "matches": ours.total,
                    "p50_ms": statistics.median(mine),
                    "p99_ms": percentile(mine, 0.99),
                    "cpu_p50_ms": statistics.median(cpu),
                    "cpu_p99_ms": percentile(cpu, 0.99),
                    "baseline_p50_ms": statistics.median(seed),
                    "baseline_p99_ms": percentile(seed, 0.99),
                    "speedup_p50": statistics.median(seed) / statistics.median(mine),
                }
            )
        write_results = writes(backend, rounds)
    return {
        "backend": target.name,
        "bots": loaded,
        "per_tenant": PER_TENANT,
        "load_seconds": round(load_seconds, 1),
        "rounds": rounds,
        "baseline_rounds": baseline_rounds,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "load_average": [round(load, 1) for load in os.getloadavg()],
        "results": results,
        "writes": write_results,
    }


def writes(backend: DomainDataBackend, rounds: int) -> list[dict[str, Any]]:
    """Milliseconds of a create and of a patch (status and ``updated_at``) of one bot, each a
    unit of work of its own committed as the services commit it, on the loaded dataset: what
    the listing's indexes cost the writes."""
    rng = random.Random(99)
    with backend.unit_of_work() as uow:
        existing = [
            r.id for r in uow.records.list(TENANT, Collection.BOTS, ListQuery(limit=200)).records
        ]
    created = iter(range(10**6))

    def create() -> None:
        number = PER_TENANT + next(created)
        record_id, data = bot(rng, number)
        with backend.unit_of_work() as uow:
            uow.records.add(DomainRecord(TENANT, Collection.BOTS, record_id, data))
            uow.commit()

    def patch() -> None:
        status = rng.choice(STATUSES)

        def change(record: DomainRecord) -> DomainRecord:
            data = {**record.data, "status": status, "updated_at": record.data["updated_at"] + 1}
            return DomainRecord(record.tenant_id, record.collection, record.id, data)

        with backend.unit_of_work() as uow:
            uow.records.modify(TENANT, Collection.BOTS, rng.choice(existing), change)
            uow.commit()

    results = []
    for label, action in (("create", create), ("patch status", patch)):
        samples = timed(action, rounds)
        results.append(
            {
                "write": label,
                "p50_ms": statistics.median(samples),
                "p99_ms": percentile(samples, 0.99),
            }
        )
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=sorted(TARGETS), default="sqlite")
    parser.add_argument("--rounds", type=int, default=60 if QUICK else 200)
    parser.add_argument("--baseline-rounds", type=int, default=10 if QUICK else 20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    report = run(TARGETS[args.backend](), args.rounds, args.baseline_rounds)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"{report['backend']}: {report['bots']:,} bots ({report['per_tenant']:,} per tenant, "
        f"loaded in {report['load_seconds']} s); {report['rounds']} rounds, baseline "
        f"{report['baseline_rounds']}; load average {report['load_average']}"
    )
    heads = ("matches", "p50", "p99", "cpu p50", "cpu p99", "seed p50", "seed p99", "x")
    print(f"{'query':34} " + " ".join(f"{head:>9}" for head in heads))
    for row in report["results"]:
        print(
            f"{row['query']:34} {row['matches']:9,} {row['p50_ms']:7.2f}ms {row['p99_ms']:7.2f}ms "
            f"{row['cpu_p50_ms']:7.2f}ms {row['cpu_p99_ms']:7.2f}ms "
            f"{row['baseline_p50_ms']:7.1f}ms {row['baseline_p99_ms']:7.1f}ms "
            f"{row['speedup_p50']:8.0f}x"
        )
    for row in report["writes"]:
        print(f"{row['write']:34} {'':9} {row['p50_ms']:7.2f}ms {row['p99_ms']:7.2f}ms")


if __name__ == "__main__":
    main()
