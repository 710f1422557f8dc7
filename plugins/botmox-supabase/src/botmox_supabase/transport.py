"""The ``postgres`` agent transport: PostgreSQL ``LISTEN/NOTIFY`` wakes the server replica that
holds an agent's socket (``BOTMOX_AGENT_TRANSPORT=postgres``).

Every replica keeps one dedicated **session-mode** connection (psycopg async, autocommit) that
``LISTEN``\\s on one channel (default ``botmox_agents``), and a second one that publishes with
``pg_notify``. A notification carries ids only — ``{"a": <agent id>, "m": <message>}``, e.g.
``{"type": "wake"}`` or ``{"type": "cancel", "command_id": ...}`` — never command payloads or
credentials; the command queue in the repository is the source of truth, so a lost wake-up
delays delivery but loses nothing.

* A message published here reaches this replica's own subscribers at once (not through the
  database), and every other replica through ``NOTIFY``; this replica ignores the echo of its own
  notifications (by the publishing connection's backend pid).
* The listening connection is checked with a round trip whenever it has been quiet for
  ``ping_interval`` seconds (and by TCP keepalives). When it breaks — the database restarted, a
  network cut — it is re-established with jittered exponential backoff, and every local
  subscriber then gets a ``{"type": "wake"}`` so that nothing published meanwhile stays
  unnoticed.
* Publishing while the database is unreachable logs a warning and returns: the command is
  already stored, and the replicas wake their agents when their own connections come back.

``LISTEN`` needs a session: through Supavisor's transaction mode (port 6543) notifications are
never delivered. Point ``BOTMOX_SUPABASE_LISTEN_DATABASE_URL`` at a direct or session-mode URL
(port 5432) in that case; queries keep using the transaction-mode pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from botmox_core.errors import BadRequestError, ConfigurationError
from botmox_supabase.options import SupabaseOptions, redact_database_url

if TYPE_CHECKING:
    from botmox_core.config import Settings

__all__ = ["DEFAULT_CHANNEL", "MAX_PAYLOAD_BYTES", "PostgresTransport"]

log = logging.getLogger(__name__)

DEFAULT_CHANNEL = "botmox_agents"
#: PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7999
#: Messages queued per local subscriber; past it, further wake-ups for it are dropped (a
#: wake-up is idempotent: the subscriber looks at the queue in the repository anyway).
QUEUE_LIMIT = 1000
_CHANNEL_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_WAKE: Mapping[str, Any] = {"type": "wake"}
_STOP = object()
_OWN_PIDS_KEPT = 8
_TRANSACTION_POOLER_PORT = 6543


def _connect_kwargs(timeout: float, application_name: str) -> dict[str, Any]:
    return {
        "autocommit": True,
        "prepare_threshold": None,
        "connect_timeout": max(1, round(timeout)),
        "application_name": application_name,
        "keepalives": 1,
        "keepalives_idle": 10,
        "keepalives_interval": 5,
        "keepalives_count": 3,
    }


class PostgresTransport:
    """:class:`~botmox_core.ports.AgentTransport` over PostgreSQL ``LISTEN/NOTIFY``.

    Args:
        database_url: URL of a connection that keeps its session (direct, or Supavisor session
            mode); the listening and the publishing connection both use it.
        channel: the notification channel (lower-case letters, digits, ``_``; ≤ 63 chars);
            replicas of one deployment must share it.
        connect_timeout: seconds per connection attempt.
        ping_interval: seconds of silence after which the listening connection is checked.
        max_backoff: longest pause between reconnection attempts.
    """

    name = "postgres"

    def __init__(
        self,
        database_url: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        connect_timeout: float = 5.0,
        ping_interval: float = 10.0,
        max_backoff: float = 5.0,
    ) -> None:
        if not _CHANNEL_NAME.match(channel):
            raise ConfigurationError(
                f"notify channel {channel!r} must be 1-63 of a-z 0-9 _ (not starting with a digit)"
            )
        self._url = database_url
        self.channel = channel
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        self.max_backoff = max_backoff
        self._subscribers: dict[str, set[asyncio.Queue[Any]]] = {}
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()
        self._publisher: psycopg.AsyncConnection[Any] | None = None
        self._publish_lock = asyncio.Lock()
        self._own_pids: list[int] = []
        self._stopping = False
        #: How many times the listening connection was (re-)established; for health and tests.
        self.connections = 0
        if urlsplit(database_url).port == _TRANSACTION_POOLER_PORT:
            log.warning(
                "agent transport: %s looks like Supavisor's transaction mode, where LISTEN never"
                " receives notifications; set BOTMOX_SUPABASE_LISTEN_DATABASE_URL to a session"
                " or direct connection",
                redact_database_url(database_url),
            )

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresTransport:
        """Build from the ``supabase`` plugin options: ``listen_database_url`` (else
        ``database_url``), ``notify_channel``."""
        options = SupabaseOptions.from_settings(settings)
        return cls(
            options.listen_database_url or options.database_url,
            channel=options.notify_channel,
            connect_timeout=options.connect_timeout,
        )

    def __repr__(self) -> str:
        return f"PostgresTransport({redact_database_url(self._url)!r}, channel={self.channel!r})"

    @property
    def listening(self) -> bool:
        """Whether the listening connection is up right now."""
        return self._listening.is_set()

    # -- AgentTransport ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening; waits up to ``connect_timeout`` for the first ``LISTEN`` (if the
        database is down it keeps trying in the background instead of failing the start)."""
        if self._listener is not None:
            return
        self._stopping = False
        self._listener = asyncio.create_task(self._listen_forever(), name="botmox-pg-listen")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), timeout=self.connect_timeout + 1)
        if not self._listening.is_set():
            log.warning("agent transport: not listening yet (database unreachable); retrying")

    async def publish(self, agent_id: str, message: Mapping[str, Any]) -> None:
        """Wake ``agent_id``'s socket on this replica and, through ``NOTIFY``, on the others."""
        try:
            payload = json.dumps(
                {"a": agent_id, "m": dict(message)}, separators=(",", ":"), allow_nan=False
            )
        except (TypeError, ValueError):
            raise BadRequestError("agent transport messages must be JSON objects") from None
        if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise BadRequestError(
                f"agent transport messages are ids only: at most {MAX_PAYLOAD_BYTES} bytes"
            )
        self._deliver_locally(agent_id, dict(message))
        async with self._publish_lock:
            for attempt in (1, 2):  # a connection that died while idle is replaced once
                try:
                    conn = await self._publishing_connection()
                    await conn.execute("select pg_notify(%s, %s)", (self.channel, payload))
                    return
                except (psycopg.Error, OSError) as exc:
                    await self._drop_publisher()
                    if attempt == 2 or self._stopping:
                        log.warning(
                            "agent transport: wake-up for agent %s not sent to other replicas"
                            " (%s); they catch up when their database connection returns",
                            agent_id,
                            type(exc).__name__,
                        )

    async def subscribe(self, agent_id: str) -> AsyncIterator[Mapping[str, Any]]:
        """Messages for ``agent_id`` published on any replica, until closed (or :meth:`stop`)."""
        queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_LIMIT)
        self._subscribers.setdefault(agent_id, set()).add(queue)
        try:
            while True:
                item = await queue.get()
                if item is _STOP:
                    return
                yield item
        finally:
            subscribers = self._subscribers.get(agent_id)
            if subscribers is not None:
                subscribers.discard(queue)
                if not subscribers:
                    del self._subscribers[agent_id]

    async def stop(self) -> None:
        """Stop listening, close both connections and end every subscription. Idempotent."""
        self._stopping = True
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        async with self._publish_lock:
            await self._drop_publisher()
        for queues in list(self._subscribers.values()):
            for queue in list(queues):
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(_STOP)

    # -- internals ------------------------------------------------------------------------------

    def _deliver_locally(self, agent_id: str, message: Mapping[str, Any]) -> None:
        for queue in list(self._subscribers.get(agent_id, ())):
            if not queue.full():  # a stuck subscriber loses wake-ups, never blocks others
                queue.put_nowait(message)

    def _wake_everyone(self) -> None:
        for agent_id in list(self._subscribers):
            self._deliver_locally(agent_id, _WAKE)

    async def _publishing_connection(self) -> psycopg.AsyncConnection[Any]:
        if self._publisher is None or self._publisher.closed:
            self._publisher = await psycopg.AsyncConnection.connect(
                self._url, **_connect_kwargs(self.connect_timeout, "botmox-notify")
            )
            self._own_pids = [*self._own_pids, self._publisher.info.backend_pid][-_OWN_PIDS_KEPT:]
        return self._publisher

    async def _drop_publisher(self) -> None:
        conn, self._publisher = self._publisher, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    def _on_notify(self, notify: psycopg.Notify) -> None:
        if notify.pid in self._own_pids:
            return  # our own publish: already delivered locally
        try:
            document = json.loads(notify.payload)
        except ValueError:
            log.debug("agent transport: ignoring a non-JSON notification")
            return
        if not isinstance(document, dict):
            return
        agent_id, message = document.get("a"), document.get("m")
        if isinstance(agent_id, str) and isinstance(message, dict):
            self._deliver_locally(agent_id, message)

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while not self._stopping:
            conn: psycopg.AsyncConnection[Any] | None = None
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self._url, **_connect_kwargs(self.connect_timeout, "botmox-listen")
                )
                await conn.execute(sql.SQL("listen {}").format(sql.Identifier(self.channel)))
                self.connections += 1
                self._listening.set()
                backoff = 0.1
                if self.connections > 1:
                    log.info("agent transport: listening again; waking local agents")
                    self._wake_everyone()
                while True:
                    async for notify in conn.notifies(timeout=self.ping_interval):
                        self._on_notify(notify)
                    await asyncio.wait_for(
                        conn.execute("select 1"), timeout=self.connect_timeout + 1
                    )
            except asyncio.CancelledError:
                raise
            except (psycopg.Error, OSError, TimeoutError) as exc:
                if not self._stopping:
                    log.warning(
                        "agent transport: listening connection lost (%s); reconnecting",
                        type(exc).__name__,
                    )
            except Exception:  # never stop listening for good over one surprise
                log.exception("agent transport: listener failed; reconnecting")
            finally:
                self._listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            if self._stopping:
                return
            await asyncio.sleep(backoff * (0.5 + random.random()))  # noqa: S311 - jitter
            backoff = min(backoff * 2, self.max_backoff)
