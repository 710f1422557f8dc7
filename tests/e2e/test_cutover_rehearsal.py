"""The cutover rehearsal (docs/cutover.md), as an operator runs it, every step a real process:

an RTDB emulator holding seed-shaped data for three tenants (``legacy`` at the seed's global
paths, two under ``tenants/``) with the awkward cases (empty arrays RTDB dropped, integer-keyed
objects that read back as arrays, unicode keys and values, a record stored as a bare string, a
timestamp of the wrong type) → a throwaway PostgreSQL with the Supabase schema. Migrate (the
unrepresentable record is reported and the rest copied); fix and mutate the source (records
added, changed and deleted); SIGKILL a migration mid-collection and re-run it: parity green;
freeze (writes 503 on two replicas, reads and heartbeats pass); final sync with prune; parity;
switch (the target's server answers ready); the API smoke against the new backend; writes there;
roll back with ``--since``; parity green on the old backend.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from botmox_core.testing.server import admin_cli, running_server

pytestmark = pytest.mark.timeout(300)

LEGACY = "legacy"
TENANTS = (LEGACY, "t-b", "t-c")
BULK = 1500  # bots of t-b: enough for the SIGKILL to land mid-collection


def botmox(
    env: Mapping[str, str], *args: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOTMOX_")}
    clean.pop("DATA_BACKEND", None)
    return subprocess.run(
        [sys.executable, "-m", "botmox_core", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def ends() -> Iterator[dict[str, Any]]:
    from botmox_rtdb.rules import rules_document
    from botmox_rtdb.testing import emulator_environ, running_emulator
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
        host_port = stack.enter_context(running_emulator(rules=rules_document()))
        rtdb = {**emulator_environ(host_port, "rehearsal"), "BOTMOX_RTDB_LEGACY_TENANT": LEGACY}
        yield {
            "rtdb": rtdb,
            "pg": {"DATA_BACKEND": "supabase", "BOTMOX_SUPABASE_DATABASE_URL": dsn},
            "dsn": dsn,
            "rest": f"http://{host_port}",
            "ns": "rehearsal",
        }


def put(ends: dict[str, Any], path: str, value: Any) -> None:
    """Write raw JSON at ``path`` of the emulator, as the seed's server (or a console) did."""
    url, params = f"{ends['rest']}/{path}.json", {"ns": ends["ns"]}
    headers = {"Authorization": "Bearer owner"}
    if value is None:
        answer = httpx.delete(url, params=params, headers=headers, timeout=60)
    else:
        answer = httpx.put(url, params=params, json=value, headers=headers, timeout=60)
    assert answer.status_code == 200, answer.text


def seed_source(ends: dict[str, Any]) -> None:
    now = 1_790_000_000_000
    bots = {
        f"bot-{i:03d}": {
            "name": f"Bot {i}",
            "status": "leveling",
            "level": i,
            "created_at": now + i,
            "updated_at": now + i,
        }
        for i in range(40)
    }
    bots["bot-000"]["stage_transitions"] = []  # dropped by RTDB: reads back absent
    bots["bot-001"]["character"] = {"имя": "Тралл", "realm": "Ревущий фьорд"}
    bots["bot-002"]["created_at"] = "2026-01-01"  # the wrong type: cannot be migrated as is
    put(ends, "bots", bots)
    put(
        ends,
        "resources/licenses",
        {
            "lic-1": {"key": "AAAA", "created_at": now, "updated_at": now},
            "lic-bare": "a bare string the seed stored",  # reads as {"value": ...}
        },
    )
    put(
        ends,
        "workspace/kanban_tasks",
        {
            "k1": {
                "title": "t",
                "checklist": {"0": "a", "1": "b"},
                "created_at": now,
                "updated_at": now,
            },  # integer keys: RTDB answers an array
        },
    )
    put(ends, "workspace/notes_v2", {"n1": {"text": "ü ✓", "created_at": now, "updated_at": now}})
    put(
        ends,
        "finance/operations",
        {"op1": {"amount": 12.5, "bot_id": None, "created_at": now, "updated_at": now}},
    )
    put(ends, "finance/daily_stats", {"2026-01-01": {"gold": 10, "expenses": 1.25}})
    put(
        ends,
        "logs/bot_lifecycle",
        {
            "-Nlog1": {
                "bot_id": "bot-003",
                "type": "status_change",
                "message": "x",
                "timestamp": now,
                "details": {"from": "a", "to": "b"},
            },
        },
    )
    put(
        ends,
        "archive",
        {
            "-Narc1": {
                "bot_id": "bot-004",
                "reason": "banned",
                "archived_at": now,
                "ban_details": {"m": "x"},
                "snapshot": {"name": "Bot 4"},
            }
        },
    )
    put(ends, "settings", {"theme": {"mode": "dark"}, "alerts": {"enabled": True}})
    put(
        ends,
        "tenants/t-b/bots",
        {
            f"b{i:05d}": {"name": f"B{i}", "level": i % 70, "created_at": now, "updated_at": now}
            for i in range(BULK)
        },
    )
    put(
        ends,
        "tenants/t-c/workspace/notes_v2",
        {"c1": {"text": "c", "tags": ["x", "y"], "created_at": now, "updated_at": now}},
    )
    put(ends, "tenants/t-c/settings", {"lang": "de"})


def migrate(ends: dict[str, Any], source: str, target: str, *extra: str) -> dict[str, Any]:
    done = botmox(
        {**ends[source], **ends[target]} if source != target else ends[source],
        "migrate",
        "--from",
        backend_of(source),
        "--to",
        backend_of(target),
        "--json",
        *extra,
    )
    report = json.loads(done.stdout)
    report["returncode"] = done.returncode
    report["stderr"] = done.stderr
    return report


def backend_of(end: str) -> str:
    return {"rtdb": "rtdb", "pg": "supabase"}[end]


def parity(ends: dict[str, Any], source: str, target: str) -> dict[str, Any]:
    done = botmox(
        {**ends[source], **ends[target]},
        "parity",
        "--from",
        backend_of(source),
        "--to",
        backend_of(target),
        "--json",
    )
    report = json.loads(done.stdout)
    assert (done.returncode == 0) == report["ok"], done.stderr
    return report


def failing(report: dict[str, Any]) -> list[Any]:
    return [
        (s["tenant"], s["stream"], s["missing_ids"], s["extra_ids"], s["diffs"])
        for s in report["streams"]
        if not (s["missing"] == s["extra"] == s["different"] == 0)
    ]


def checkpoint(dsn: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "select value from botmox.control where key = 'migration_checkpoint'"
        ).fetchone()
    return None if row is None else json.loads(row[0]["state"])


def test_cutover_rehearsal(ends: dict[str, Any], tmp_path: Path) -> None:
    seed_source(ends)

    # 1. first migration: the bad record is named with its place and reason, the rest copied
    first = migrate(ends, "rtdb", "pg")
    assert first["returncode"] == 1, first["stderr"]
    assert [(p["tenant"], p["stream"], p["id"]) for p in first["problems"]] == [
        (LEGACY, "records/bots", "bot-002")
    ]
    assert "created_at" in first["problems"][0]["reason"]
    assert set(first["tenants"]) == set(TENANTS)
    assert first["writes"] == first["records"] - 1

    # 2. fix and mutate the source: add, change, delete; the second run converges
    put(ends, "bots/bot-002/created_at", 1_790_000_000_002)
    put(ends, "bots/bot-010/level", 99)
    put(ends, "bots/bot-011", None)
    put(ends, "bots/bot-new", {"name": "new", "created_at": 1, "updated_at": 2})
    second = migrate(ends, "rtdb", "pg", "--prune")
    assert second["returncode"] == 0, second["problems"]
    by_stream = {(s["tenant"], s["stream"]): s for s in second["streams"]}
    legacy_bots = by_stream[(LEGACY, "records/bots")]
    assert (legacy_bots["created"], legacy_bots["updated"], legacy_bots["deleted"]) == (2, 1, 1)
    assert second["writes"] == 4

    # 3. SIGKILL mid-collection, then re-run: resumed from the checkpoint, parity green
    put(
        ends,
        "tenants/t-b/bots",
        {
            f"b{i:05d}": {"name": f"B{i}", "level": (i % 70) + 1, "created_at": 7, "updated_at": 8}
            for i in range(BULK)
        },
    )
    env = {**ends["rtdb"], **ends["pg"]}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BOTMOX_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "botmox_core",
            "migrate",
            "--from",
            "rtdb",
            "--to",
            "supabase",
            "--tenant",
            "t-b",
            "--batch-size",
            "25",
            "--json",
        ],
        env={**clean, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = checkpoint(ends["dsn"])
            bots = (state or {}).get("streams", {}).get("t-b\x00records/bots")
            if bots and bots.get("after") and bots["after"][0] >= "b00300":
                break
            assert process.poll() is None, "the migration ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint mid-collection")
        process.send_signal(signal.SIGKILL)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(30)
    killed_at = bots["after"][0]
    assert killed_at < f"b{BULK - 1:05d}"
    resumed = migrate(ends, "rtdb", "pg", "--tenant", "t-b")
    assert resumed["returncode"] == 0 and resumed["resumed"], resumed["stderr"]
    tb = next(s for s in resumed["streams"] if s["stream"] == "records/bots")
    assert tb["resumed_after"] is not None and tb["resumed_after"][0] >= killed_at
    assert tb["updated"] < BULK
    green = parity(ends, "rtdb", "pg")
    assert green["ok"], failing(green)
    assert green["records"] >= BULK + 40

    # 4. freeze: two replicas of the old deployment refuse writes within seconds
    with ExitStack() as servers:
        replicas = [
            servers.enter_context(running_server(tmp_path / f"replica-{n}", ends["rtdb"]))
            for n in (1, 2)
        ]
        token = admin_cli(replicas[0], "token", "create", "--tenant", LEGACY, "--role", "api")
        headers = {"Authorization": f"Bearer {token['token']}"}
        created = httpx.post(
            f"{replicas[0].url}/api/v1/bots",
            headers=headers,
            json={"id": "pre-freeze", "name": "p"},
            timeout=30,
        )
        assert created.status_code == 201, created.text
        frozen = botmox(
            ends["rtdb"], "cutover", "freeze", "--backend", "rtdb", "--retry-after", "30", "--json"
        )
        assert json.loads(frozen.stdout)["frozen"] is True, frozen.stderr
        time.sleep(2.5)
        for replica in replicas:
            refused = httpx.post(
                f"{replica.url}/api/v1/bots", headers=headers, json={"name": "during"}, timeout=30
            )
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == "30"
            assert refused.json()["error"]["code"] == "WRITES_FROZEN"
            assert (
                httpx.get(f"{replica.url}/api/v1/bots", headers=headers, timeout=30).status_code
                == 200
            )
            assert httpx.get(f"{replica.url}/api/v1/health", timeout=30).status_code == 200

    # 5. final sync (prune) and parity
    final = migrate(ends, "rtdb", "pg", "--final")
    assert final["returncode"] == 0, final["problems"]
    # the bot made before the freeze, and the API token the replicas were set up with (tokens
    # are a migrated stream too); parity below proves nothing else differs
    assert final["prune"] is True and final["writes"] >= 1
    assert parity(ends, "rtdb", "pg")["ok"]

    # 6. switch: a server on the target answers ready; the smoke against it; writes there
    cutover_ms = int(time.time() * 1000)
    with running_server(tmp_path / "new", ends["pg"]) as server:
        switch = botmox(
            ends["pg"], "cutover", "switch", "--to", "supabase", "--ready-url", server.url, "--json"
        )
        assert switch.returncode == 0, switch.stdout + switch.stderr
        assert json.loads(switch.stdout)["apply"] == {"BOTMOX_DATA_BACKEND": "supabase"}
        token = admin_cli(server, "token", "create", "--tenant", LEGACY, "--role", "api")
        api = httpx.Client(
            base_url=f"{server.url}/api/v1",
            headers={"Authorization": f"Bearer {token['token']}"},
            timeout=30,
        )
        with api:
            listed = api.get("/bots", params={"limit": 200})
            assert listed.status_code == 200 and listed.json()["meta"]["total"] == 41
            assert api.get("/bots/bot-001").json()["data"]["character"]["имя"] == "Тралл"
            for path in ("/resources/licenses", "/workspace/notes", "/finance/operations"):
                assert api.get(path).status_code == 200, path
            assert api.get("/settings").json()["data"]["theme"] == {"mode": "dark"}
            assert api.post("/bots", json={"id": "smoke", "name": "s"}).status_code == 201
            assert api.delete("/bots/smoke").status_code == 200
            assert api.patch("/settings/theme", json={"mode": "light"}).status_code == 200
            assert api.post("/bots", json={"id": "after-switch", "name": "a"}).status_code == 201
            assert api.patch("/bots/bot-020", json={"level": 80}).status_code == 200
            assert api.delete("/bots/bot-021").status_code == 200

    # 7. roll back: replay what changed after the switch into the old backend, parity green
    back = migrate(ends, "pg", "rtdb", "--since", str(cutover_ms), "--final")
    assert back["returncode"] == 0, back["problems"]
    legacy = {(s["tenant"], s["stream"]): s for s in back["streams"]}
    rolled = legacy[(LEGACY, "records/bots")]
    assert (rolled["created"], rolled["updated"], rolled["deleted"]) == (1, 1, 1)
    assert legacy[(LEGACY, "settings")]["updated"] == 1
    after = parity(ends, "pg", "rtdb")
    assert after["ok"], failing(after)
