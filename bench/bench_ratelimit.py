"""Cost of the rate limiter: the same real uvicorn server (embedded SQLite) with the limiter
on and off, in the same run, measured back to back.

Two routes: ``GET /api/v1/license/public-key`` (no token: the address bucket, the cheapest
route, so the limiter's share is the largest) and ``GET /api/v1/agents`` with an admin token
(the token bucket: the token's identity is looked up once, then remembered). The limits are
raised far above the load so that no request is refused: what is measured is the cost of
counting, not of refusing.

Load: autocannon (npm) when found — ``BOTMOX_BENCH_AUTOCANNON`` or ``autocannon`` on PATH or
``npx --no-install autocannon`` — at max rate (closed loop, 10 connections) and open loop at fixed
rates (``-R``); else a Python asyncio closed-loop generator. Prints req/s, p50 and p99 for
limiter off (the baseline) and on, side by side. ``BOTMOX_BENCH_QUICK=1`` shortens every run.
Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from botmox_core.testing.server import RunningServer, admin_cli, running_server

QUICK = os.environ.get("BOTMOX_BENCH_QUICK") == "1"
DURATION = 3 if QUICK else 10
RATES = (200, 500) if QUICK else (200, 500, 1000)
CONNECTIONS = 10


def autocannon() -> list[str] | None:
    explicit = os.environ.get("BOTMOX_BENCH_AUTOCANNON")
    if explicit:
        return [explicit]
    found = shutil.which("autocannon")
    if found:
        return [found]
    npx = shutil.which("npx")
    if (
        npx
        and subprocess.run(
            [npx, "--no-install", "autocannon", "--version"], capture_output=True, check=False
        ).returncode
        == 0
    ):
        return [npx, "--no-install", "autocannon"]
    return None


def run_autocannon(
    cmd: list[str], url: str, headers: dict[str, str], rate: int | None
) -> dict[str, Any]:
    args = [*cmd, "-j", "-c", str(CONNECTIONS), "-d", str(DURATION)]
    for name, value in headers.items():
        args += ["-H", f"{name}={value}"]
    if rate is not None:
        args += ["-R", str(rate)]
    done = subprocess.run([*args, url], capture_output=True, text=True, check=True, timeout=300)
    report = json.loads(done.stdout)
    non2xx = report.get("non2xx", 0)
    return {
        "rps": report["requests"]["average"],
        "p50": report["latency"]["p50"],
        "p99": report["latency"]["p99"],
        "errors": report.get("errors", 0) + non2xx,
    }


async def python_load(url: str, headers: dict[str, str]) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + DURATION

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            started = time.perf_counter()
            answer = await client.get(url, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            errors += answer.status_code != 200

    async with httpx.AsyncClient(timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONNECTIONS)))
    latencies.sort()
    return {
        "rps": len(latencies) / DURATION,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "errors": errors,
    }


def measure(
    url: str, headers: dict[str, str], rate: int | None, cmd: list[str] | None
) -> dict[str, Any]:
    if cmd is not None:
        return run_autocannon(cmd, url, headers, rate)
    if rate is not None:
        raise RuntimeError("fixed-rate runs need autocannon")
    return asyncio.run(python_load(url, headers))


def _cells(result: dict[str, Any]) -> str:
    return f"{result['rps']:9.0f} {result['p50']:6.2f} {result['p99']:6.2f}"


def main() -> None:
    cmd = autocannon()
    print(
        "load generator:",
        f"autocannon ({' '.join(cmd)})" if cmd else "python asyncio (closed loop)",
    )
    print(f"{DURATION} s per run, {CONNECTIONS} connections, cpus={os.cpu_count()}\n")
    high = {
        "BOTMOX_RATE_LIMIT_REQUESTS": "1000000000",
        "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": "1000000000",
    }
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        servers: dict[str, RunningServer] = {
            "off": stack.enter_context(
                running_server(Path(tmp) / "off", {"BOTMOX_RATE_LIMIT_ENABLED": "false"})
            ),
            "on": stack.enter_context(running_server(Path(tmp) / "on", high)),
        }
        tokens = {
            name: str(
                admin_cli(s, "token", "create", "--tenant", "bench", "--role", "admin")["token"]
            )
            for name, s in servers.items()
        }
        routes = [
            ("public-key (address bucket)", "/api/v1/license/public-key", False),
            ("agents list (token bucket)", "/api/v1/agents", True),
        ]
        rates: list[int | None] = [None, *(RATES if cmd else ())]
        for name, server in servers.items():  # warm up: imports, caches, connections
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for _ in range(200):
                    client.get(routes[1][1], headers={"Authorization": f"Bearer {tokens[name]}"})
                    client.get(routes[0][1])
        side = f"{'req/s':>9} {'p50':>6} {'p99':>6}"
        print(f"{'route':30} {'load':>8} | off {side} | on {side} | {'Δp50':>6}")
        for title, path, with_token in routes:
            for rate in rates:
                row = {}
                for name in ("off", "on"):  # baseline first, then the limiter, back to back
                    headers = {"Authorization": f"Bearer {tokens[name]}"} if with_token else {}
                    row[name] = measure(servers[name].url + path, headers, rate, cmd)
                    if row[name]["errors"]:
                        print(f"  ({name}: {row[name]['errors']} errors or non-2xx answers)")
                load = "max" if rate is None else f"{rate}/s"
                off, on = row["off"], row["on"]
                print(
                    f"{title:30} {load:>8} | off {_cells(off)} | on {_cells(on)} |"
                    f" {on['p50'] - off['p50']:+6.2f}"
                )
    print("\nlatencies in ms; Δp50 = on - off")


if __name__ == "__main__":
    sys.exit(main())
