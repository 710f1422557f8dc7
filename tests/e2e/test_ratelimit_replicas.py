"""Three real server replicas on one PostgreSQL (``DATA_BACKEND=supabase``): a client spreading
its requests over all three, concurrently, gets the configured limit per window in total —
within 10 % (the shared ``postgres`` store) — not three times it. The control run with the
per-process ``memory`` store shows what the shared counter prevents.

Needs PostgreSQL (skips without it locally, fails under ``CI=true``).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from botmox_core.testing.server import RunningServer, admin_cli, running_server

TENANT = "tenant-replica-limits"
LIMIT = 300
WINDOW = 3600
REPLICAS = 3


def _postgres_database(stack: ExitStack) -> str:
    try:
        from botmox_supabase.testing import (
            PostgresUnavailable,
            migrated_database,
            require_postgres,
            running_postgres,
        )
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true and botmox-supabase is not installed", pytrace=False)
        pytest.skip("botmox-supabase is not installed (pip install -e plugins/botmox-supabase)")
    try:
        admin_dsn = stack.enter_context(running_postgres())
    except PostgresUnavailable as exc:
        require_postgres(str(exc))
    return str(stack.enter_context(migrated_database(admin_dsn)))


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    with ExitStack() as stack:
        yield _postgres_database(stack)


def _replicas(tmp: Path, dsn: str, store: str, stack: ExitStack) -> list[RunningServer]:
    env = {
        "DATA_BACKEND": "supabase",
        "BOTMOX_SUPABASE_DATABASE_URL": dsn,
        "BOTMOX_STORAGE": "localfs",
        "BOTMOX_RATE_LIMIT_REQUESTS": str(LIMIT),
        "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": str(LIMIT),
        "BOTMOX_RATE_LIMIT_WINDOW_SECONDS": str(WINDOW),
        "BOTMOX_RATE_LIMIT_STORE": store,
    }
    return [stack.enter_context(running_server(tmp / f"{store}-{i}", env)) for i in range(REPLICAS)]


def _allowed_in_one_window(replicas: list[RunningServer], path: str, token: str | None) -> int:
    """Send 2 x LIMIT requests round robin over the replicas from 6 threads; the number
    answered 200 (retried with a fresh token if a window boundary fell inside the run)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    clients = [httpx.Client(base_url=r.url, headers=headers, timeout=30) for r in replicas]
    try:
        targets = list(itertools.islice(itertools.cycle(clients), 2 * LIMIT))
        with ThreadPoolExecutor(max_workers=6) as pool:
            codes = list(pool.map(lambda c: c.get(path).status_code, targets))
    finally:
        for client in clients:
            client.close()
    assert set(codes) <= {200, 429}, set(codes)
    return codes.count(200)


def _measure(replicas: list[RunningServer], path: str, token: str | None) -> int:
    for _ in range(2):
        window = int(time.time() // WINDOW)
        allowed = _allowed_in_one_window(replicas, path, token)
        if int(time.time() // WINDOW) == window:
            return allowed
    raise AssertionError("two window boundaries in a row")


def test_the_limit_holds_across_three_replicas(postgres_url: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        replicas = _replicas(tmp_path, postgres_url, "postgres", stack)
        token = admin_cli(replicas[0], "token", "create", "--tenant", TENANT, "--role", "admin")
        by_token = _measure(replicas, "/api/v1/agents", str(token["token"]))
        by_address = _measure(replicas, "/api/v1/license/public-key", None)
    print(f"\nshared postgres store, limit {LIMIT}: token {by_token}, address {by_address}")
    assert 0.9 * LIMIT <= by_token <= LIMIT
    assert 0.9 * LIMIT <= by_address <= LIMIT


def test_control_per_process_counting_allows_a_limit_per_replica(
    postgres_url: str, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        replicas = _replicas(tmp_path, postgres_url, "memory", stack)
        allowed = _measure(replicas, "/api/v1/license/public-key", None)
    print(f"\nper-process memory store, limit {LIMIT}: address {allowed}")
    assert allowed > 1.5 * LIMIT
