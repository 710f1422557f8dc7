"""Repository operations per second on an in-memory SQLite backend: what record mapping costs.

An in-memory database has no fsync and no network, so these figures are dominated by Python:
the repositories, the record codec (model <-> row) and the sqlite3 driver. Use it to compare two
versions of the mapping code in the same run (``PYTHONPATH=<other checkout>/src``). Each
operation is one unit of work (committed when it writes), one thread. ``BOTMOX_BENCH_QUICK=1``
shrinks the workload; figures are printed (``--json`` for machines), never asserted.

    python bench/bench_repository_sqlite.py [--json] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs

from botmox_core.backends.sqlite.backend import SqliteBackend
from botmox_core.models import (
    Agent,
    AgentStatus,
    Assignment,
    AuditEvent,
    AuditResult,
    Command,
    CommandStatus,
    DownloadAuditEntry,
    Lease,
    LeaseStatus,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Vm,
    VmStatus,
)

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
N = 300 if QUICK else 3000
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SHA = "ab" * 32
TENANT = "bench-tenant"
USER = "user-1"
SCOPE = ReleaseScope("fishing", "windows", "stable")
LEASES = 16


def _lease(lease_id: str) -> Lease:
    return Lease(lease_id, TENANT, USER, "vm-00000001", "fishing", LeaseStatus.ACTIVE, SHA, NOW,
                 NOW + timedelta(minutes=5))


def _operations(backend: SqliteBackend) -> dict[str, Callable[[int], None]]:
    lease_ids = [f"lease_{n:04d}" for n in range(LEASES)]
    with backend.unit_of_work() as uow:
        for lease_id in lease_ids:
            uow.leases.add(_lease(lease_id))
        release = uow.releases.add(Release(0, TENANT, *attrs.astuple(SCOPE), "1.0.0", "k/1.0.0",
                                           SHA, 1024, ReleaseStatus.ACTIVE, NOW))
        uow.assignments.put(Assignment(TENANT, *attrs.astuple(SCOPE), release.id, NOW))
        uow.agents.add(Agent("agt_bench", TENANT, AgentStatus.ACTIVE, NOW, NOW,
                             capabilities=("proxmox", "syncthing")))
        for n in range(20):
            uow.commands.add(Command(f"cmd_{n:04d}", TENANT, "agt_bench", "proxmox.start",
                                     CommandStatus.QUEUED, NOW, NOW + timedelta(days=1), NOW,
                                     payload={"vm": n}))
        uow.commit()
    counter = iter(range(10**9))

    def lease_get(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.leases.get(TENANT, lease_ids[n % LEASES])

    def vm_upsert(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.vms.upsert(Vm(TENANT, f"vm-{n % 500:08d}", USER, VmStatus.ACTIVE, NOW, NOW,
                              metadata={"slot": n, "rack": "r1"}))
            uow.commit()

    def heartbeat(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.leases.modify(TENANT, lease_ids[n % LEASES], lambda cur: attrs.evolve(
                cur, expires_at=cur.expires_at + timedelta(seconds=1), last_heartbeat_at=NOW,
                previous_token_hash=cur.token_hash))
            uow.commit()

    def resolve(n: int) -> None:
        lease_id = lease_ids[n % LEASES]
        with backend.unit_of_work() as uow:
            lease = uow.leases.get(TENANT, lease_id)
            assert lease is not None
            assignment = uow.assignments.get(TENANT, USER, SCOPE) or uow.assignments.get(
                TENANT, None, SCOPE)
            assert assignment is not None
            found = uow.releases.get(TENANT, assignment.release_id)
            assert found is not None
            uow.audit.append(DownloadAuditEntry(
                TENANT, AuditEvent.DOWNLOAD_URL_ISSUED, AuditResult.ALLOWED, NOW,
                lease_id=lease_id, user_id=USER, vm_uuid=lease.vm_uuid, module=SCOPE.module,
                platform=SCOPE.platform, channel=SCOPE.channel, release_id=found.id,
                request_ip="127.0.0.1", url_expires_at=NOW))
            uow.commit()

    def release_list(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.releases.list(TENANT)

    def command_list(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.commands.list(TENANT, agent_id="agt_bench", limit=20)

    def command_modify(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.commands.modify(TENANT, f"cmd_{n % 20:04d}", lambda cur: attrs.evolve(
                cur, updated_at=NOW + timedelta(microseconds=next(counter))))
            uow.commit()

    def agent_touch(n: int) -> None:
        with backend.unit_of_work() as uow:
            uow.agents.modify(TENANT, "agt_bench", lambda cur: attrs.evolve(
                cur, last_seen_at=NOW + timedelta(microseconds=next(counter))))
            uow.commit()

    return {
        "lease get": lease_get,
        "vm upsert": vm_upsert,
        "heartbeat (modify)": heartbeat,
        "resolve (5 ops + commit)": resolve,
        "release list (2 rows)": release_list,
        "command list (20 rows)": command_list,
        "command modify": command_modify,
        "agent modify": agent_touch,
    }


def _measure(operation: Callable[[int], None]) -> float:
    """Operations per second over N calls."""
    started = time.perf_counter()
    for n in range(N):
        operation(n)
    return N / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument("--rounds", type=int, default=5, help="measurements per operation")
    args = parser.parse_args()
    backend = SqliteBackend()
    try:
        operations = _operations(backend)
        figures: dict[str, dict[str, float]] = {}
        for name, operation in operations.items():
            operation(0)  # warm up
            rounds = [_measure(operation) for _ in range(args.rounds)]
            figures[name] = {"ops_per_s_median": statistics.median(rounds),
                             "ops_per_s_best": max(rounds)}
    finally:
        backend.close()
    if args.json:
        print(json.dumps({"machine": platform.machine(), "n": N, "figures": figures}, indent=2))
        return
    print(f"# sqlite in memory ({platform.machine()}, {os.cpu_count()} cpu, Python "
          f"{platform.python_version()}; {N} per measurement, {args.rounds} rounds)")
    print(f"{'operation':28} {'median ops/s':>12} {'best ops/s':>11}")
    for name, row in figures.items():
        print(f"{name:28} {row['ops_per_s_median']:>12.0f} {row['ops_per_s_best']:>11.0f}")


if __name__ == "__main__":
    main()
