"""Benchmark of ``botmox serve --workers N``: resolve-download throughput and latency with one
and two worker processes, on the embedded default (SQLite + localfs) and on Supabase/PostgreSQL
(when the plugin and PostgreSQL are available), all in the same run; plus the cost of
``/metrics`` on the resolve path (a one-worker server with metrics on beside one without).

The servers of one backend are up at the same time and loaded in turn (interleaved rounds at
max rate, medians reported), so the drift of a shared host's load hits each shape alike.

Load comes from autocannon (npm), run against a real ``botmox serve`` on loopback:

* ``max``: as fast as ``CONNECTIONS`` keep-alive connections go (throughput, p50, p99);
* fixed rates (``--overallRate``): the latency at a given offered load. autocannon paces
  requests per connection; a request that is late waits (it does not measure from the
  intended send time), so p99 at a fixed rate is a floor, not a coordinated-omission-corrected
  figure.

Every server runs with rate limiting off (``BOTMOX_RATE_LIMIT_ENABLED=false``) and a one-hour
lease TTL; each resolve also writes its audit entry, as in production. The generator shares the
machine's cores with the server: on a 2-core host, 2 workers compete with autocannon for CPU.
Figures are printed (and written as JSON with ``--json PATH``), never asserted.

autocannon: ``BOTMOX_AUTOCANNON`` names the executable; else ``autocannon`` on PATH; else it is
installed with ``npm install autocannon`` into ``~/.cache/botmox-bench``.
``BOTMOX_BENCH_QUICK=1`` shrinks the durations (CI smoke).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from botmox_core.bootstrap import bootstrap
from botmox_core.client import RunnerClient
from botmox_core.config import load_settings
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.testing.server import RunningServer, running_server

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
DURATION = 3 if QUICK else 10
CONNECTIONS = 32
RATES = (200,) if QUICK else (200, 500)
METRICS_TOKEN = "bench-metrics-" + "c3" * 16
CACHE = Path.home() / ".cache" / "botmox-bench"
RESOLVE = "/api/v1/artifacts/resolve-download"


def autocannon() -> str:
    """The autocannon executable (installed with npm into the cache when missing)."""
    configured = os.environ.get("BOTMOX_AUTOCANNON")
    if configured:
        return configured
    found = shutil.which("autocannon")
    if found:
        return found
    local = CACHE / "node_modules" / ".bin" / "autocannon"
    if not local.exists():
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("bench_workers needs autocannon: install Node.js (npm) first")
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), "autocannon@7"],
            check=True,
            timeout=600,
        )
    return str(local)


def provision(server: RunningServer) -> dict[str, Any]:
    """A tenant with a published, assigned release and a lease; the resolve request body."""
    tenant = f"bench-{secrets.token_hex(4)}"  # servers of one run may share a database
    core = bootstrap(load_settings(dict(server.env)))
    try:
        admin = Principal(tenant, Role.ADMIN)
        token = core.tokens.create(tenant, "api", user_id="runner").secret
        core.licences.set_licence(tenant, "active", None)
        core.licences.set_entitlement(tenant, "runner", ["bench-bot"])
        payload = os.urandom(64 * 1024)
        artifact = server.data_dir / "artifact.bin"
        artifact.write_bytes(payload)
        with artifact.open("rb") as stream:
            release = core.releases.upload_and_publish(
                admin, stream, module="bench-bot", platform="linux", version="1.0.0"
            )
        core.releases.assign(
            admin, module="bench-bot", platform="linux", channel="stable", release_id=release.id
        )
    finally:
        core.close()
    with RunnerClient(server.url, token) as client:
        client.register_vm("bench-vm-0001")
        lease = client.take_lease("bench-bot", vm_uuid="bench-vm-0001")
    body = {
        "lease_token": lease.token,
        "vm_uuid": "bench-vm-0001",
        "module": "bench-bot",
        "platform": "linux",
        "channel": "stable",
    }
    return {"token": token, "body": body}


def warm_up(server: RunningServer, request: dict[str, Any], workers: int) -> None:
    """Until every worker answered resolves (the first may serve before the others start)."""
    headers = {"Authorization": f"Bearer {request['token']}"}
    deadline = time.monotonic() + 60
    if workers > 1 and server.env.get("DATA_BACKEND") == "supabase":
        time.sleep(15)  # postgres transport: no socket files to count; workers start in ~5 s
    elif workers > 1:
        while len(list((server.data_dir / "agent-bus").glob("*.sock"))) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not all start")
            time.sleep(0.2)
    for _ in range(200):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answer = client.post(RESOLVE, json=request["body"], headers=headers)
            if answer.status_code != 200:
                raise RuntimeError(f"resolve failed: {answer.status_code} {answer.text}")


def load(server: RunningServer, request: dict[str, Any], rate: int | None) -> dict[str, Any]:
    """One autocannon run; requests/s, latency p50/p99 (ms), non-2xx and errors."""
    command = [
        autocannon(),
        "--json",
        "-c", str(CONNECTIONS),
        "-d", str(DURATION),
        "-m", "POST",
        "-H", "content-type=application/json",
        "-H", f"authorization=Bearer {request['token']}",
        "-b", json.dumps(request["body"]),
    ]  # fmt: skip
    if rate is not None:
        command += ["--overallRate", str(rate)]
    done = subprocess.run(
        [*command, server.url + RESOLVE],
        capture_output=True,
        text=True,
        timeout=DURATION + 120,
        check=True,
    )
    result = json.loads(done.stdout)
    return {
        "rate": rate or "max",
        "rps": result["requests"]["average"],
        "p50_ms": result["latency"]["p50"],
        "p99_ms": result["latency"]["p99"],
        "requests": result["requests"]["total"],
        "non_2xx": result["non2xx"],
        "errors": result["errors"] + result["timeouts"],
    }


def compare(
    work: Path, env: dict[str, str], backend: str, shapes: list[tuple[int, bool]], rounds: int
) -> list[dict[str, Any]]:
    """One server per shape ``(workers, metrics)``, all up at once and loaded in turn: ``rounds``
    max-rate runs each (interleaved, so drift in the host's load hits every shape alike), then
    each fixed rate once per shape."""
    base = {
        **env,
        "BOTMOX_RATE_LIMIT_ENABLED": "false",
        "BOTMOX_LEASE_TTL_SECONDS": "3600",
        "BOTMOX_LOG_FORMAT": "text",
    }
    rows: list[dict[str, Any]] = []
    with ExitStack() as stack:
        servers = []
        for workers, metrics in shapes:
            server_env = {**base, **({"BOTMOX_METRICS_TOKEN": METRICS_TOKEN} if metrics else {})}
            name = f"{backend}-w{workers}{'-metrics' if metrics else ''}"
            server = stack.enter_context(
                running_server(
                    work / name,
                    server_env,
                    args=["--workers", str(workers), "--log-level", "warning"],
                    startup_timeout=90,
                )
            )
            request = provision(server)
            warm_up(server, request, workers)
            servers.append((workers, metrics, server, request))
        plan: list[int | None] = [None] * rounds + list(RATES)
        for rate in plan:
            for workers, metrics, server, request in servers:
                row = load(server, request, rate)
                row.update(backend=backend, workers=workers, metrics=metrics)
                rows.append(row)
                print(
                    f"{backend:9} {workers:>7} {'on' if metrics else 'off':>7} "
                    f"{row['rate']!s:>6} {row['rps']:>9.0f} {row['p50_ms']:>8.2f} "
                    f"{row['p99_ms']:>8.2f} {row['non_2xx']:>7} {row['errors']:>6}",
                    flush=True,
                )
    return rows


def supabase_env(stack: ExitStack) -> dict[str, str] | None:
    """Environment for servers on a throwaway PostgreSQL, or None (said why)."""
    try:
        from botmox_supabase.testing import migrated_database, running_postgres
    except ImportError:
        print("(Supabase plugin not installed: PostgreSQL figures skipped)")
        return None
    try:
        admin_dsn = stack.enter_context(running_postgres())
    except Exception as exc:
        print(f"(PostgreSQL unavailable: {exc}; PostgreSQL figures skipped)")
        return None
    dsn = stack.enter_context(migrated_database(admin_dsn))
    return {
        "BOTMOX_PLUGINS": "supabase",
        "DATA_BACKEND": "supabase",
        "BOTMOX_SUPABASE_DATABASE_URL": dsn,
        "BOTMOX_STORAGE": "localfs",
    }


def summary(rows: list[dict[str, Any]]) -> None:
    def median(backend: str, workers: int, metrics: bool, key: str) -> float | None:
        values = [
            row[key]
            for row in rows
            if (row["backend"], row["workers"], row["metrics"], row["rate"])
            == (backend, workers, metrics, "max")
        ]
        return statistics.median(values) if values else None

    print("\nmax rate, medians of the interleaved rounds; 2 workers / 1 worker (target >= 1.6):")
    for backend in ("sqlite", "supabase"):
        one, two = median(backend, 1, False, "rps"), median(backend, 2, False, "rps")
        if one and two:
            print(f"  {backend:9} {two / one:.2f}x  ({one:.0f} -> {two:.0f} req/s)")
    off, on = median("sqlite", 1, False, "rps"), median("sqlite", 1, True, "rps")
    p99_off, p99_on = median("sqlite", 1, False, "p99_ms"), median("sqlite", 1, True, "p99_ms")
    if off and on and p99_off is not None and p99_on is not None:
        print(
            f"  /metrics on the resolve path (sqlite, 1 worker): {off:.0f} -> {on:.0f} req/s "
            f"({(on - off) / off * 100:+.1f}%), p99 {p99_off:.0f} -> {p99_on:.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    parser.add_argument("--backend", choices=["sqlite", "supabase", "both"], default="both")
    options = parser.parse_args()
    autocannon()
    print(
        f"bench_workers: resolve-download, autocannon {CONNECTIONS} connections, {DURATION} s "
        f"per run, {os.cpu_count()} CPUs"
    )
    print(
        f"{'backend':9} {'workers':>7} {'metrics':>7} {'rate':>6} {'req/s':>9} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'non2xx':>7} {'errors':>6}"
    )
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="botmox-bench-workers-"))
    try:
        rounds = 1 if QUICK else 3
        if options.backend in ("sqlite", "both"):
            shapes = [(1, False), (2, False), (1, True)]
            rows += compare(work, {"BOTMOX_PLUGINS": "none"}, "sqlite", shapes, rounds)
        if options.backend in ("supabase", "both"):
            with ExitStack() as stack:
                env_pg = supabase_env(stack)
                if env_pg is not None:
                    shapes = [(1, False), (2, False)]
                    rows += compare(work, env_pg, "supabase", shapes, rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary(rows)
    if options.json_path is not None:
        options.json_path.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
