"""Benchmark of the agent channel against a real uvicorn server process (embedded SQLite):

1. Idle agent sockets held by ONE server process and the server's memory per socket: N agents
   (default 10,000) connect over loopback from a few client processes (asyncio, no threads),
   say ``hello``, get ``welcome`` and stay idle; the server's RSS (``/proc/<pid>/status``)
   before and after gives bytes per socket. Target: ≥ 10,000 sockets at ≤ 40 KB each.
2. enqueue → agent-receive latency (``POST /api/v1/vm-ops/commands`` until the ``command``
   frame arrives at the agent), p50/p99, for one connected agent and again with 5,000 idle
   agents connected.

Each uvicorn WebSocket implementation given in ``BOTMOX_BENCH_WS`` (comma-separated; default
``serve`` = what ``botmox serve`` runs, plus ``websockets-sansio`` and ``wsproto``) is measured
in its own server process. Agents are seeded straight into the SQLite file (one transaction)
rather than paired over HTTP one by one; the server runs with ``synchronous=normal`` so 10,000
hellos do not wait on 10,000 fsyncs. ``RLIMIT_NOFILE`` is raised to its hard limit for the run.

``BOTMOX_BENCH_QUICK=1`` shrinks everything (CI smoke); ``BOTMOX_BENCH_AGENTS`` sets N.
A bare ASGI app holding the same sockets on uvicorn is measured first, as the floor.
Figures are printed, never asserted.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import multiprocessing
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.models import Agent, AgentStatus
from botmox_core.security import hash_secret
from botmox_core.testing.server import free_port

QUICK = bool(os.environ.get("BOTMOX_BENCH_QUICK"))
AGENTS = int(os.environ.get("BOTMOX_BENCH_AGENTS", "500" if QUICK else "10000"))
LOADED = min(AGENTS, 300 if QUICK else 5000)
CLIENT_PROCESSES = 4
LATENCY_SAMPLES = 100 if QUICK else 500
TENANT = "bench"


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def seed_agents(database: Path, count: int) -> list[tuple[str, str]]:
    """``count`` active agents in one transaction; (agent_id, token) pairs."""
    now = datetime.now(UTC)
    agents = []
    backend = SqliteBackend(database, synchronous="NORMAL")
    try:
        with backend.unit_of_work() as uow:
            for _ in range(count):
                token = "bma_" + secrets.token_urlsafe(32)
                agent = Agent(
                    id="agt_" + secrets.token_hex(12),
                    tenant_id=TENANT,
                    status=AgentStatus.ACTIVE,
                    created_at=now,
                    pairing_expires_at=now,
                    token_hash=hash_secret(token),
                    token_expires_at=now + timedelta(days=1),
                    registered_at=now,
                    last_seen_at=now,
                )
                uow.agents.add(agent)  # type: ignore[attr-defined]
                agents.append((agent.id, token))
            uow.commit()
    finally:
        backend.close()
    return agents


class Server:
    """A server process on a fresh data dir, with one of uvicorn's WebSocket implementations."""

    def __init__(self, data_dir: Path, ws: str, app: str | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "BOTMOX_DATA_DIR": str(data_dir),
            "BOTMOX_PUBLIC_URL": self.url,
            "BOTMOX_PLUGINS": "none",
            "BOTMOX_SQLITE_SYNCHRONOUS": "normal",
        }
        if app is not None:  # the floor: a bare ASGI app on uvicorn's default implementation
            command = [sys.executable, "-m", "uvicorn", app, "--app-dir", str(data_dir)]
            command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
            command += ["--ws-per-message-deflate", "false", "--no-access-log"]
        elif ws == "serve":
            command = [sys.executable, "-m", "botmox_core", "serve", "--log-level", "warning"]
            command += ["--host", "127.0.0.1", "--port", str(self.port)]
        else:
            command = [sys.executable, "-m", "uvicorn", "botmox_server.app:create_app"]
            command += ["--factory", "--host", "127.0.0.1", "--port", str(self.port)]
            command += ["--ws", ws, "--ws-per-message-deflate", "false", "--log-level", "warning"]
            command += ["--no-access-log"]
        self.log = (data_dir / "server.log").open("wb")
        self.process = subprocess.Popen(
            command, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/api/v1/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.log.flush()
                tail = (data_dir / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"server did not start:\n{tail}")
            time.sleep(0.1)

    def admin_token(self) -> str:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "botmox_core",
                "admin",
                "token",
                "create",
                "--tenant",
                TENANT,
                "--role",
                "admin",
                "--json",
            ],
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return str(json.loads(done.stdout)["token"])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


# -- idle holders (run in client processes) ---------------------------------------------------


async def _hold(ws_url: str, tokens: list[str], report: Any, stop: Any) -> None:
    gate = asyncio.Semaphore(100)
    sockets = []
    failures = 0

    async def open_one(token: str) -> None:
        nonlocal failures
        async with gate:
            for _attempt in range(5):
                try:
                    ws = await connect(
                        ws_url,
                        additional_headers={"Authorization": f"Bearer {token}"},
                        compression=None,
                        ping_interval=None,
                        open_timeout=60,
                        max_queue=4,
                    )
                    await ws.send(json.dumps({"type": "hello", "max_inflight": 1}))
                    welcome = json.loads(await ws.recv())
                    assert welcome["type"] == "welcome"
                    sockets.append(ws)
                    return
                except Exception:
                    await asyncio.sleep(0.5)
            failures += 1

    await asyncio.gather(*(open_one(token) for token in tokens))
    report.put(("connected", len(sockets), failures))
    while not stop.is_set():
        await asyncio.sleep(0.2)
    for ws in sockets:
        await ws.close()


def hold_sockets(ws_url: str, tokens: list[str], report: Any, stop: Any) -> None:
    raise_fd_limit()
    asyncio.run(_hold(ws_url, tokens, report, stop))


def start_holders(ws_url: str, tokens: list[str]) -> tuple[list[Any], Any, int, int]:
    context = multiprocessing.get_context("spawn")
    report, stop = context.Queue(), context.Event()
    shares = [tokens[i::CLIENT_PROCESSES] for i in range(CLIENT_PROCESSES)]
    processes = [
        context.Process(target=hold_sockets, args=(ws_url, share, report, stop)) for share in shares
    ]
    for process in processes:
        process.start()
    connected = failures = 0
    for _ in processes:
        _kind, count, failed = report.get(timeout=900)
        connected += count
        failures += failed
    return processes, stop, connected, failures


def stop_holders(processes: list[Any], stop: Any) -> None:
    stop.set()
    for process in processes:
        process.join(60)
        if process.is_alive():
            process.kill()


# -- latency --------------------------------------------------------------------------------


async def measure_latency(server: Server, admin: str, agent: tuple[str, str]) -> dict[str, float]:
    agent_id, token = agent
    ws_url = server.url.replace("http://", "ws://") + "/ws/v1/agents/connect"
    samples = []
    async with (
        connect(
            ws_url, additional_headers={"Authorization": f"Bearer {token}"}, compression=None
        ) as ws,
        httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {admin}"}, timeout=30
        ) as http,
    ):
        await ws.send(json.dumps({"type": "hello", "max_inflight": 1}))
        await ws.recv()
        for i in range(LATENCY_SAMPLES + 20):
            started = time.perf_counter()
            answer = await http.post(
                "/api/v1/vm-ops/commands",
                json={"agent_id": agent_id, "command_type": "bench.noop", "payload": {"i": i}},
            )
            assert answer.status_code == 202, answer.text
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "command":
                    break
            elapsed = time.perf_counter() - started
            if i >= 20:  # warm-up
                samples.append(elapsed * 1000)
            command_id = frame["command"]["id"]
            await ws.send(json.dumps({"type": "ack", "command_id": command_id}))
            await ws.send(
                json.dumps({"type": "result", "command_id": command_id, "status": "succeeded"})
            )
            while json.loads(await ws.recv())["type"] != "result_ack":
                pass
    ordered = sorted(samples)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "mean_ms": statistics.fmean(ordered),
    }


def bench_one(ws: str, workdir: Path) -> dict[str, Any]:
    data_dir = workdir / ws
    data_dir.mkdir()
    agents = seed_agents(data_dir / "botmox.sqlite3", AGENTS + 1)
    server = Server(data_dir, ws)
    figures: dict[str, Any] = {"ws": ws}
    try:
        admin = server.admin_token()
        ws_url = server.url.replace("http://", "ws://") + "/ws/v1/agents/connect"
        figures["latency_1_agent"] = asyncio.run(measure_latency(server, admin, agents[-1]))
        # warm-up: a few sockets so lazily imported code and pools exist before the baseline
        processes, stop, _, _ = start_holders(ws_url, [token for _, token in agents[:40]])
        stop_holders(processes, stop)
        time.sleep(1)
        baseline = rss_kib(server.process.pid)
        processes, stop, connected, failures = start_holders(
            ws_url, [token for _, token in agents[:LOADED]]
        )
        figures["latency_loaded_agents"] = connected
        figures["latency_loaded"] = asyncio.run(measure_latency(server, admin, agents[-1]))
        stop_holders(processes, stop)
        time.sleep(2)
        started = time.monotonic()
        processes, stop, connected, failures = start_holders(
            ws_url, [token for _, token in agents[:AGENTS]]
        )
        figures["connect_seconds"] = time.monotonic() - started
        time.sleep(5)  # idle
        loaded = rss_kib(server.process.pid)
        figures.update(
            sockets=connected,
            failures=failures,
            server_fds=open_fds(server.process.pid),
            rss_baseline_mib=baseline / 1024,
            rss_loaded_mib=loaded / 1024,
            kib_per_socket=(loaded - baseline) / max(connected, 1),
        )
        stop_holders(processes, stop)
    finally:
        server.stop()
    return figures


FLOOR_APP = """
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"live"})
    else:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        await send({"type": "websocket.send", "text": '{"type": "welcome"}'})
        while (await receive())["type"] != "websocket.disconnect":
            pass
"""


def bench_floor(workdir: Path) -> dict[str, Any]:
    """The same idle sockets on a bare ASGI app (accept, answer hello, wait): what uvicorn and
    its WebSocket implementation cost without botmox."""
    data_dir = workdir / "floor"
    data_dir.mkdir()
    (data_dir / "bench_floor_app.py").write_text(FLOOR_APP)
    server = Server(data_dir, "floor", app="bench_floor_app:app")
    tokens = ["unused"] * AGENTS
    ws_url = server.url.replace("http://", "ws://") + "/ws/v1/agents/connect"
    try:
        processes, stop, _, _ = start_holders(ws_url, tokens[:40])
        stop_holders(processes, stop)
        time.sleep(1)
        baseline = rss_kib(server.process.pid)
        processes, stop, connected, failures = start_holders(ws_url, tokens)
        time.sleep(5)
        loaded = rss_kib(server.process.pid)
        stop_holders(processes, stop)
    finally:
        server.stop()
    return {
        "sockets": connected,
        "failures": failures,
        "kib_per_socket": (loaded - baseline) / max(connected, 1),
        "rss_baseline_mib": baseline / 1024,
        "rss_loaded_mib": loaded / 1024,
    }


def report(figures: dict[str, Any]) -> None:
    name = figures["ws"]
    one = figures["latency_1_agent"]
    loaded = figures["latency_loaded"]
    print(
        f"[{name}] idle sockets held: {figures['sockets']} (failed {figures['failures']}), "
        f"server fds {figures['server_fds']}, connect {figures['connect_seconds']:.1f} s; "
        f"RSS {figures['rss_baseline_mib']:.1f} -> {figures['rss_loaded_mib']:.1f} MiB = "
        f"{figures['kib_per_socket']:.1f} KiB/socket"
    )
    print(
        f"[{name}] enqueue->receive, 1 agent: p50 {one['p50_ms']:.2f} ms, "
        f"p99 {one['p99_ms']:.2f} ms; with {figures['latency_loaded_agents']} agents connected: "
        f"p50 {loaded['p50_ms']:.2f} ms, p99 {loaded['p99_ms']:.2f} ms"
    )


def main() -> None:
    limit = raise_fd_limit()
    implementations = os.environ.get("BOTMOX_BENCH_WS", "serve,websockets-sansio,wsproto")
    print(
        f"agents={AGENTS} loaded={LOADED} client_processes={CLIENT_PROCESSES} "
        f"nofile={limit} cpus={os.cpu_count()}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-agents-") as tmp:
        floor = bench_floor(Path(tmp))
        print(
            f"[floor: bare ASGI app, uvicorn default ws] idle sockets held: {floor['sockets']} "
            f"(failed {floor['failures']}); RSS {floor['rss_baseline_mib']:.1f} -> "
            f"{floor['rss_loaded_mib']:.1f} MiB = {floor['kib_per_socket']:.1f} KiB/socket"
        )
        for ws in implementations.split(","):
            module = {"wsproto": "wsproto"}.get(ws.strip())
            if module is not None and importlib.util.find_spec(module) is None:
                print(f"[{ws}] skipped: {module} is not installed")
                continue
            report(bench_one(ws.strip(), Path(tmp)))


if __name__ == "__main__":
    main()
