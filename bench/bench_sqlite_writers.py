"""Bench: two processes writing one SQLite file — the download audit's group-committed appends,
as two ``botmox serve`` workers do under a resolve load — with the writer queue
(``<database>-writer`` flock, :mod:`botmox_core.backends.sqlite.writer_queue`) and without it
(SQLite's busy handler alone), alternating in the same run.

Per mode: appends per second over both processes, p50/p99/max of one append's latency (from the
call to its durable commit), and commits per second. ``synchronous=FULL`` as the server runs.

    python bench/bench_sqlite_writers.py [--seconds 5] [--threads 16] [--rounds 3]

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.backends.sqlite.writer_queue import WriterQueue
from botmox_core.models import AuditEvent, AuditResult, DownloadAuditEntry

TENANT = "bench"


def _worker(db: str, queue: bool, seconds: float, threads: int, start_at: float, out: Any) -> None:
    if not queue:
        WriterQueue.acquire = lambda self, timeout: False  # type: ignore[method-assign]
    backend = SqliteBackend(db)
    latencies: list[float] = []
    lock = threading.Lock()

    def loop() -> None:
        mine: list[float] = []
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            began = time.perf_counter()
            backend.append_audit(
                DownloadAuditEntry(
                    TENANT,
                    AuditEvent.DOWNLOAD_URL_ISSUED,
                    AuditResult.ALLOWED,
                    datetime.now(UTC),
                    lease_id="lease-1",
                    request_ip="127.0.0.1",
                )
            )
            mine.append(time.perf_counter() - began)
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=loop) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    batches = backend._audit_commits.last_batch_sizes
    backend.close()
    out.put((latencies, statistics.mean(batches) if batches else 0.0))


def run(queue: bool, seconds: float, threads: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.sqlite3")
        SqliteBackend(db).close()  # schema once, before the race
        context = multiprocessing.get_context("spawn")
        out = context.Queue()
        start_at = time.time() + 2.0
        processes = [
            context.Process(target=_worker, args=(db, queue, seconds, threads, start_at, out))
            for _ in range(2)
        ]
        for process in processes:
            process.start()
        results = [out.get() for _ in processes]
        for process in processes:
            process.join()
    latencies = sorted(x for lat, _ in results for x in lat)
    appends = len(latencies)
    batch = statistics.mean(b for _, b in results)
    return {
        "appends_per_s": appends / seconds,
        "p50_ms": latencies[appends // 2] * 1000,
        "p99_ms": latencies[int(appends * 0.99)] * 1000,
        "max_ms": latencies[-1] * 1000,
        "commits_per_s": appends / seconds / batch if batch else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=16, help="appending threads per process")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"2 processes x {args.threads} threads, {args.seconds:g} s per run, synchronous=FULL")
    print(f"{'mode':<16}{'appends/s':>11}{'commits/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for _ in range(args.rounds):
        for queue in (False, True):
            figures = run(queue, args.seconds, args.threads)
            mode = "writer queue" if queue else "busy handler"
            print(
                f"{mode:<16}{figures['appends_per_s']:>11,.0f}{figures['commits_per_s']:>11,.0f}"
                f"{figures['p50_ms']:>9.2f}{figures['p99_ms']:>9.2f}{figures['max_ms']:>9.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
