"""Real processes for end-to-end tests of the agent command bus: a server that can be SIGKILLed
and restarted on the same port and data, and ``botmox agent run``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx


class ServerProcess:
    """A botmox server process that can be SIGKILLed and restarted on the same port and data
    directory (what :func:`~botmox_core.testing.server.running_server` cannot do)::

        with ServerProcess(tmp_path / "data", env) as server:
            server.kill()      # SIGKILL by PID
            server.start()     # same URL, same data
    """

    def __init__(
        self, data_dir: Path, env: Mapping[str, str] | None = None, *, log_level: str = "info"
    ) -> None:
        from botmox_core.testing.server import free_port

        self.log_level = log_level
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "BOTMOX_DATA_DIR": str(data_dir),
            "BOTMOX_PUBLIC_URL": self.url,
            **(env or {}),
        }
        self.log_path = data_dir / f"server-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and wait until it answers."""
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [
                    sys.executable,
                    "-m",
                    "botmox_core",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--log-level",
                    self.log_level,
                ],
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"botmox server exited:\n{self.log()[-4000:]}")
            try:
                if httpx.get(self.url + "/api/v1/health/live", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"botmox server did not start:\n{self.log()[-4000:]}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the server (by PID) and reap it."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def admin(self, *args: str) -> Any:
        """``botmox admin ... --json`` on this server's backends."""
        done = subprocess.run(  # noqa: S603
            [sys.executable, "-m", "botmox_core", "admin", *args, "--json"],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise AssertionError(f"admin {args} failed: {done.stderr}")
        return json.loads(done.stdout)

    def __enter__(self) -> ServerProcess:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class AgentProcess:
    """``botmox agent run`` as a subprocess (stopped by PID)."""

    def __init__(
        self,
        app: str,
        state: Path,
        env: Mapping[str, str] | None = None,
        *,
        log_level: str = "info",
    ) -> None:
        self.log_level = log_level
        self.app = app
        self.state = state
        self.env = {**os.environ, **(env or {})}
        self.log_path = state.with_name(state.name + ".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProcess:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(  # noqa: S603
                [
                    sys.executable,
                    "-m",
                    "botmox_core",
                    "agent",
                    "run",
                    "--app",
                    self.app,
                    "--state",
                    str(self.state),
                    "--log-level",
                    self.log_level,
                ],
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM (graceful shutdown) and wait; the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return int(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> AgentProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.kill()
