"""The ``postgres`` rate-limit store on a real PostgreSQL: the migrated table (unlogged, RLS),
atomic reservations, several "replicas" (stores with their own pools) holding one limit under
concurrency, the sweep of ended windows, the role switch, and the limiter degrading to counting
per replica — with a warning — when the database cannot be reached."""

from __future__ import annotations

import asyncio
import logging
import time

import psycopg
import pytest
from botmox_supabase.plugin import build_rate_limit_store
from botmox_supabase.ratelimit import PostgresRateLimitStore
from botmox_supabase.testing import _free_port

from botmox_core.config import load_settings
from botmox_core.plugin import load_registry
from botmox_server.ratelimit import counters, rate_limit_store_factories, select_rate_limit_store
from botmox_server.ratelimit.counters import SharedCounter, lease_size


def test_the_counter_table_is_unlogged_and_forces_row_level_security(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "select relpersistence, relrowsecurity, relforcerowsecurity from pg_class"
            " where oid = 'botmox.rate_limit_counters'::regclass"
        ).fetchone()
    assert row == ("u", True, True)


def test_reservations_add_up_per_bucket_and_window(database_url: str) -> None:
    # Windows that have not ended: the first reservation starts the sweep of ended windows in
    # the background, which would delete a row that expired in 1970 between two reservations.
    window = int(time.time()) // 600 * 600
    ends = window + 3600

    async def run() -> list[int]:
        store = PostgresRateLimitStore(database_url)
        await store.start()
        try:
            return [
                await store.reserve("t:a", window, 3, ends),
                await store.reserve("t:a", window, 3, ends),
                await store.reserve("t:b", window, 1, ends),
                await store.reserve("t:a", window + 600, 5, ends + 600),
            ]
        finally:
            await store.close()

    assert asyncio.run(run()) == [3, 6, 1, 5]


def test_three_replicas_hold_one_limit_under_concurrency(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 300
    # The shared limit, not the store's deadline: on a host loaded by the other suites a
    # reservation can take over 0.5 s, and each replica then rightly counts on its own.
    monkeypatch.setattr(counters, "STORE_TIMEOUT", 30.0)

    async def run() -> int:
        stores = [PostgresRateLimitStore(database_url) for _ in range(3)]
        for store in stores:
            await store.start()
        try:
            counters = [SharedCounter(store, window=3600) for store in stores]
            now = time.time()
            decisions = await asyncio.gather(
                *(counters[i % 3].ahit("t:shared", limit, now) for i in range(2 * limit))
            )
            return sum(d.allowed for d in decisions)
        finally:
            for store in stores:
                await store.close()

    allowed = asyncio.run(run())
    assert limit - 3 * lease_size(limit) <= allowed <= limit, allowed


def test_ended_windows_are_swept(database_url: str) -> None:
    async def run() -> None:
        store = PostgresRateLimitStore(database_url)
        await store.start()
        try:
            await store.reserve("t:old", 0, 1, 60)  # ended in 1970
            await store.reserve("t:new", 0, 1, int(time.time()) + 3600)
            if store._sweeping is not None:
                await store._sweeping
        finally:
            await store.close()

    asyncio.run(run())
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("select bucket from botmox.rate_limit_counters").fetchall()
    assert rows == [("t:new",)]


def test_role_switch_per_reservation(database_url: str) -> None:
    async def run() -> int:
        store = PostgresRateLimitStore(database_url, role="service_role")
        await store.start()
        try:
            return await store.reserve("t:role", 0, 2, int(time.time()) + 60)
        finally:
            await store.close()

    assert asyncio.run(run()) == 2


def test_an_unreachable_database_degrades_to_per_replica_counting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"postgresql://postgres:x@127.0.0.1:{_free_port()}/postgres"

    async def run() -> list[bool]:
        store = PostgresRateLimitStore(url, connect_timeout=1)
        await store.start()
        try:
            counter = SharedCounter(store, window=3600)
            started = time.monotonic()
            allowed = [(await counter.ahit("t:x", 3, time.time())).allowed for _ in range(5)]
            assert time.monotonic() - started < 3  # one bounded wait, not one per request
            assert counter.degraded
            return allowed
        finally:
            await store.close()

    with caplog.at_level(logging.WARNING, logger="botmox.ratelimit"):
        allowed = asyncio.run(run())
    assert allowed == [True, True, True, False, False]  # the limit, counted on this replica
    assert any("counting per replica" in r.getMessage() for r in caplog.records)


def test_the_plugin_registers_the_store_and_the_backend_prefers_it(database_url: str) -> None:
    settings = load_settings(
        {"DATA_BACKEND": "supabase", "BOTMOX_SUPABASE_DATABASE_URL": database_url}
    )
    factories = rate_limit_store_factories(load_registry({}))
    assert "postgres" in factories
    assert isinstance(build_rate_limit_store(settings), PostgresRateLimitStore)

    class Backend:
        preferred_rate_limit_store = "postgres"

    assert select_rate_limit_store(None, Backend(), set(factories)) == "postgres"
