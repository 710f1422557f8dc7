"""The restore drill, as CI runs it: populate a real server, back up (while it runs), wipe,
restore, compare every record and every object, start the server again: ready, old leases still
resolve (the keys came back), and ``botmox runner fetch`` downloads the module.

Stacks: the embedded default (SQLite + localfs) and Supabase (PostgreSQL) + S3 (SeaweedFS).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import secrets
import subprocess
import sys
import tarfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from botmox_core.config import load_settings
from botmox_core.ops import backup as backup_ops
from botmox_core.testing.server import RunningServer, provision_tenant, running_server

pytestmark = pytest.mark.e2e

TENANT, USER, MODULE, PLATFORM = "tenant-r", "user-r", "farm-bot", "win64"


def botmox(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "botmox_core", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def _snapshot(env: dict[str, str]) -> dict[str, Any]:
    settings = load_settings(environ=env)
    storage = _storage(settings)
    try:
        return backup_ops.snapshot(settings, storage)
    finally:
        storage.close()


def _storage(settings: Any) -> Any:
    from botmox_core.cli.backup import _storage as build

    return build(settings)


def populate(server: RunningServer, tmp: Path) -> dict[str, Any]:
    """Tokens, licence, entitlement, two releases (objects), a VM, a lease, audit entries."""
    artifact = tmp / "bot.zip"
    artifact.write_bytes(secrets.token_bytes(700_003))
    tenant = provision_tenant(
        server, artifact, tenant=TENANT, user=USER, module=MODULE, platform=PLATFORM
    )
    headers = {"Authorization": f"Bearer {tenant.user_token}"}
    vm = "vm-" + secrets.token_hex(6)
    r = httpx.post(server.url + "/api/v1/vm/register", json={"vm_uuid": vm}, headers=headers)
    assert r.status_code == 201, r.text
    lease = httpx.post(
        server.url + "/api/v1/license/lease",
        json={"vm_uuid": vm, "module": MODULE},
        headers=headers,
    ).json()["data"]
    body = {
        "lease_token": lease["token"],
        "vm_uuid": vm,
        "module": MODULE,
        "platform": PLATFORM,
        "channel": "stable",
    }
    r = httpx.post(server.url + "/api/v1/artifacts/resolve-download", json=body, headers=headers)
    assert r.status_code == 200, r.text
    return {
        "user_token": tenant.user_token,
        "vm": vm,
        "lease": lease,
        "body": body,
        "sha256": tenant.release["sha256"],
    }


def drill(tmp: Path, env: dict[str, str], wipe: Any, *, compressed: bool) -> None:
    data = tmp / "data"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOTMOX_", "DATA_BACKEND"))},
        **env,
        "BOTMOX_DATA_DIR": str(data),
    }
    archive = tmp / ("drill.tar.gz" if compressed else "drill.tar")
    with running_server(data, env) as server:
        state = populate(server, tmp)
        created = json.loads(
            botmox("backup", "create", str(archive), "--json", env=full_env).stdout
        )
        before = _snapshot(full_env)  # the server is idle: nothing changed since the backup
    manifest = created["manifest"]
    url_key = env.get("BOTMOX_STORAGE") == "localfs"  # S3 signs its own URLs: no URL key
    assert manifest["objects"] and set(manifest["keys"]) == (
        {"lease", "url"} if url_key else {"lease"}
    )
    assert sum(len(rows) for rows in before["tables"].values()) > 0
    assert set(before["objects"]) == {entry["key"] for entry in manifest["objects"]}
    assert ": ok," in botmox("backup", "verify", str(archive), env=full_env).stdout

    # a restore into the populated installation is refused and changes nothing
    refused = botmox("backup", "restore", str(archive), env=full_env, check=False)
    assert refused.returncode == 1 and "not empty" in refused.stderr
    assert "Traceback" not in refused.stderr

    wipe(data)
    restored = json.loads(botmox("backup", "restore", str(archive), "--json", env=full_env).stdout)
    assert restored["records_before"] == 0 and restored["objects_before"] == 0
    after = _snapshot(full_env)
    assert after["objects"] == before["objects"]
    assert after["tables"].keys() == before["tables"].keys()
    for table, rows in before["tables"].items():
        assert after["tables"][table] == rows, f"table {table} differs after the restore"

    with running_server(data, env) as server:
        ready = httpx.get(server.url + "/api/v1/health/ready", timeout=30)
        assert ready.status_code == 200, ready.text
        headers = {"Authorization": f"Bearer {state['user_token']}"}
        r = httpx.post(
            server.url + "/api/v1/artifacts/resolve-download", json=state["body"], headers=headers
        )
        assert r.status_code == 200, r.text  # the lease from before the backup, same keys
        got = httpx.get(r.json()["data"]["download_url"], timeout=30)
        assert hashlib.sha256(got.content).hexdigest() == state["sha256"]
        dest = tmp / "fetched.zip"
        fetched = botmox(
            "runner",
            "fetch",
            "--server",
            server.url,
            "--module",
            MODULE,
            "--platform",
            PLATFORM,
            "--dest",
            str(dest),
            "--vm-uuid",
            "vm-" + secrets.token_hex(6),
            "--json",
            env={**full_env, "BOTMOX_TOKEN": state["user_token"]},
        )
        assert json.loads(fetched.stdout)["sha256"] == state["sha256"]
        assert hashlib.sha256(dest.read_bytes()).hexdigest() == state["sha256"]


def test_restore_drill_embedded(tmp_path: Path) -> None:
    import shutil

    env = {"DATA_BACKEND": "sqlite", "BOTMOX_STORAGE": "localfs"}
    drill(tmp_path, env, lambda data: shutil.rmtree(data), compressed=True)


def test_restore_drill_supabase_s3(tmp_path: Path) -> None:
    from botmox_s3.testing import seaweedfs_or_skip
    from botmox_supabase.testing import (
        PostgresUnavailable,
        create_database,
        drop_database,
        require_postgres,
        running_postgres,
    )

    with ExitStack() as stack:
        try:
            admin_dsn = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            require_postgres(str(exc))
        seaweed = stack.enter_context(seaweedfs_or_skip())
        bucket = seaweed.create_bucket()
        name = "drill_" + secrets.token_hex(4)
        dsn = create_database(admin_dsn, name)
        stack.callback(lambda: drop_database(admin_dsn, name))
        env = {
            "DATA_BACKEND": "supabase",
            "BOTMOX_SUPABASE_DATABASE_URL": dsn,
            **seaweed.minio_env(bucket),
        }
        full_env = {**os.environ, **env}
        botmox("db", "migrate", env=full_env)

        def wipe(data: Path) -> None:
            import shutil

            settings = load_settings(environ={**env, "BOTMOX_DATA_DIR": str(data)})
            storage = _storage(settings)
            try:
                for key in backup_ops.object_keys(storage, settings):
                    storage.delete(key)
            finally:
                storage.close()
            drop_database(admin_dsn, name)
            create_database(admin_dsn, name)
            botmox("db", "migrate", env=full_env)  # a fresh installation, as deploys make it
            shutil.rmtree(data)

        drill(tmp_path, env, wipe, compressed=False)


def test_a_damaged_archive_is_refused_before_the_target_is_touched(tmp_path: Path) -> None:
    env = {"DATA_BACKEND": "sqlite", "BOTMOX_STORAGE": "localfs"}
    data = tmp_path / "data"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BOTMOX_", "DATA_BACKEND"))},
        **env,
        "BOTMOX_DATA_DIR": str(data),
    }
    with running_server(data, env) as server:
        populate(server, tmp_path)
    archive = tmp_path / "good.tar"
    botmox("backup", "create", str(archive), env=full_env)
    target = tmp_path / "target"
    target_env = {**full_env, "BOTMOX_DATA_DIR": str(target)}
    with tarfile.open(archive) as source:
        members = [(m, source.extractfile(m).read() if m.isfile() else None) for m in source]
    cases: dict[str, list[tuple[tarfile.TarInfo, bytes | None]]] = {}
    flipped = []
    for member, content in members:
        if member.name.startswith("objects/") and not flipped:
            content = bytes([content[0] ^ 1]) + content[1:]
            flipped.append(member.name)
        cases.setdefault("flipped byte", []).append((member, content))
    cases["missing member"] = [(m, c) for m, c in members if not m.name.startswith("keys/")]
    extra = tarfile.TarInfo("../../escape")
    cases["extra member"] = [*members, (extra, b"x")]
    manifest = json.loads(dict((m.name, c) for m, c in members)["manifest.json"])
    manifest["files"].append({"path": "../outside", "sha256": "0" * 64, "size": 1})
    evil = json.dumps(manifest).encode()
    cases["unsafe manifest path"] = [
        (m, evil if m.name == "manifest.json" else c) for m, c in members
    ]
    for label, content in cases.items():
        bad = tmp_path / f"bad-{label.replace(' ', '-')}.tar"
        with tarfile.open(bad, "w") as out:
            for member, data_bytes in content:
                info = tarfile.TarInfo(member.name)
                info.size = len(data_bytes or b"")
                out.addfile(info, io.BytesIO(data_bytes or b""))
        done = botmox("backup", "restore", str(bad), env=target_env, check=False)
        assert done.returncode == 1, label
        assert "Traceback" not in done.stderr, label
        assert not target.exists() or not any(target.iterdir()), f"{label} touched the target"
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    done = botmox("backup", "restore", str(truncated), env=target_env, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert not target.exists() or not any(target.iterdir())
