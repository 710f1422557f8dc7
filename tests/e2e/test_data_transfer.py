"""``botmox data export|import`` between backends, through the real command (a subprocess
configured by environment, as an operator runs it): SQLite -> PostgreSQL (Supabase schema) and
the RTDB emulator (the legacy tenant at the seed's global paths) -> SQLite. The copy is exact
(every item line equal) and a second import changes nothing."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path

import pytest

from botmox_core.config import load_settings
from botmox_core.plugin import load_registry
from tests.test_data_transfer import items, seed


def botmox(env: Mapping[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m botmox_core ARGS`` with only ``env`` selecting the backend."""
    clean = {key: value for key, value in os.environ.items() if not key.startswith("BOTMOX_")}
    clean.pop("DATA_BACKEND", None)
    return subprocess.run(
        [sys.executable, "-m", "botmox_core", *args],
        env={**clean, **env},
        capture_output=True,
        timeout=300,
        check=False,
    )


def seed_backend(env: Mapping[str, str], tenant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed through the configured backend's own repositories (in this process)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    backend = load_registry(settings.environ).data_backends.get(settings.data_backend)(settings)
    try:
        seed(backend, tenant, bots=30)  # type: ignore[arg-type]
    finally:
        backend.close()


def transfer(source: dict[str, str], target: dict[str, str], tmp: Path, tenant: str) -> None:
    exported = tmp / "tenant.jsonl.gz"
    result = botmox(source, "data", "export", "--tenant", tenant, str(exported), "--json")
    assert result.returncode == 0, result.stderr.decode()
    summary = json.loads(result.stdout)
    assert summary["counts"]["bots"] == 30 and summary["counts"]["lifecycle_log"] == 4
    first = botmox(target, "data", "import", "--tenant", tenant, str(exported), "--json", "--init")
    assert first.returncode == 0, first.stderr.decode()
    created = json.loads(first.stdout)["counts"]
    assert created["bots"] == {"created": 30, "updated": 0, "unchanged": 0}
    assert created["archive"]["created"] == 1 and created["settings"]["created"] == 1
    again = botmox(target, "data", "import", "--tenant", tenant, str(exported), "--json")
    assert again.returncode == 0, again.stderr.decode()
    for label, counts in json.loads(again.stdout)["counts"].items():
        assert counts["created"] == counts["updated"] == 0, (label, counts)
    back = botmox(target, "data", "export", "--tenant", tenant, "-")
    assert back.returncode == 0, back.stderr.decode()
    original = gzip.decompress(exported.read_bytes())
    assert items(back.stdout) == items(original)
    assert json.loads(back.stdout.splitlines()[0])["source_backend"] == target["DATA_BACKEND"]


@pytest.fixture
def postgres_env() -> Iterator[dict[str, str]]:
    from botmox_supabase.testing import (
        PostgresUnavailable,
        migrated_database,
        require_postgres,
        running_postgres,
    )

    with ExitStack() as stack:
        try:
            admin_dsn = stack.enter_context(running_postgres())
        except PostgresUnavailable as exc:
            require_postgres(str(exc))
        dsn = stack.enter_context(migrated_database(admin_dsn))
        yield {"DATA_BACKEND": "supabase", "BOTMOX_SUPABASE_DATABASE_URL": dsn}


@pytest.fixture
def rtdb_env() -> Iterator[dict[str, str]]:
    from botmox_rtdb.rules import rules_document
    from botmox_rtdb.testing import emulator_environ, running_emulator

    with running_emulator(rules=rules_document()) as host_port:
        yield {**emulator_environ(host_port, "transfer"), "BOTMOX_RTDB_LEGACY_TENANT": "legacy"}


def test_sqlite_to_postgres(
    tmp_path: Path, postgres_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sqlite_env = {"DATA_BACKEND": "sqlite", "BOTMOX_DATA_DIR": str(tmp_path / "embedded")}
    (tmp_path / "embedded").mkdir()
    seed_backend(sqlite_env, "t1", monkeypatch)
    transfer(sqlite_env, postgres_env, tmp_path, "t1")


def test_rtdb_legacy_tenant_to_sqlite(
    tmp_path: Path, rtdb_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_backend(rtdb_env, "legacy", monkeypatch)
    sqlite_env = {"DATA_BACKEND": "sqlite", "BOTMOX_DATA_DIR": str(tmp_path / "embedded")}
    transfer(rtdb_env, sqlite_env, tmp_path, "legacy")
