"""``botmox runner fetch`` twice against a real server: the second run keeps the verified file,
says so, and still goes through the lease gate (an inactive licence still refuses it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from botmox_core.testing.server import admin_cli, provision_tenant, running_server

pytestmark = pytest.mark.e2e


def fetch(server_url: str, token: str, dest: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botmox_core", "runner", "fetch", "--server", server_url,
         "--module", "farm-bot", "--platform", "win64", "--dest", str(dest),
         "--vm-uuid", "vm-operator-0001", "--retries", "0", *extra],
        env={**os.environ, "BOTMOX_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )  # fmt: skip


def test_second_fetch_is_already_up_to_date_but_still_gated(tmp_path: Path) -> None:
    artifact = tmp_path / "farm-bot-1.0.0.bin"
    artifact.write_bytes(os.urandom(200_000))
    dest = tmp_path / "vm" / "farm-bot.bin"
    with running_server(tmp_path / "srv") as server:
        tenant = provision_tenant(
            server, artifact, tenant="acme", user="alice", module="farm-bot", platform="win64"
        )
        first = fetch(server.url, tenant.user_token, dest, "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["up_to_date"] is False
        mtime = dest.stat().st_mtime_ns

        again = fetch(server.url, tenant.user_token, dest)
        assert again.returncode == 0, again.stderr
        assert f"{dest}: already up to date, farm-bot 1.0.0" in again.stdout
        again_json = fetch(server.url, tenant.user_token, dest, "--json")
        assert json.loads(again_json.stdout)["up_to_date"] is True
        assert dest.stat().st_mtime_ns == mtime  # not rewritten
        assert dest.read_bytes() == artifact.read_bytes()

        audit = admin_cli(server, "audit", "--tenant", "acme")
        assert [entry["result"] for entry in audit] == ["allowed"] * 3  # every run resolved
        downloads = [
            line
            for line in server.log().splitlines()
            if "botmox.access: GET /api/v1/storage/localfs/" in line
        ]
        assert len(downloads) == 1  # but only the first one transferred the file

        admin_cli(server, "license", "set", "--tenant", "acme", "--status", "inactive")
        refused = fetch(server.url, tenant.user_token, dest)
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: LICENSE_INACTIVE: ")
        assert "up to date" not in refused.stdout
