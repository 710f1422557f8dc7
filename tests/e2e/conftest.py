"""End-to-end fixtures: a real uvicorn server process per backend stack, set up through the
real admin CLI (a separate process writing to the same backends while the server runs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from botmox_core.testing.server import (
    RunningServer,
    admin_cli,
    provision_tenant,
    running_server,
)

TENANT = "tenant-a"
OTHER_TENANT = "tenant-b"
USER = "user-1"
MODULE = "farm-bot"
PLATFORM = "win64"
CHANNEL = "stable"


def stack_env(name: str, stack: ExitStack, tmp: Path) -> dict[str, str]:
    """Environment selecting the backends of one stack, starting the services it needs."""
    if name == "embedded":
        return {"DATA_BACKEND": "sqlite", "BOTMOX_STORAGE": "localfs"}
    if name == "rtdb":  # Firebase RTDB through the real firebase-admin client, on the emulator
        from botmox_rtdb.rules import rules_document
        from botmox_rtdb.testing import emulator_environ, running_emulator

        host_port = stack.enter_context(running_emulator(rules=rules_document()))
        return {**emulator_environ(host_port, "e2e"), "BOTMOX_STORAGE": "localfs"}
    if name == "minio":  # MinIO plugin (boto3) on a real S3 server: SeaweedFS with credentials
        from botmox_s3.testing import seaweedfs_or_skip

        seaweed = stack.enter_context(seaweedfs_or_skip())
        return {
            "DATA_BACKEND": "sqlite",
            **seaweed.minio_env(seaweed.create_bucket()),
            "BOTMOX_MINIO_MAX_ATTEMPTS": "1",
        }
    if name == "supabase":  # PostgreSQL with the Supabase schema, RLS and roles
        from botmox_supabase.testing import (
            PostgresUnavailable,
            migrated_database,
            require_postgres,
            running_postgres,
        )

        try:
            admin_dsn = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            require_postgres(str(exc))  # skips locally, fails under CI=true
        dsn = stack.enter_context(migrated_database(admin_dsn))
        return {
            "DATA_BACKEND": "supabase",
            "BOTMOX_SUPABASE_DATABASE_URL": dsn,
            "BOTMOX_STORAGE": "localfs",
        }
    raise pytest.UsageError(f"unknown stack {name}")


STACKS = ["embedded", "rtdb", "supabase", "minio"]


@attrs.frozen
class Deployment:
    """A running server with a tenant set up: tokens, licence, entitlement, an assigned release."""

    server: RunningServer
    admin_token: str
    user_token: str
    other_tenant_token: str
    artifact: Path
    release: dict[str, Any]

    @property
    def url(self) -> str:
        return self.server.url

    def call(
        self, method: str, path: str, token: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = kwargs.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)


@pytest.fixture(scope="module", params=STACKS)
def deployment(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    tmp = tmp_path_factory.mktemp(f"stack-{request.param}")
    with ExitStack() as stack:
        env = stack_env(request.param, stack, tmp)
        server = stack.enter_context(running_server(tmp / "data", env))
        artifact = tmp / "farm-bot-1.2.0.zip"
        artifact.write_bytes(bytes(range(256)) * 12_289 + b"tail")  # ~3 MiB, odd size
        tenant = provision_tenant(
            server,
            artifact,
            tenant=TENANT,
            user=USER,
            module=MODULE,
            platform=PLATFORM,
            channel=CHANNEL,
            version="1.2.0",
        )
        other = admin_cli(
            server, "token", "create", "--tenant", OTHER_TENANT, "--role", "api", "--user", USER
        )["token"]
        admin_cli(
            server, "license", "set", "--tenant", OTHER_TENANT, "--status", "active", "--perpetual"
        )
        admin_cli(
            server,
            "entitlement",
            "set",
            "--tenant",
            OTHER_TENANT,
            "--user",
            USER,
            "--module",
            MODULE,
        )
        yield Deployment(
            server, tenant.admin_token, tenant.user_token, other, artifact, tenant.release
        )
