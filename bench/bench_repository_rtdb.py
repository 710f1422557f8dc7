"""Repository operations per second: RTDB (firebase-admin over HTTP to the shipped emulator)
beside the embedded SQLite backend (a file in a temporary directory), in the same run.

Each operation is one unit of work (committed when it writes), as the services use them.
The RTDB figures measure the plugin + firebase-admin + HTTP on loopback + the pure-Python
emulator; against the real service add the network round trips (one per read, two or more per
conditional write). ``BOTMOX_BENCH_QUICK=1`` shrinks the workload (CI smoke); figures are
printed, never asserted.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
from botmox_rtdb import build_backend
from botmox_rtdb.rules import rules_document
from botmox_rtdb.testing import emulator_environ, running_emulator

from botmox_core.backends.sqlite.backend import SqliteBackend
from botmox_core.config import load_settings
from botmox_core.models import (
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
from botmox_core.ports import DataBackend

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
N = 60 if QUICK else 400
RELEASES = 30 if QUICK else 150
THREADS = 4
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SHA = "ab" * 32
TENANT = "bench-tenant"
SCOPE = ReleaseScope("fishing", "windows", "stable")


def _vm(n: int) -> Vm:
    return Vm(TENANT, f"vm-{n:08d}", "user-1", VmStatus.ACTIVE, NOW, NOW,
              metadata={"rack": "r1", "slot": n})


def _lease(lease_id: str) -> Lease:
    return Lease(lease_id, TENANT, "user-1", "vm-00000001", "fishing", LeaseStatus.ACTIVE,
                 SHA, NOW, NOW + timedelta(minutes=5))


def _heartbeat(lease: Lease) -> Lease:
    return attrs.evolve(lease, expires_at=lease.expires_at + timedelta(seconds=1),
                        previous_token_hash=lease.token_hash)


def _committed(backend: DataBackend, action: Callable[[Any], Any]) -> Any:
    with backend.unit_of_work() as uow:
        result = action(uow)
        uow.commit()
    return result


def _read(backend: DataBackend, action: Callable[[Any], Any]) -> Any:
    with backend.unit_of_work() as uow:
        return action(uow)


def _rate(count: int, action: Callable[[int], Any]) -> float:
    started = time.perf_counter()
    for n in range(count):
        action(n)
    return count / (time.perf_counter() - started)


def _concurrent_rate(count: int, action: Callable[[int], Any]) -> float:
    per_thread = max(1, count // THREADS)
    barrier = threading.Barrier(THREADS)

    def run(worker: int) -> None:
        barrier.wait(timeout=30)
        for step in range(per_thread):
            action(worker * per_thread + step)

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        for future in [pool.submit(run, w) for w in range(THREADS)]:
            future.result()
    return per_thread * THREADS / (time.perf_counter() - started)


def measure(backend: DataBackend) -> dict[str, float]:
    """Operations/s of each workload on ``backend`` (fresh and empty)."""
    figures: dict[str, float] = {}
    figures["vms.upsert + commit"] = _rate(N, lambda n: _committed(
        backend, lambda uow: uow.vms.upsert(_vm(n))))
    figures["vms.get"] = _rate(N, lambda n: _read(
        backend, lambda uow: uow.vms.get(TENANT, f"vm-{n:08d}")))
    lease_ids = [f"lease_{uuid.uuid4().hex}" for _ in range(N)]
    figures["leases.add + commit"] = _rate(N, lambda n: _committed(
        backend, lambda uow: uow.leases.add(_lease(lease_ids[n]))))
    figures["leases.modify (heartbeat)"] = _rate(N, lambda n: _committed(
        backend, lambda uow: uow.leases.modify(TENANT, lease_ids[n], _heartbeat)))
    hot = lease_ids[0]
    figures[f"leases.modify, {THREADS} threads, one lease"] = _concurrent_rate(
        N, lambda n: _committed(backend, lambda uow: uow.leases.modify(TENANT, hot, _heartbeat)))
    figures["audit.append + commit"] = _rate(N, lambda n: _committed(
        backend, lambda uow: uow.audit.append(DownloadAuditEntry(
            TENANT, AuditEvent.RESOLVE_SUCCESS, AuditResult.ALLOWED, NOW, lease_id=hot))))
    figures["audit.list(limit=50)"] = _rate(N, lambda n: _read(
        backend, lambda uow: uow.audit.list(TENANT, limit=50)))
    figures[f"releases.add + commit (to {RELEASES})"] = _rate(RELEASES, lambda n: _committed(
        backend, lambda uow: uow.releases.add(Release(
            0, TENANT, "fishing", "windows", "stable", f"1.0.{n}", f"fishing/1.0.{n}.zip",
            SHA, 10, ReleaseStatus.ACTIVE, NOW))))
    figures["releases.find"] = _rate(N, lambda n: _read(
        backend, lambda uow: uow.releases.find(TENANT, SCOPE, f"1.0.{n % RELEASES}")))
    return figures


def main() -> None:
    """Run every workload on SQLite and on RTDB (emulator) and print a table."""
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = SqliteBackend(Path(tmp) / "bench.sqlite3")
        try:
            results["sqlite (file)"] = measure(sqlite)
        finally:
            sqlite.close()
    with running_emulator(rules=rules_document()) as host_port:
        rtdb = build_backend(load_settings(emulator_environ(host_port, "bench")))
        try:
            results["rtdb (emulator)"] = measure(rtdb)
        finally:
            rtdb.close()
    names = list(results)
    print(f"repository operations/s (N={N}, {THREADS} threads where noted, "
          f"{'quick' if QUICK else 'full'} run)")
    print(f"{'operation':<44}" + "".join(f"{name:>18}" for name in names) + f"{'sqlite/rtdb':>13}")
    for operation in results[names[0]]:
        values = [results[name][operation] for name in names]
        ratio = values[0] / values[1] if values[1] else float("inf")
        print(f"{operation:<44}" + "".join(f"{v:>18.0f}" for v in values) + f"{ratio:>12.1f}x")


if __name__ == "__main__":
    main()
