"""Benchmark of ``POST /api/v1/artifacts/resolve-download`` under an open-loop load generator
(autocannon, from npm), beside ``GET /api/v1/health/live`` (the framework floor) in the same run.

For each data backend (the embedded SQLite default, and Supabase/PostgreSQL when the plugin and a
PostgreSQL server are available) and each worker count (1 and 2, ``botmox serve --workers``):

* ``health/live`` at the maximum rate (the floor);
* resolve-download at the maximum rate, then at fixed 200, 500 and 1,000 requests/s twice:
  with autocannon's ``-R`` (which sends each connection's share of a second back to back at the
  start of the second: a burst every second), and evenly paced by ``bench/open_loop.js`` (request
  i due at start + i/rate, latency counted from when it was due: the steady arrival of a fleet);
* p50/p99 latency, requests/s, non-2xx answers, the server's CPU time per request (user +
  system of the server and its workers: the figure the machine's other load hardly moves); the
  machine's load average after each run.

Every resolve is a real attempt: the token is checked, the lease and assignment read, a URL
signed and an audit row written (and counted at the end: one row per 2xx answer at least).

autocannon is taken from ``BOTMOX_BENCH_AUTOCANNON`` (path of its executable) or installed with
``npm install`` into a temporary directory. ``BOTMOX_BENCH_QUICK=1`` shortens every run (smoke);
``BOTMOX_BENCH_SECONDS`` sets the duration of one run (default 10). ``BOTMOX_BENCH_BACKENDS``
(``sqlite,postgres``) and ``BOTMOX_BENCH_WORKERS`` (``1,2``) narrow the matrix. Figures are
printed, never asserted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from botmox_core.bootstrap import bootstrap
from botmox_core.client import RunnerClient
from botmox_core.config import load_settings
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.testing.server import RunningServer, running_server

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
SECONDS = int(os.environ.get("BOTMOX_BENCH_SECONDS", "3" if QUICK else "10"))
FIXED_RATES = (200, 500, 1000)
MAX_CONNECTIONS = 32
#: Connections for a fixed rate: enough that the rate, not the connection count, sets the pace
#: (an open loop as far as autocannon goes) while latency stays under connections / rate.
FIXED_CONNECTIONS = 64
#: The limiter stays in the path (its cost counts) with limits the bench never reaches.
UNLIMITED = {
    "BOTMOX_RATE_LIMIT_REQUESTS": "100000000",
    "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": "100000000",
}
MODULE, PLATFORM, VM = "bench-bot", "linux", "bench-vm-0001"
#: The server process being measured (its CPU time is read around each run).
SERVER_PID: list[int] = []


def autocannon() -> list[str]:
    """The command that runs autocannon (installed into a temporary directory when needed)."""
    configured = os.environ.get("BOTMOX_BENCH_AUTOCANNON")
    if configured:
        return [configured]
    found = shutil.which("autocannon")
    if found:
        return [found]
    prefix = Path(tempfile.gettempdir()) / "botmox-bench-autocannon"
    binary = prefix / "node_modules" / ".bin" / "autocannon"
    if not binary.exists():
        if shutil.which("npm") is None:
            raise SystemExit("autocannon is needed: install Node.js and npm")
        subprocess.run(
            [
                "npm",
                "install",
                "--silent",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                "autocannon@7",
            ],
            check=True,
        )
    return [str(binary)]


def load(
    command: list[str],
    url: str,
    *,
    rate: int | None,
    seconds: int = SECONDS,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """One autocannon run; its JSON summary."""
    args = [*command, "-j", "-d", str(seconds)]
    args += ["-c", str(MAX_CONNECTIONS if rate is None else FIXED_CONNECTIONS)]
    if rate is not None:
        args += ["-R", str(rate)]
    args += ["-m", method]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}={value}"]
    if body is not None:
        args += ["-b", body]
    before = cpu_seconds(SERVER_PID[0]) if SERVER_PID else 0.0
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout)
    if SERVER_PID:
        spent = cpu_seconds(SERVER_PID[0]) - before
        figures["cpu_ms_per_request"] = spent * 1000 / max(1, figures["requests"]["total"])
    return figures


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of the server process and its direct children (the workers)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        own, parent = int(stat.parent.name), int(fields[1])
        if own == pid or parent == pid:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def paced(
    url: str,
    *,
    rate: int,
    seconds: int = SECONDS,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    body: str | None = None,
) -> dict[str, Any]:
    """One evenly paced open-loop run (``bench/open_loop.js``, Node); its JSON summary."""
    script = Path(__file__).with_name("open_loop.js")
    args = ["node", str(script), url, str(rate), str(seconds), method, body or ""]
    args.append(json.dumps(dict(headers or {})))
    before = cpu_seconds(SERVER_PID[0]) if SERVER_PID else 0.0
    done = subprocess.run(args, capture_output=True, text=True, check=True)
    figures: dict[str, Any] = json.loads(done.stdout)
    if SERVER_PID:
        spent = cpu_seconds(SERVER_PID[0]) - before
        figures["cpu_ms_per_request"] = spent * 1000 / max(1, figures["requests"]["total"])
    return figures


def loadavg() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def prepare(server: RunningServer, artifact: Path) -> tuple[str, dict[str, str]]:
    """A tenant with a licence, a release, an assignment, a VM and a lease: the API token and the
    resolve body."""
    core = bootstrap(load_settings(dict(server.env)))
    try:
        admin = Principal("bench", Role.ADMIN)
        token = core.tokens.create("bench", "api", user_id="runner").secret
        core.licences.set_licence("bench", "active", None)
        core.licences.set_entitlement("bench", "runner", [MODULE])
        with artifact.open("rb") as stream:
            release = core.releases.upload_and_publish(
                admin, stream, module=MODULE, platform=PLATFORM, version="1.0.0"
            )
        core.releases.assign(
            admin, module=MODULE, platform=PLATFORM, channel="stable", release_id=release.id
        )
    finally:
        core.close()
    with RunnerClient(server.url, token) as client:
        client.register_vm(VM)
        lease = client.take_lease(MODULE, vm_uuid=VM)
    body = {
        "lease_token": lease.token,
        "vm_uuid": VM,
        "module": MODULE,
        "platform": PLATFORM,
        "channel": "stable",
    }
    return token, body


def audit_rows(server: RunningServer) -> int:
    core = bootstrap(load_settings(dict(server.env)))
    try:
        with core.backend.unit_of_work() as uow:
            return len(uow.audit.list("bench", limit=10**9))
    finally:
        core.close()


def row(label: str, figures: dict[str, Any]) -> str:
    latency = figures["latency"]
    non2xx = figures.get("non2xx", 0) + figures.get("errors", 0)
    return (
        f"{label:34} {figures['requests']['average']:>9.0f} {latency['p50']:>8.1f} "
        f"{latency['p99']:>8.1f} {non2xx:>7} {figures.get('cpu_ms_per_request', 0):>7.2f}"
        f"  {loadavg()}"
        + (
            f"  (statuses {figures.get('statuses')}, errors {figures.get('errorKinds')})"
            if figures.get("statuses") or figures.get("errorKinds")
            else ""
        )
    )


def measure(server: RunningServer, artifact: Path, label: str) -> None:
    command = autocannon()
    SERVER_PID[:] = [server.process.pid]
    token, body = prepare(server, artifact)
    resolve_url = server.url + "/api/v1/artifacts/resolve-download"
    resolve_headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    payload = json.dumps(body)
    load(
        command,
        resolve_url,
        rate=None,
        seconds=2,
        method="POST",
        headers=resolve_headers,
        body=payload,
    )  # warm up: threads, caches, the WAL
    before = audit_rows(server)
    print(f"\n{label}: {SECONDS} s per run")
    print(
        f"{'run':34} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>7} {'CPU ms':>7}"
        "  load average"
    )
    floor = load(command, server.url + "/api/v1/health/live", rate=None)
    print(row("health/live, max", floor))
    answered = 0
    peak = load(
        command, resolve_url, rate=None, method="POST", headers=resolve_headers, body=payload
    )
    answered += peak["2xx"]
    print(row("resolve-download, max", peak))
    for rate in FIXED_RATES:
        figures = load(
            command, resolve_url, rate=rate, method="POST", headers=resolve_headers, body=payload
        )
        answered += figures["2xx"]
        print(row(f"resolve-download, {rate}/s (-R)", figures))
        figures = paced(
            resolve_url, rate=rate, method="POST", headers=resolve_headers, body=payload
        )
        answered += figures["2xx"]
        print(row(f"resolve-download, {rate}/s paced", figures))
    share = peak["requests"]["average"] / max(1.0, floor["requests"]["average"])
    written = audit_rows(server) - before
    print(
        f"resolve max / health floor: {share:.0%}; audit rows written {written} for "
        f"{answered} answers 200"
    )


@contextmanager
def postgres_env() -> Iterator[dict[str, str] | None]:
    """Environment for a server on a throwaway PostgreSQL, or None (said why)."""
    with ExitStack() as stack:
        try:
            from botmox_supabase.testing import migrated_database, running_postgres
        except ImportError:
            print("\n(Supabase plugin not installed: PostgreSQL figures skipped)")
            yield None
            return
        try:
            admin_dsn = stack.enter_context(running_postgres())
        except Exception as exc:
            print(f"\n(PostgreSQL unavailable: {exc}; PostgreSQL figures skipped)")
            yield None
            return
        dsn = stack.enter_context(migrated_database(admin_dsn))
        yield {
            "BOTMOX_PLUGINS": "supabase",
            "DATA_BACKEND": "supabase",
            "BOTMOX_SUPABASE_DATABASE_URL": dsn,
        }


def main() -> None:
    backends = os.environ.get("BOTMOX_BENCH_BACKENDS", "sqlite,postgres").split(",")
    workers = [int(n) for n in os.environ.get("BOTMOX_BENCH_WORKERS", "1,2").split(",")]
    work = Path(tempfile.mkdtemp(prefix="botmox-bench-resolve-"))
    try:
        artifact = work / "artifact.bin"
        artifact.write_bytes(os.urandom(64 * 1024))
        for count in workers:
            args = ["--workers", str(count)] if count > 1 else []
            if "sqlite" in backends:
                env = {"BOTMOX_PLUGINS": "none", **UNLIMITED}
                if count > 1:
                    env["BOTMOX_AGENT_TRANSPORT"] = "unixsocket"
                with running_server(work / f"sqlite-{count}", env, args=args) as server:
                    measure(server, artifact, f"SQLite + localfs, {count} worker(s)")
            if "postgres" in backends:
                with postgres_env() as pg:
                    if pg is not None:
                        env = {**pg, **UNLIMITED}
                        with running_server(work / f"pg-{count}", env, args=args) as server:
                            measure(server, artifact, f"PostgreSQL + localfs, {count} worker(s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
