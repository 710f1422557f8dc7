"""``botmox serve --workers N``: worker processes that each listen on a socket of their own.

uvicorn's own multi-worker mode hands every worker the one listening socket. Each worker's event
loop accepts every connection waiting when it wakes, so the first worker to wake takes most of a
burst of keep-alive connections (a load balancer's pool, a fleet booting) and keeps them: with
32 connections opened together one worker measured 7.35 s of CPU to the other's 3.31 s, and two
workers served hardly more than one. Here each worker binds its own socket with ``SO_REUSEPORT``
and the kernel spreads new connections across the workers' sockets.

The supervisor (this process) holds the port bound, without listening, so the port stays
reserved while a worker restarts; it starts the workers (``spawn``), restarts one that dies,
and on SIGINT/SIGTERM asks every worker to stop (uvicorn's graceful shutdown) and waits. Each
worker asks the kernel for SIGTERM should the supervisor die first (``PR_SET_PDEATHSIG``), so
no worker outlives it. Where ``SO_REUSEPORT`` is missing the caller falls back to uvicorn's
shared socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import socket
import sys
import time
from typing import Any

log = logging.getLogger("botmox.server")

__all__ = ["reuse_port_supported", "run_workers"]

#: A worker that dies this soon after its start is not restarted (a start-up error: it would die
#: again at once), and the supervisor stops.
MIN_UPTIME = 5.0
_PR_SET_PDEATHSIG = 1


def reuse_port_supported() -> bool:
    """Whether this platform lets several sockets listen on one port (``SO_REUSEPORT``)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
    except BaseException:
        sock.close()
        raise
    return sock


def _worker(app: str, options: dict[str, Any], port: int) -> None:  # pragma: no cover - child
    """One worker: its own listening socket on the shared port, one uvicorn server."""
    import uvicorn

    with contextlib.suppress(OSError, AttributeError):  # die with the supervisor
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the supervisor died before prctl took effect
        return
    sock = _socket(options["host"], port)
    config = uvicorn.Config(app, factory=True, **{**options, "port": port})
    uvicorn.Server(config).run(sockets=[sock])


def run_workers(app: str, options: dict[str, Any], workers: int) -> None:
    """Run ``workers`` uvicorn workers of the application factory ``app`` (``module:name``),
    each on a socket of its own bound to ``options["host"]``/``options["port"]``; return when
    they have stopped (after SIGINT/SIGTERM, or when a worker fails at start-up)."""
    reserved = _socket(options["host"], options["port"])  # bound, not listening: no traffic
    port = reserved.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start() -> Any:
        process = context.Process(target=_worker, args=(app, options, port), daemon=False)
        process.start()
        return process, time.monotonic()

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for process, _ in running:
            if process.is_alive() and process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    running = [start() for _ in range(workers)]
    try:
        while running:
            for index, (process, started) in enumerate(running):
                process.join(timeout=0.2)
                if process.exitcode is None:
                    continue
                if stopping:
                    running.pop(index)
                    break
                if time.monotonic() - started < MIN_UPTIME:
                    log.error(
                        "worker %s exited with %s right after starting; stopping",
                        process.pid,
                        process.exitcode,
                    )
                    stop(signal.SIGTERM, None)
                    running.pop(index)
                    break
                log.warning(
                    "worker %s exited with %s; starting another", process.pid, process.exitcode
                )
                running[index] = start()
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reserved.close()
