"""The ``postgres`` agent transport on a real PostgreSQL: wake-ups cross from one transport
instance (replica) to another through LISTEN/NOTIFY, stay on their channel and agent, and the
listening connection comes back by itself after the database restarts."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any

import psycopg
import pytest
from botmox_supabase.migrations import apply_migrations
from botmox_supabase.testing import PostgresUnavailable, TemporaryPostgres, require_postgres
from botmox_supabase.transport import PostgresTransport

from botmox_core.config import load_settings
from botmox_core.errors import BadRequestError, ConfigurationError
from botmox_core.plugin.manager import load_registry

WAIT = 5.0


@asynccontextmanager
async def started(dsn: str, **options: Any) -> AsyncIterator[PostgresTransport]:
    transport = PostgresTransport(dsn, **options)
    await transport.start()
    try:
        assert transport.listening
        yield transport
    finally:
        await transport.stop()


class Inbox:
    """A subscription read in the background, so tests can wait for what arrives."""

    def __init__(self, transport: PostgresTransport, agent_id: str) -> None:
        self.messages: list[Mapping[str, Any]] = []
        self._arrived = asyncio.Event()
        self._stream = transport.subscribe(agent_id)
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self._stream:
            self.messages.append(message)
            self._arrived.set()

    async def next(self, timeout: float = WAIT) -> Mapping[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while not self.messages:
            self._arrived.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError("no message arrived")
            with_timeout = asyncio.wait_for(self._arrived.wait(), remaining)
            try:
                await with_timeout
            except TimeoutError:
                raise AssertionError("no message arrived") from None
        return self.messages.pop(0)

    async def close(self) -> None:
        self.task.cancel()
        with suppress(asyncio.CancelledError):
            await self.task
        await self._stream.aclose()  # type: ignore[attr-defined]


async def settled() -> None:
    """Let every subscription register (first iteration of its generator)."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_a_wake_up_reaches_the_replica_holding_the_agent(database_url: str) -> None:
    async def scenario() -> None:
        async with started(database_url) as replica_a, started(database_url) as replica_b:
            on_b = Inbox(replica_b, "agt_1")
            also_on_a = Inbox(replica_a, "agt_1")
            other_agent = Inbox(replica_b, "agt_2")
            await settled()
            await replica_a.publish("agt_1", {"type": "cancel", "command_id": "cmd_9"})
            assert await on_b.next() == {"type": "cancel", "command_id": "cmd_9"}
            assert await also_on_a.next() == {"type": "cancel", "command_id": "cmd_9"}
            await replica_b.publish("agt_1", {"type": "wake"})
            assert await on_b.next() == {"type": "wake"}
            assert await also_on_a.next() == {"type": "wake"}
            await asyncio.sleep(0.3)  # any echo or stray delivery would have arrived by now
            assert on_b.messages == [] and also_on_a.messages == []  # exactly once each
            assert other_agent.messages == []
            for inbox in (on_b, also_on_a, other_agent):
                await inbox.close()
            assert replica_b._subscribers == {}

    asyncio.run(scenario())


def test_wake_up_latency_across_replicas(database_url: str) -> None:
    """200 wake-ups from replica A to an agent on replica B: every one arrives, in order."""

    async def scenario() -> list[float]:
        async with started(database_url) as replica_a, started(database_url) as replica_b:
            inbox = Inbox(replica_b, "agt_lat")
            await settled()
            loop = asyncio.get_running_loop()
            latencies = []
            for n in range(200):
                sent = loop.time()
                await replica_a.publish("agt_lat", {"type": "wake", "n": n})
                assert await inbox.next() == {"type": "wake", "n": n}
                latencies.append((loop.time() - sent) * 1000)
            await inbox.close()
            return sorted(latencies)

    latencies = asyncio.run(scenario())
    p50, p99 = latencies[len(latencies) // 2], latencies[int(len(latencies) * 0.99)]
    print(f"\nNOTIFY wake-up replica A -> B: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
    assert p99 < 1000


def test_channels_and_foreign_notifications(database_url: str) -> None:
    async def scenario() -> None:
        async with (
            started(database_url) as replica,
            started(database_url, channel="other_deployment") as elsewhere,
        ):
            inbox = Inbox(replica, "agt_1")
            await settled()
            await elsewhere.publish("agt_1", {"type": "wake"})
            async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as raw:
                for junk in ("not json", "[1, 2]", json.dumps({"a": 5, "m": {}}), "{}"):
                    await raw.execute("select pg_notify('botmox_agents', %s)", (junk,))
                await raw.execute(
                    "select pg_notify('botmox_agents', %s)",
                    (json.dumps({"a": "agt_1", "m": {"type": "wake", "from": "raw"}}),),
                )
            assert await inbox.next() == {"type": "wake", "from": "raw"}
            await asyncio.sleep(0.3)
            assert inbox.messages == []
            assert replica.listening
            await inbox.close()

    asyncio.run(scenario())


def test_messages_are_ids_only(database_url: str) -> None:
    async def scenario() -> None:
        async with started(database_url) as replica:
            with pytest.raises(BadRequestError, match="ids only"):
                await replica.publish("agt_1", {"type": "wake", "blob": "x" * 8000})
            with pytest.raises(BadRequestError, match="JSON"):
                await replica.publish("agt_1", {"type": "wake", "when": object()})

    asyncio.run(scenario())


@pytest.mark.parametrize("channel", ["", "Upper", "1abc", "a-b", "x" * 64, 'a"; drop'])
def test_unsafe_channel_names_are_refused(channel: str) -> None:
    with pytest.raises(ConfigurationError, match="channel"):
        PostgresTransport("postgresql://u:p@127.0.0.1:5432/db", channel=channel)


def test_stop_ends_subscriptions(database_url: str) -> None:
    async def scenario() -> None:
        transport = PostgresTransport(database_url)
        await transport.start()
        stream = transport.subscribe("agt_1")
        waiter = asyncio.ensure_future(anext(stream))  # type: ignore[arg-type]
        await settled()
        await transport.stop()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiter, WAIT)
        assert not transport.listening
        await transport.stop()  # idempotent

    asyncio.run(scenario())


def test_registered_as_the_postgres_transport(database_url: str) -> None:
    environ = {
        "DATA_BACKEND": "supabase",
        "BOTMOX_AGENT_TRANSPORT": "postgres",
        "BOTMOX_SUPABASE_DATABASE_URL": "postgresql://u:secret@127.0.0.1:6543/postgres",
        "BOTMOX_SUPABASE_LISTEN_DATABASE_URL": database_url,
        "BOTMOX_SUPABASE_NOTIFY_CHANNEL": "botmox_prod",
    }
    registry = load_registry(environ)
    transport = registry.agent_transports.get("postgres")(load_settings(environ))
    assert isinstance(transport, PostgresTransport)
    assert transport.channel == "botmox_prod"
    assert "secret" not in repr(transport)
    assert transport._url == database_url  # listens on the session-mode URL, not the pooler
    with pytest.raises(ConfigurationError, match="notify_channel"):
        registry.agent_transports.get("postgres")(
            load_settings({**environ, "BOTMOX_SUPABASE_NOTIFY_CHANNEL": "Bad-Name"})
        )


def test_a_transaction_pooler_url_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="botmox_supabase.transport"):
        PostgresTransport("postgresql://u:secret@db.example.com:6543/postgres")
    assert "transaction mode" in caplog.text
    assert "secret" not in caplog.text


def test_killed_connections_are_replaced(database_url: str) -> None:
    """An administrator (or a pooler) ends the transport's sessions while the database stays
    up: the listener reconnects and wakes its subscribers, the publisher reconnects on the
    next publish, and that publish still arrives."""

    async def scenario() -> None:
        options = {"connect_timeout": 1.0, "ping_interval": 0.5, "max_backoff": 0.5}
        async with (
            started(database_url, **options) as replica_a,
            started(database_url, **options) as replica_b,
        ):
            inbox = Inbox(replica_b, "agt_1")
            await settled()
            await replica_a.publish("agt_1", {"type": "wake", "n": 1})
            assert await inbox.next() == {"type": "wake", "n": 1}
            async with await psycopg.AsyncConnection.connect(
                database_url, autocommit=True
            ) as admin:
                cursor = await admin.execute(
                    "select count(*) from (select pg_terminate_backend(pid) from"
                    " pg_stat_activity where application_name in"
                    " ('botmox-listen', 'botmox-notify') and datname = current_database()) t"
                )
                assert await cursor.fetchone() == (3,)  # two listeners, A's publisher
            assert await inbox.next(timeout=10) == {"type": "wake"}  # woken after reconnect
            assert replica_b.connections == 2
            await replica_a.publish("agt_1", {"type": "wake", "n": 2})
            assert await inbox.next() == {"type": "wake", "n": 2}
            await inbox.close()

    asyncio.run(scenario())


# -- the database restarts ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[TemporaryPostgres]:
    try:
        pg = TemporaryPostgres()
    except PostgresUnavailable as exc:
        require_postgres(str(exc))
    try:
        pg.start()
        apply_migrations(pg.dsn)
        yield pg
    finally:
        pg.destroy()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
def test_listening_resumes_after_the_database_restarts(
    cluster: TemporaryPostgres, mode: str
) -> None:
    async def scenario() -> None:
        options = {"connect_timeout": 1.0, "ping_interval": 0.5, "max_backoff": 0.5}
        async with (
            started(cluster.dsn, **options) as replica_a,
            started(cluster.dsn, **options) as replica_b,
        ):
            inbox = Inbox(replica_b, "agt_1")
            await settled()
            await replica_a.publish("agt_1", {"type": "wake", "n": 1})
            assert await inbox.next() == {"type": "wake", "n": 1}

            await asyncio.to_thread(cluster.stop, mode)
            for _ in range(100):
                if not replica_b.listening:
                    break
                await asyncio.sleep(0.05)
            assert not replica_b.listening
            # Publishing during the outage neither raises nor hangs.
            await asyncio.wait_for(replica_a.publish("agt_9", {"type": "wake"}), 10)

            await asyncio.to_thread(cluster.start)
            # Back: the subscriber is woken (it may have missed notifications meanwhile) ...
            assert await inbox.next(timeout=15) == {"type": "wake"}
            assert replica_b.listening and replica_b.connections == 2
            # ... and notifications flow again, through a new publishing connection too.
            await replica_a.publish("agt_1", {"type": "wake", "n": 2})
            assert await inbox.next() == {"type": "wake", "n": 2}
            await inbox.close()

    try:
        asyncio.run(scenario())
    finally:
        if not cluster.running:
            cluster.start()
