"""``botmox serve --workers 2`` gives each worker a listening socket of its own
(``SO_REUSEPORT``, ``botmox_core.cli._workers``): a burst of keep-alive connections is spread
over the workers instead of landing on whichever woke first, a worker that dies is replaced,
and stopping the supervisor stops every worker. Real processes and sockets, Linux only."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from botmox_core.testing.server import RunningServer, running_server

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT, /proc")


def _workers(server: RunningServer) -> list[int]:
    """The live worker processes of the server (children of the supervisor)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) != server.process.pid or fields[0] in ("Z", "X"):
            continue
        try:  # multiprocessing's resource tracker is a child too
            command = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in command:
            found.append(int(stat.parent.name))
    return sorted(found)


def _tcp_rows(port: int) -> list[tuple[str, int]]:
    """(state, inode) of the sockets bound to ``port`` on this host (IPv4)."""
    rows = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if int(fields[1].split(":")[1], 16) == port:
            rows.append((fields[3], int(fields[9])))
    return rows


def _listening(port: int) -> set[int]:
    return {inode for state, inode in _tcp_rows(port) if state == "0A"}


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _wait(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_each_worker_listens_on_its_own_socket_and_shares_a_burst(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv", args=["--workers", "2"]) as server:
        port = int(server.url.rsplit(":", 1)[1])
        # the server answered through its first worker; wait for the second one to listen
        _wait(lambda: len(_workers(server)) == 2 and len(_listening(port)) == 2)
        workers = _workers(server)
        listening = _listening(port)  # one listening socket per worker
        owners = [listening & _socket_inodes(pid) for pid in workers]
        assert all(len(owned) == 1 for owned in owners) and owners[0] != owners[1]

        clients = [httpx.Client(base_url=server.url, timeout=30) for _ in range(32)]
        try:
            with ThreadPoolExecutor(32) as pool:  # 32 keep-alive connections opened together
                answers = list(pool.map(lambda c: c.get("/api/v1/health/live"), clients))
            assert {a.status_code for a in answers} == {200}
            established = {inode for state, inode in _tcp_rows(port) if state == "01"}
            served = Counter(
                pid for pid in workers for inode in _socket_inodes(pid) if inode in established
            )
            assert sum(served.values()) == 32, served
            assert min(served[pid] for pid in workers) >= 4, served  # binomial(32, 1/2)
        finally:
            for client in clients:
                client.close()


def test_a_dead_worker_is_replaced_and_stopping_stops_them_all(tmp_path: Path) -> None:
    with running_server(tmp_path / "srv", args=["--workers", "2"]) as server:
        _wait(lambda: len(_workers(server)) == 2)
        victim, survivor = _workers(server)
        time.sleep(5.5)  # past the start-up window in which a dying worker stops the server
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_workers(server)) == 2 and victim not in _workers(server))
        assert survivor in _workers(server)
        for _ in range(20):  # the port keeps answering through the replacement
            assert httpx.get(server.url + "/api/v1/health/live", timeout=10).status_code == 200
        workers = _workers(server)
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=60) == 0
        _wait(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers))
