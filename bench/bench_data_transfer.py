"""Export and import of one tenant's domain data on SQLite (``botmox data export|import``).

Loads N bot records (default 100,000, bot-shaped JSON of ~300 bytes) into a SQLite database,
then measures: export to a file, import into an empty database, and a second import of the same
file (which must change nothing): records/s and the peak memory of each phase (tracemalloc's
peak of Python allocations, and the process's peak RSS growth).

    .venv/bin/python bench/bench_data_transfer.py [--records 100000]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.services.domains.transfer import export_tenant, import_tenant

T0 = 1_767_225_600_000


def load(backend: SqliteBackend, tenant: str, count: int) -> None:
    batch = 5000
    for start in range(0, count, batch):
        with backend.unit_of_work() as uow:
            for index in range(start, min(count, start + batch)):
                uow.records.add(
                    DomainRecord(
                        tenant,
                        Collection.BOTS,
                        f"bot-{index:07d}",
                        {
                            "status": ["prepare", "leveling", "farming"][index % 3],
                            "project_id": "wow_tbc",
                            "vm_id": f"vm-{index % 500}",
                            "character": {"name": f"Char{index}", "level": index % 70 + 1},
                            "notes": "farm bot " * 5,
                            "total_farmed": index * 1.5,
                            "created_at": T0 + index,
                            "updated_at": T0 + index,
                        },
                    )
                )
            uow.commit()


def measure(label: str, count: int, run: Callable[[], Any], trace: bool) -> Any:
    """Time ``run`` (without tracing: tracemalloc slows Python down several times), then, with
    ``trace``, run it again under tracemalloc for its peak of Python allocations."""
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    result = run()
    elapsed = time.perf_counter() - started
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    line = (
        f"{label:<16} {elapsed:7.2f} s  {count / elapsed:9.0f} records/s  "
        f"peak RSS growth {(rss_after - rss_before) / 1024:6.1f} MiB"
    )
    if trace:
        tracemalloc.start()
        run()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        line += f"  peak Python allocations {peak / 2**20:6.1f} MiB"
    print(line, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument(
        "--trace", action="store_true", help="also measure peak Python allocations (slow)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as tmp:
        root = Path(tmp)
        source = SqliteBackend(root / "source.sqlite3")
        target = SqliteBackend(root / "target.sqlite3")
        try:
            load(source, "t1", args.records)
            export_file = root / "t1.jsonl"
            print(f"{args.records} bot records, SQLite (synchronous=NORMAL, WAL)")

            def export() -> None:
                with open(export_file, "wb") as out:
                    export_tenant(source, "t1", out)

            measure("export", args.records, export, args.trace)
            print(f"{'':<16} file {export_file.stat().st_size / 2**20:.1f} MiB")
            first = measure(
                "import (new)",
                args.records,
                lambda: import_tenant(target, "t1", export_file),
                False,
            )
            assert first.counts["bots"]["created"] == args.records, first.counts
            again = measure(
                "import (again)",
                args.records,
                lambda: import_tenant(target, "t1", export_file),
                args.trace,
            )
            assert again.counts["bots"]["unchanged"] == args.records, again.counts
        finally:
            source.close()
            target.close()


if __name__ == "__main__":
    main()
