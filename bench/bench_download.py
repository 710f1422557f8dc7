"""Benchmark of the lease-gated download path, measured in one run against real uvicorn server
processes:

1. resolve-download requests/s and p50/p99 latency, sequential and with concurrent clients,
   beside ``GET /api/v1/health/live`` as the framework floor (same client, same count) — on the
   embedded default (SQLite + localfs) and, when the Supabase plugin and PostgreSQL are
   available, on Supabase/PostgreSQL in the same run.
2. download + sha256 verification MB/s through the runner client, beside ``curl -o file`` +
   ``sha256sum file`` of the same object from the same server (embedded default);
3. ``botmox runner fetch`` of the artifact as a whole process (start-up, VM registration, lease,
   resolve, download, hash, fsync, atomic replace) beside ``curl -o`` + ``sha256sum`` of the
   same download URL, median of ``ROUNDS`` (the target: at most 1.05x).

``BOTMOX_BENCH_QUICK=1`` shrinks the workload (CI smoke), ``BOTMOX_BENCH_ROUNDS`` sets the rounds
of 2. and 3. (on a shared, noisy host: more); figures are printed, never asserted.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

from botmox_core.bootstrap import bootstrap
from botmox_core.client import RunnerClient
from botmox_core.config import load_settings
from botmox_core.models import Role
from botmox_core.services import Principal
from botmox_core.testing.server import running_server

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
REQUESTS = 300 if QUICK else 2000
THREADS = 8
SIZE_MIB = int(os.environ.get("BOTMOX_BENCH_SIZE_MIB", "32" if QUICK else "400"))
ROUNDS = int(os.environ.get("BOTMOX_BENCH_ROUNDS", "1" if QUICK else "3"))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def hammer(call: Callable[[httpx.Client], None], url: str, threads: int) -> dict[str, float]:
    """Run ``REQUESTS`` calls over ``threads`` keep-alive clients; rate and latency figures."""
    per_thread = REQUESTS // threads
    latencies: list[float] = []

    def worker(_: int) -> list[float]:
        own: list[float] = []
        with httpx.Client(base_url=url, timeout=30) as client:
            call(client)  # warm the connection
            for _ in range(per_thread):
                started = time.perf_counter()
                call(client)
                own.append(time.perf_counter() - started)
        return own

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for own in pool.map(worker, range(threads)):
            latencies.extend(own)
    elapsed = time.perf_counter() - started
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="botmox-bench-"))
    try:
        artifact = work / "artifact.bin"
        with artifact.open("wb") as handle:
            block = os.urandom(1024 * 1024)
            for index in range(SIZE_MIB):
                handle.write(block[index:] + block[:index])
        run(
            work / "embedded",
            artifact,
            {"BOTMOX_PLUGINS": "none"},
            "embedded (SQLite + localfs)",
            downloads=True,
        )
        with ExitStack() as stack:
            env = supabase_env(stack)
            if env is not None:
                run(
                    work / "supabase",
                    artifact,
                    env,
                    "Supabase/PostgreSQL + localfs",
                    downloads=False,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def supabase_env(stack: ExitStack) -> dict[str, str] | None:
    """Environment for a server on a throwaway PostgreSQL, or None (said why) when unavailable."""
    try:
        from botmox_supabase.testing import migrated_database, running_postgres
    except ImportError:
        print("\n(Supabase plugin not installed: PostgreSQL figures skipped)")
        return None
    try:
        admin_dsn = stack.enter_context(running_postgres())
    except Exception as exc:
        print(f"\n(PostgreSQL unavailable: {exc}; PostgreSQL figures skipped)")
        return None
    dsn = stack.enter_context(migrated_database(admin_dsn))
    return {
        "BOTMOX_PLUGINS": "supabase",
        "DATA_BACKEND": "supabase",
        "BOTMOX_SUPABASE_DATABASE_URL": dsn,
    }


def run(work: Path, artifact: Path, env: dict[str, str], label: str, *, downloads: bool) -> None:
    with running_server(work / "data", env) as server:
        core = bootstrap(load_settings(dict(server.env)))
        try:
            admin = Principal("bench", Role.ADMIN)
            token = core.tokens.create("bench", "api", user_id="runner").secret
            core.licences.set_licence("bench", "active", None)
            core.licences.set_entitlement("bench", "runner", ["bench-bot"])
            with artifact.open("rb") as stream:
                release = core.releases.upload_and_publish(
                    admin, stream, module="bench-bot", platform="linux", version="1.0.0"
                )
            core.releases.assign(
                admin,
                module="bench-bot",
                platform="linux",
                channel="stable",
                release_id=release.id,
            )
        finally:
            core.close()
        headers = {"Authorization": f"Bearer {token}"}
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

        def resolve(c: httpx.Client) -> None:
            r = c.post("/api/v1/artifacts/resolve-download", json=body, headers=headers)
            assert r.status_code == 200, r.text

        def live(c: httpx.Client) -> None:
            assert c.get("/api/v1/health/live").status_code == 200

        print(f"\nbotmox bench: {label}, {REQUESTS} requests each")
        print(f"{'endpoint':42} {'clients':>7} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for threads in (1, THREADS):
            for name, call in (
                ("GET /api/v1/health/live (floor)", live),
                ("POST /api/v1/artifacts/resolve-download", resolve),
            ):
                figures = hammer(call, server.url, threads)
                print(
                    f"{name:42} {threads:>7} {figures['rps']:>9.0f} "
                    f"{figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f}"
                )

        if not downloads:
            return
        expected = hashlib.sha256(artifact.read_bytes()).hexdigest()
        sdk_times, curl_times = [], []
        with RunnerClient(server.url, token) as client:
            for round_ in range(ROUNDS):
                resolved = client.resolve_download(
                    lease.token, "linux", vm_uuid="bench-vm-0001", module="bench-bot"
                )
                dest = work / f"sdk-{round_}.bin"
                started = time.perf_counter()
                result = client.download(resolved, dest)
                sdk_times.append(time.perf_counter() - started)
                assert result.sha256 == expected
                dest.unlink()
                resolved = client.resolve_download(
                    lease.token, "linux", vm_uuid="bench-vm-0001", module="bench-bot"
                )
                dest = work / f"curl-{round_}.bin"
                started = time.perf_counter()
                subprocess.run(["curl", "-sf", "-o", str(dest), resolved.download_url], check=True)
                digest = subprocess.run(
                    ["sha256sum", str(dest)], capture_output=True, text=True, check=True
                ).stdout.split()[0]
                curl_times.append(time.perf_counter() - started)
                assert digest == expected
                dest.unlink()
        sdk = SIZE_MIB / statistics.median(sdk_times)
        curl = SIZE_MIB / statistics.median(curl_times)
        print(f"\ndownload + sha256 verify of {SIZE_MIB} MiB (median of {ROUNDS}):")
        print(f"  runner client (stream, hash in one pass, atomic replace): {sdk:8.1f} MiB/s")
        print(f"  curl -o file && sha256sum file (baseline):                {curl:8.1f} MiB/s")
        print(f"  client / baseline: {sdk / curl:.0%}")
        cli_versus_curl(server.url, token, work, expected)


def cli_versus_curl(url: str, token: str, work: Path, expected: str) -> None:
    """``botmox runner fetch`` as a process against ``curl -o`` + ``sha256sum`` of the URL it
    would download, alternating, median of ``ROUNDS``."""
    botmox = [sys.executable, "-m", "botmox_core"]
    fetch_args = ["--server", url, "--module", "bench-bot", "--platform", "linux"]
    fetch_args += ["--vm-uuid", "bench-vm-0001", "--json"]
    env = {**os.environ, "BOTMOX_TOKEN": token}
    cli_times, curl_times = [], []
    with RunnerClient(url, token) as client:
        lease = client.take_lease("bench-bot", vm_uuid="bench-vm-0001")
        for round_ in range(ROUNDS):
            dest = work / f"cli-{round_}.bin"
            started = time.perf_counter()
            done = subprocess.run(
                [*botmox, "runner", "fetch", *fetch_args, "--dest", str(dest)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            cli_times.append(time.perf_counter() - started)
            assert expected in done.stdout, done.stdout
            dest.unlink()
            resolved = client.resolve_download(
                lease.token, "linux", vm_uuid="bench-vm-0001", module="bench-bot"
            )
            dest = work / f"curl-{round_}.bin"
            started = time.perf_counter()
            subprocess.run(["curl", "-sf", "-o", str(dest), resolved.download_url], check=True)
            digest = subprocess.run(
                ["sha256sum", str(dest)], capture_output=True, text=True, check=True
            ).stdout.split()[0]
            curl_times.append(time.perf_counter() - started)
            assert digest == expected
            dest.unlink()
    cli, curl = statistics.median(cli_times), statistics.median(curl_times)
    pairs = sorted(a / b for a, b in zip(cli_times, curl_times, strict=True))
    print(f"\nbotmox runner fetch of {SIZE_MIB} MiB, whole process (median of {ROUNDS}):")
    print(f"  botmox runner fetch (start-up, lease, resolve, download, verify): {cli:7.2f} s")
    print(f"  curl -o file && sha256sum file (download + hash only):           {curl:7.2f} s")
    print(f"  runner fetch / curl + sha256sum: {cli / curl:.2f}x (target <= 1.05x)")
    print(
        f"  round by round: {', '.join(f'{r:.2f}x' for r in pairs)}; "
        f"fetch {min(cli_times):.2f}-{max(cli_times):.2f} s, "
        f"curl + sha256sum {min(curl_times):.2f}-{max(curl_times):.2f} s"
    )


if __name__ == "__main__":
    main()
