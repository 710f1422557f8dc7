"""The runner client and ``botmox runner fetch`` against the real botmox server (uvicorn process,
embedded SQLite + localfs), set up through the real admin CLI."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from botmox_core.client import AsyncRunnerClient, RetryPolicy, RunnerClient
from botmox_core.errors import (
    DownloadUrlInvalidError,
    EntitlementRequiredError,
    ModuleNotAllowedError,
    UnauthorizedError,
)
from botmox_core.testing.server import RunningServer, provision_tenant, running_server

pytestmark = pytest.mark.e2e

TENANT = "tenant-client"
USER = "user-1"
MODULE = "farm-bot"
PLATFORM = "win64"
CHANNEL = "stable"


@attrs.frozen
class Deployment:
    server: RunningServer
    token: str
    artifact: bytes
    sha256: str
    release_id: int

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp("client-e2e")
    env = {"DATA_BACKEND": "sqlite", "BOTMOX_STORAGE": "localfs"}
    with running_server(tmp / "data", env) as server:
        artifact = os.urandom(3 * 1024 * 1024 + 4321)
        path = tmp / "farm-bot-2.0.0.zip"
        path.write_bytes(artifact)
        tenant = provision_tenant(
            server,
            path,
            tenant=TENANT,
            user=USER,
            module=MODULE,
            platform=PLATFORM,
            channel=CHANNEL,
            version="2.0.0",
        )
        token, release = tenant.user_token, tenant.release
        yield Deployment(
            server, token, artifact, hashlib.sha256(artifact).hexdigest(), int(release["id"])
        )


def new_vm() -> str:
    return "vm-" + secrets.token_hex(8)


def test_sync_fetch_delivers_the_release(deployment: Deployment, tmp_path: Path) -> None:
    dest = tmp_path / "farm-bot.zip"
    with RunnerClient(deployment.url, deployment.token) as client:
        result = client.fetch(MODULE, PLATFORM, CHANNEL, dest, vm_uuid=new_vm())
    assert dest.read_bytes() == deployment.artifact
    assert result.sha256 == deployment.sha256
    assert result.release_id == deployment.release_id and result.version == "2.0.0"
    assert not list(tmp_path.glob("*.part*"))


def test_async_fetch_delivers_the_release(deployment: Deployment, tmp_path: Path) -> None:
    dest = tmp_path / "farm-bot.zip"

    async def run() -> None:
        async with AsyncRunnerClient(deployment.url, deployment.token) as client:
            result = await client.fetch(MODULE, PLATFORM, CHANNEL, dest, vm_uuid=new_vm())
            assert result.sha256 == deployment.sha256

    asyncio.run(run())
    assert dest.read_bytes() == deployment.artifact


def test_heartbeat_rotates_the_token_and_both_tokens_resolve(deployment: Deployment) -> None:
    import time

    vm = new_vm()
    with RunnerClient(deployment.url, deployment.token) as client:
        client.register_vm(vm)
        with client.lease(MODULE, vm, heartbeat_interval=0.3) as lease:
            first = lease.token
            deadline = time.monotonic() + 10
            while lease.heartbeats < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert lease.heartbeats >= 1, lease.heartbeat_error
            assert lease.token != first
            fresh = client.resolve_download(lease, PLATFORM, CHANNEL)
            previous = client.resolve_download(first, PLATFORM, CHANNEL, vm_uuid=vm, module=MODULE)
            assert fresh.sha256 == previous.sha256 == deployment.sha256


def test_a_service_token_without_a_user_keeps_its_lease_alive(deployment: Deployment) -> None:
    """A token bound to no user proves lease ownership with the lease token: the sync and async
    lease sessions send it with every heartbeat."""
    import time

    from botmox_core.testing.server import admin_cli

    service = admin_cli(
        deployment.server, "token", "create", "--tenant", TENANT, "--role", "api"
    )["token"]
    vm = new_vm()
    with RunnerClient(deployment.url, service) as client:
        client.register_vm(vm, user_id=USER)
        with client.lease(MODULE, vm, user_id=USER, heartbeat_interval=0.3) as lease:
            deadline = time.monotonic() + 10
            while lease.heartbeats < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert lease.heartbeats >= 2, lease.heartbeat_error
            assert client.resolve_download(lease, PLATFORM, CHANNEL).sha256 == deployment.sha256

    async def run() -> None:
        async with (
            AsyncRunnerClient(deployment.url, service) as client,
            client.lease(MODULE, vm, user_id=USER, heartbeat_interval=0.3) as lease,
        ):
            deadline = time.monotonic() + 10
            while lease.heartbeats < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert lease.heartbeats >= 2, lease.heartbeat_error

    asyncio.run(run())


def test_interrupted_download_resumes_against_the_real_server(
    deployment: Deployment, tmp_path: Path
) -> None:
    class Interrupted(Exception):
        pass

    received: list[int] = []

    def stop_after_first_chunk(done: int, total: int) -> None:
        if done >= 1024 * 1024:
            received.append(done)
            raise Interrupted

    dest = tmp_path / "farm-bot.zip"
    vm = new_vm()
    with RunnerClient(deployment.url, deployment.token) as client:
        client.register_vm(vm)
        with client.lease(MODULE, vm) as lease:
            resolved = client.resolve_download(lease, PLATFORM, CHANNEL)
            with pytest.raises(Interrupted):
                client.download(resolved, dest, progress=stop_after_first_chunk)
            # every byte received before the interruption is kept, and only those
            assert (tmp_path / "farm-bot.zip.part").stat().st_size == received[0]
            result = client.download(resolved, dest)
    assert result.resumed_from == received[0]
    assert dest.read_bytes() == deployment.artifact


def test_forged_url_is_refused_as_download_url_invalid(
    deployment: Deployment, tmp_path: Path
) -> None:
    vm = new_vm()
    with RunnerClient(deployment.url, deployment.token) as client:
        client.register_vm(vm)
        with client.lease(MODULE, vm) as lease:
            resolved = client.resolve_download(lease, PLATFORM, CHANNEL)
        forged = attrs.evolve(resolved, download_url=resolved.download_url[:-4] + "0000")
        with pytest.raises(DownloadUrlInvalidError):
            client.download(forged, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_server_errors_arrive_typed_with_request_id(deployment: Deployment) -> None:
    vm = new_vm()
    with RunnerClient(deployment.url, deployment.token) as client:
        client.register_vm(vm)
        with pytest.raises((EntitlementRequiredError, ModuleNotAllowedError)) as caught:
            client.take_lease("other-module", vm)
        assert caught.value.request_id
        assert len(client.public_key()) == 32
    client = RunnerClient(deployment.url, "not-a-token", retry_policy=RetryPolicy(0))
    with client, pytest.raises(UnauthorizedError):
        client.register_vm(vm)


def test_cli_fetch_against_the_real_server(deployment: Deployment, tmp_path: Path) -> None:
    dest = tmp_path / "farm-bot.zip"
    env = {**os.environ, "BOTMOX_TOKEN": deployment.token}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "botmox_core",
            "runner",
            "fetch",
            "--server",
            deployment.url,
            "--module",
            MODULE,
            "--platform",
            PLATFORM,
            "--channel",
            CHANNEL,
            "--dest",
            str(dest),
            "--vm-uuid",
            new_vm(),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["sha256"] == deployment.sha256 and printed["path"] == str(dest)
    assert deployment.token not in done.stdout + done.stderr
    assert dest.read_bytes() == deployment.artifact

    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "botmox_core",
            "runner",
            "fetch",
            "--server",
            deployment.url,
            "--module",
            "other-module",
            "--platform",
            PLATFORM,
            "--dest",
            str(tmp_path / "y"),
            "--vm-uuid",
            new_vm(),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: ")
    code = failed.stderr.split(":")[1].strip()
    assert code in {"ENTITLEMENT_REQUIRED", "MODULE_NOT_ALLOWED"}, failed.stderr


def test_example_script_fetches(deployment: Deployment, tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "runner_fetch.py"
    dest = tmp_path / "modules" / "farm-bot.zip"
    env = {
        **os.environ,
        "BOTMOX_SERVER": deployment.url,
        "BOTMOX_TOKEN": deployment.token,
        "BOTMOX_VM_UUID": new_vm(),
    }
    done = subprocess.run(
        [sys.executable, str(example), MODULE, PLATFORM, str(dest)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"sha256 {deployment.sha256}" in done.stdout
    assert dest.read_bytes() == deployment.artifact
