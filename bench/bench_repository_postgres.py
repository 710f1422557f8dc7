"""Repository operations per second: the Supabase backend on a real PostgreSQL beside the embedded
SQLite backend, in the same run, on the same machine.

PostgreSQL is ``BOTMOX_BENCH_POSTGRES_DSN`` / ``BOTMOX_TEST_POSTGRES_DSN`` (a superuser DSN; a
scratch database is created and dropped) or a throwaway cluster started with ``initdb``/``pg_ctl``
with ``fsync=on`` — durability comparable to SQLite's default ``synchronous=FULL``. Both backends
are built through the plugin registry, as ``DATA_BACKEND=sqlite|supabase`` would build them.

Each operation is one unit of work (committed when it writes), as the services use them;
``resolve`` is the repository work of one resolve-download (lease, two assignment lookups,
release, audit append, commit). Threads share one backend. ``BOTMOX_BENCH_QUICK=1`` shrinks the
workload (CI smoke); figures are printed (``--json`` for machines), never asserted.

    python bench/bench_repository_postgres.py [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
from botmox_supabase.migrations import apply_migrations
from botmox_supabase.testing import (
    TemporaryPostgres,
    create_database,
    drop_database,
)

from botmox_core.config import load_settings
from botmox_core.models import (
    Assignment,
    AuditEvent,
    AuditResult,
    DownloadAuditEntry,
    Lease,
    LeaseStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Vm,
    VmStatus,
)
from botmox_core.plugin import load_registry
from botmox_core.ports import DataBackend

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
N = 100 if QUICK else 1000
THREADS = 4
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SHA = "ab" * 32
TENANT = "bench-tenant"
USER = "user-1"
SCOPE = ReleaseScope("fishing", "windows", "stable")


def _lease(lease_id: str) -> Lease:
    return Lease(
        lease_id,
        TENANT,
        USER,
        "vm-00000001",
        "fishing",
        LeaseStatus.ACTIVE,
        SHA,
        NOW,
        NOW + timedelta(minutes=5),
    )


def _seed(backend: DataBackend) -> tuple[list[str], int]:
    """Leases to heartbeat, and a release assigned as the tenant default."""
    lease_ids = [f"lease_{uuid.uuid4().hex}" for _ in range(THREADS * 4)]
    with backend.unit_of_work() as uow:
        for lease_id in lease_ids:
            uow.leases.add(_lease(lease_id))
        release = uow.releases.add(
            Release(
                0,
                TENANT,
                *attrs.astuple(SCOPE),
                "1.0.0",
                "fishing/1.0.0.zip",
                SHA,
                1024,
                ReleaseStatus.ACTIVE,
                NOW,
            )
        )
        uow.assignments.put(Assignment(TENANT, *attrs.astuple(SCOPE), release.id, NOW))
        uow.commit()
    return lease_ids, release.id


def _operations(backend: DataBackend, lease_ids: list[str]) -> dict[str, Callable[[int], None]]:
    def vm_upsert(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.vms.upsert(
                Vm(
                    TENANT,
                    f"vm-{uuid.uuid4().hex[:16]}",
                    USER,
                    VmStatus.ACTIVE,
                    NOW,
                    NOW,
                    metadata={"slot": n},
                )
            )
            uow.commit()

    def lease_get(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.leases.get(TENANT, lease_ids[n % len(lease_ids)])

    def heartbeat(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.leases.modify(
                TENANT,
                lease_ids[n % len(lease_ids)],
                lambda cur: attrs.evolve(
                    cur,
                    expires_at=cur.expires_at + timedelta(seconds=1),
                    last_heartbeat_at=NOW,
                    previous_token_hash=cur.token_hash,
                ),
            )
            uow.commit()

    def release_add(n: int) -> None:
        version = f"2.{n}.{uuid.uuid4().hex[:8]}"
        with backend.unit_of_work() as uow:
            uow.releases.add(
                Release(
                    0,
                    TENANT,
                    *attrs.astuple(SCOPE),
                    version,
                    f"k/{version}",
                    SHA,
                    1024,
                    ReleaseStatus.ACTIVE,
                    NOW,
                )
            )
            uow.commit()

    def resolve(n: int) -> None:
        lease_id = lease_ids[n % len(lease_ids)]
        with backend.unit_of_work() as uow:
            lease = uow.leases.get(TENANT, lease_id)
            assert lease is not None
            assignment = uow.assignments.get(TENANT, USER, SCOPE) or uow.assignments.get(
                TENANT, None, SCOPE
            )
            assert assignment is not None
            release = uow.releases.get(TENANT, assignment.release_id)
            assert release is not None
            uow.audit.append(
                DownloadAuditEntry(
                    TENANT,
                    AuditEvent.DOWNLOAD_URL_ISSUED,
                    AuditResult.ALLOWED,
                    NOW,
                    lease_id=lease_id,
                    user_id=USER,
                    vm_uuid=lease.vm_uuid,
                    module=SCOPE.module,
                    platform=SCOPE.platform,
                    channel=SCOPE.channel,
                    release_id=release.id,
                    request_ip="127.0.0.1",
                    url_expires_at=NOW,
                )
            )
            uow.commit()

    return {
        "lease get": lease_get,
        "vm upsert": vm_upsert,
        "heartbeat (modify)": heartbeat,
        "release add": release_add,
        "resolve (5 ops + commit)": resolve,
    }


def _measure(operation: Callable[[int], None], threads: int) -> dict[str, float]:
    latencies: list[float] = []
    lock = threading.Lock()
    counter = iter(range(N))

    def worker() -> None:
        mine: list[float] = []
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            started = time.perf_counter()
            operation(n)
            mine.append(time.perf_counter() - started)
        with lock:
            latencies.extend(mine)

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(worker) for _ in range(threads)]:
            future.result()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "ops_per_s": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


@contextmanager
def _postgres_dsn() -> Iterator[tuple[str, str]]:
    """(DSN of a scratch database at the latest schema, description of the server)."""
    external = os.environ.get("BOTMOX_BENCH_POSTGRES_DSN") or os.environ.get(
        "BOTMOX_TEST_POSTGRES_DSN"
    )
    if external:
        dsn = create_database(external)
        try:
            apply_migrations(dsn)
            yield dsn, "external server"
        finally:
            drop_database(external, dsn.rsplit("/", 1)[1])
        return
    with TemporaryPostgres(settings={"fsync": "on", "full_page_writes": "on"}) as cluster:
        dsn = create_database(cluster.dsn)
        apply_migrations(dsn)
        yield dsn, f"throwaway cluster ({cluster.bindir}, fsync=on, loopback TCP)"


def _run_backend(backend: DataBackend) -> dict[str, dict[str, dict[str, float]]]:
    lease_ids, _ = _seed(backend)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name, operation in _operations(backend, lease_ids).items():
        operation(0)  # warm up: connections, caches
        results[name] = {
            f"{t} thread{'s' if t > 1 else ''}": _measure(operation, t) for t in (1, THREADS)
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    registry = load_registry({})
    figures: dict[str, Any] = {
        "machine": (
            f"{platform.machine()}, {os.cpu_count()} cpu, Python {platform.python_version()}"
        ),
        "operations_per_measure": N,
        "backends": {},
    }
    with tempfile.TemporaryDirectory() as tmp, _postgres_dsn() as (dsn, server):
        environs = {
            "sqlite (synchronous=FULL, WAL file in tmp)": {
                "DATA_BACKEND": "sqlite",
                "BOTMOX_DATA_DIR": str(Path(tmp) / "data"),
            },
            f"supabase ({server})": {
                "DATA_BACKEND": "supabase",
                "BOTMOX_SUPABASE_DATABASE_URL": dsn,
                "BOTMOX_SUPABASE_POOL_MAX_SIZE": str(THREADS * 2),
            },
        }
        for label, environ in environs.items():
            settings = load_settings(environ=environ)
            backend = registry.data_backends.get(settings.data_backend)(settings)
            try:
                figures["backends"][label] = _run_backend(backend)
            finally:
                backend.close()
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    print(f"# repository operations ({figures['machine']}; {N} per measurement)")
    for label, results in figures["backends"].items():
        print(f"\n## {label}")
        print(f"{'operation':28} {'threads':>7} {'ops/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
        for operation, by_threads in results.items():
            for threads, row in by_threads.items():
                print(
                    f"{operation:28} {threads.split()[0]:>7} {row['ops_per_s']:>10.0f}"
                    f" {row['p50_ms']:>8.2f} {row['p99_ms']:>8.2f}"
                )


if __name__ == "__main__":
    main()
