"""A real botmox server process for end-to-end tests.

:func:`running_server` starts ``python -m botmox_core serve`` (uvicorn) on a free loopback port
with the environment you give it (pick the data backend and storage there), waits until it
answers, and stops it by process id afterwards — whatever happens in the test::

    with running_server(tmp_path, env={"DATA_BACKEND": "sqlite"}) as server:
        httpx.get(server.url + "/api/v1/health/ready")
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import httpx

__all__ = [
    "ProvisionedTenant",
    "RunningServer",
    "admin_cli",
    "free_port",
    "provision_tenant",
    "running_server",
]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@attrs.frozen
class RunningServer:
    """A started server.

    Attributes:
        url: base URL (``http://127.0.0.1:<port>``).
        data_dir: its data directory.
        env: the environment it runs with (use it for admin commands on the same backends).
        process: the server process.
        log_path: file receiving the server's stdout and stderr.
    """

    url: str
    data_dir: Path
    env: Mapping[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def running_server(
    data_dir: Path,
    env: Mapping[str, str] | None = None,
    *,
    startup_timeout: float = 120.0,
    args: Sequence[str] = (),
) -> Iterator[RunningServer]:
    """Run a botmox server until the block exits (stopped by PID, never by name); ``args`` are
    extra ``botmox serve`` options (``["--workers", "2"]``)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data_dir.mkdir(parents=True, exist_ok=True)
    full_env = {
        **os.environ,
        "BOTMOX_DATA_DIR": str(data_dir),
        "BOTMOX_PUBLIC_URL": url,
        **(env or {}),
    }
    log_path = data_dir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [
                sys.executable,
                "-m",
                "botmox_core",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                *args,
            ],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"botmox server exited with {process.returncode}:\n"
                    + log_path.read_text(errors="replace")[-4000:]
                )
            try:
                if httpx.get(url + "/api/v1/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("botmox server did not start in time:\n" + log_path.read_text())
            time.sleep(0.1)
        yield RunningServer(url, data_dir, full_env, process, log_path)
    finally:
        _stop(process)


def admin_cli(server: RunningServer, *args: str) -> Any:
    """Run ``botmox admin <args> --json`` on the server's backends (a separate process, as an
    operator would) and return the parsed output; ``AssertionError`` with stderr on failure."""
    done = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "botmox_core", "admin", *args, "--json"],
        env=dict(server.env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"botmox admin {' '.join(args)} failed: {done.stderr}")
    return json.loads(done.stdout)


@attrs.frozen
class ProvisionedTenant:
    """What :func:`provision_tenant` set up.

    Attributes:
        admin_token: an ``admin`` API token of the tenant.
        user_token: an ``api`` token acting as the user.
        release: the published release (as ``botmox admin release publish --json`` prints it).
    """

    admin_token: str = attrs.field(repr=False)
    user_token: str = attrs.field(repr=False)
    release: dict[str, Any]


def provision_tenant(
    server: RunningServer,
    artifact: Path,
    *,
    tenant: str,
    user: str,
    module: str,
    platform: str,
    channel: str = "stable",
    version: str = "1.0.0",
) -> ProvisionedTenant:
    """Set a tenant up for the download flow through the real admin CLI: tokens, an active
    perpetual licence, the user's entitlement to ``module``, ``artifact`` published and assigned
    as the tenant default."""
    admin_token = admin_cli(server, "token", "create", "--tenant", tenant, "--role", "admin")
    user_token = admin_cli(
        server, "token", "create", "--tenant", tenant, "--role", "api", "--user", user
    )
    admin_cli(server, "license", "set", "--tenant", tenant, "--status", "active", "--perpetual")
    admin_cli(server, "entitlement", "set", "--tenant", tenant, "--user", user, "--module", module)
    scope = ["--module", module, "--platform", platform, "--channel", channel]
    release = admin_cli(
        server,
        "release",
        "publish",
        str(artifact),
        "--tenant",
        tenant,
        *scope,
        "--version",
        version,
    )
    admin_cli(
        server, "release", "assign", "--tenant", tenant, "--release-id", str(release["id"]), *scope
    )
    return ProvisionedTenant(admin_token["token"], user_token["token"], release)
