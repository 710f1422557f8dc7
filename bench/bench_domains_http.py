"""Benchmark of the domain routes the Bot-Mox web client polls, over HTTP on a real server, under
an open-loop load generator (autocannon and ``bench/open_loop.js``, from npm/Node), beside
``GET /api/v1/health/live`` (the framework floor) in the same run.

The web client lists its bots every 4-7 s and its settings page can refetch the settings tree in
a tight loop (hundreds of requests a second). For each data backend (the embedded SQLite
default, and Supabase/PostgreSQL when the plugin and a PostgreSQL server are available), with
``BOTS`` bots of one tenant (default 20,000; ``bench_domains_list.bot`` shapes) and a settings
tree of a few KB:

* ``health/live`` at the maximum rate (the floor);
* ``GET /api/v1/bots?q=farming&sort=updated_at&order=desc`` (a page of 50 of about a sixth of the
  bots) at the maximum rate, then evenly paced at 50 and 200 requests/s;
* ``GET /api/v1/settings`` at the maximum rate, then paced at 200 and 500 requests/s;
* the same list paced at 50/s and the settings read paced at 200/s **while** a writer PATCHes
  one bot (50/s) and the settings (20/s) at the same time, each paced too: reads must not queue
  behind writes (they run in the backend's read unit);
* p50/p99 latency (from when each request was due, for the paced runs), requests/s, non-2xx
  answers, the server's CPU time per request, the load average after each run.

The rate limiter stays in the path with limits the bench never reaches. ``BOTMOX_BENCH_QUICK=1``
shortens every run (smoke); ``BOTMOX_BENCH_SECONDS`` sets one run's duration (default 10);
``BOTMOX_BENCH_BACKENDS`` (``sqlite,postgres``) narrows the backends; ``BOTMOX_BENCH_BOTS`` sets
the number of bots. Figures are printed, never asserted.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import tempfile
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench_domains_list import bot
from bench_resolve import (
    SERVER_PID,
    UNLIMITED,
    autocannon,
    load,
    paced,
    postgres_env,
    row,
)

from botmox_core.bootstrap import bootstrap
from botmox_core.config import load_settings
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.ports.domains import after_bulk_write
from botmox_core.testing.server import RunningServer, running_server

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
SECONDS = int(os.environ.get("BOTMOX_BENCH_SECONDS", "3" if QUICK else "10"))
BOTS = int(os.environ.get("BOTMOX_BENCH_BOTS", "2000" if QUICK else "20000"))
TENANT = "bench"
LIST_PATH = "/api/v1/bots?q=farming&sort=updated_at&order=desc&limit=50"
SETTINGS_PATH = "/api/v1/settings"
#: A settings tree of the shape the web client keeps (a few KB).
SETTINGS: dict[str, Any] = {
    "ui": {
        "theme": "dark",
        "resource_tree": {f"node-{n}": {"open": n % 2 == 0} for n in range(40)},
    },
    "notifications": {"ban": True, "low_gold": {"enabled": True, "threshold": 500}},
    "projects": {f"project-{n}": {"name": f"Project {n}", "max_bots": 50 + n} for n in range(20)},
}


def prepare(server: RunningServer) -> tuple[str, str]:
    """``BOTS`` bots and a settings tree for the tenant, written through the server's own backend;
    the tenant's API token and one bot's id (the writer's target)."""
    core = bootstrap(load_settings(dict(server.env)))
    try:
        token = core.tokens.create(TENANT, "api", user_id="web").secret
        rng = random.Random(7)
        bots = [bot(rng, number) for number in range(BOTS)]
        for start in range(0, len(bots), 500):
            with core.backend.unit_of_work() as uow:
                uow.records.put_many(  # type: ignore[attr-defined]
                    [
                        DomainRecord(TENANT, Collection.BOTS, record_id, data)
                        for record_id, data in bots[start : start + 500]
                    ]
                )
                uow.commit()
        with core.backend.unit_of_work() as uow:
            uow.settings.modify(TENANT, lambda _tree: SETTINGS)  # type: ignore[attr-defined]
            uow.commit()
        after_bulk_write(core.backend)  # as `botmox data import` ends (PostgreSQL: VACUUM ANALYZE)
    finally:
        core.close()
    return token, bots[0][0]


def alongside(runs: Mapping[str, Callable[[], dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Run several load generators at once (each in its own process); their summaries."""
    results: dict[str, dict[str, Any]] = {}
    failures: list[BaseException] = []

    def run(label: str, action: Callable[[], dict[str, Any]]) -> None:
        try:
            results[label] = action()
        except BaseException as exc:  # reported after the others finish
            failures.append(exc)

    threads = [threading.Thread(target=run, args=item) for item in runs.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return results


def measure(server: RunningServer, label: str) -> None:
    command = autocannon()
    SERVER_PID[:] = [server.process.pid]
    token, target = prepare(server)
    auth = {"Authorization": f"Bearer {token}"}
    writing = {**auth, "Content-Type": "application/json"}
    list_url, settings_url = server.url + LIST_PATH, server.url + SETTINGS_PATH
    load(command, list_url, rate=None, seconds=2, headers=auth)  # warm up: threads, caches
    print(f"\n{label}: {BOTS:,} bots, {SECONDS} s per run")
    print(
        f"{'run':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} {'CPU ms':>7}"
        "  load average"
    )
    floor = load(command, server.url + "/api/v1/health/live", rate=None, seconds=SECONDS)
    print(row("health/live, max", floor))
    for name, url, rates in (
        ("bots list", list_url, (50, 200)),
        ("settings", settings_url, (200, 500)),
    ):
        print(row(f"{name}, max", load(command, url, rate=None, seconds=SECONDS, headers=auth)))
        for rate in rates:
            figures = paced(url, rate=rate, seconds=SECONDS, headers=auth)
            print(row(f"{name}, {rate}/s paced", figures))
    SERVER_PID.clear()  # CPU per request means nothing for runs sharing the server

    def at(url: str, rate: int, **request: Any) -> Callable[[], dict[str, Any]]:
        return lambda: paced(url, rate=rate, seconds=SECONDS, **request)

    patch = {"method": "PATCH", "headers": writing}
    together = alongside(
        {
            "bots list, 50/s paced": at(list_url, 50, headers=auth),
            "settings, 200/s paced": at(settings_url, 200, headers=auth),
            "  writer: PATCH bot, 50/s": at(
                f"{server.url}/api/v1/bots/{target}",
                50,
                **patch,
                body=json.dumps({"status": "farming", "farm/location": "Nagrand"}),
            ),
            "  writer: PATCH settings, 20/s": at(
                f"{server.url}/api/v1/settings/notifications", 20, **patch, body='{"ban": true}'
            ),
        }
    )
    print("at once (reads while writes):")
    for name in sorted(together, key=lambda name: name.startswith(" ")):
        print(row(name, together[name]))


def main() -> None:
    backends = os.environ.get("BOTMOX_BENCH_BACKENDS", "sqlite,postgres").split(",")
    with tempfile.TemporaryDirectory(prefix="botmox-bench-domains-http-") as work:
        if "sqlite" in backends:
            env = {"BOTMOX_PLUGINS": "none", **UNLIMITED}
            with running_server(Path(work) / "sqlite", env) as server:
                measure(server, "sqlite (embedded)")
        if "postgres" in backends:
            with ExitStack() as stack:
                pg = stack.enter_context(postgres_env())
                if pg is not None:
                    server = stack.enter_context(
                        running_server(Path(work) / "postgres", {**pg, **UNLIMITED})
                    )
                    measure(server, "supabase (PostgreSQL)")


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as failed:
        raise SystemExit(f"a load generator failed: {failed.stderr or failed}") from None
