"""The ``postgres`` rate-limit store: request counters shared by every server replica, in the
UNLOGGED table ``botmox.rate_limit_counters`` (migration ``20261130000000_botmox_rate_limits``).

One statement per reservation (``INSERT ... ON CONFLICT DO UPDATE ... RETURNING``) on a small
async connection pool of its own (autocommit, no server-side prepared statements, so it works
through Supavisor's transaction mode too). The server's limiter reserves a lease of requests at a
time and degrades to counting per replica while this store fails (see
``botmox_server.ratelimit.counters``). Rows of ended windows are deleted every minute or so by
whichever replica gets there.

Selected with ``BOTMOX_RATE_LIMIT_STORE=postgres``, and by default on ``DATA_BACKEND=supabase``
(the backend's ``preferred_rate_limit_store``). Connection options are the ``supabase`` plugin's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import psycopg
import psycopg_pool
from psycopg import sql

from botmox_supabase.options import SupabaseOptions

if TYPE_CHECKING:
    from botmox_core.config import Settings

__all__ = ["PostgresRateLimitStore"]

log = logging.getLogger(__name__)

SWEEP_INTERVAL = 60.0
_RESERVE = (
    "insert into botmox.rate_limit_counters as c (bucket, window_start, used, expires_at)"
    " values (%s, %s, %s, to_timestamp(%s))"
    " on conflict (bucket, window_start) do update set used = c.used + excluded.used"
    " returning used"
)
_SWEEP = "delete from botmox.rate_limit_counters where expires_at < now()"


class PostgresRateLimitStore:
    """:class:`~botmox_core.ports.ratelimit.RateLimitStore` on PostgreSQL.

    Args:
        database_url: libpq URL (direct, session or transaction pooler).
        role: role switched to with ``SET LOCAL ROLE`` per statement (``BOTMOX_SUPABASE_ROLE``).
        connect_timeout: seconds per connection attempt.
        max_connections: pool size (reservations are short; a few connections serve thousands
            of requests a second, since most requests are served from local leases).
    """

    name = "postgres"

    def __init__(
        self,
        database_url: str,
        *,
        role: str | None = None,
        connect_timeout: float = 2.0,
        max_connections: int = 4,
    ) -> None:
        self._url = database_url
        self._role = role
        self._connect_timeout = connect_timeout
        self._max_connections = max_connections
        self._pool: psycopg_pool.AsyncConnectionPool[Any] | None = None
        self._next_sweep = 0.0
        self._sweeping: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresRateLimitStore:
        options = SupabaseOptions.from_settings(settings)
        return cls(options.database_url, role=options.role, connect_timeout=options.connect_timeout)

    async def start(self) -> None:
        """Open the pool in the background (the database may be down: reservations then fail
        and the limiter counts per replica until it answers)."""
        if self._pool is not None:
            return
        self._pool = psycopg_pool.AsyncConnectionPool(
            self._url,
            min_size=1,
            max_size=self._max_connections,
            timeout=2.0,
            kwargs={
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": max(1, round(self._connect_timeout)),
                "application_name": "botmox-ratelimit",
            },
            reconnect_timeout=30.0,
            name="botmox-ratelimit",
            open=False,
        )
        await self._pool.open(wait=False)

    async def reserve(self, bucket: str, window_start: int, amount: int, expires_at: int) -> int:
        if self._pool is None:
            raise RuntimeError("the postgres rate-limit store is not started")
        params = (bucket, window_start, amount, expires_at)
        async with self._pool.connection() as conn:
            if self._role:
                async with conn.transaction():
                    await conn.execute(
                        sql.SQL("set local role {}").format(sql.Identifier(self._role))
                    )
                    cursor = await conn.execute(_RESERVE, params)
                    row = await cursor.fetchone()
            else:
                cursor = await conn.execute(_RESERVE, params)
                row = await cursor.fetchone()
        if row is None:  # pragma: no cover - RETURNING always answers one row
            raise RuntimeError("rate limit counter returned no row")
        self._maybe_sweep()
        return int(row[0])

    def _maybe_sweep(self) -> None:
        now = time.monotonic()
        if now < self._next_sweep or (self._sweeping is not None and not self._sweeping.done()):
            return
        self._next_sweep = now + SWEEP_INTERVAL
        self._sweeping = asyncio.create_task(self._sweep(), name="botmox-ratelimit-sweep")

    async def _sweep(self) -> None:
        """Delete rows of ended windows; a failure is logged and retried next interval."""
        if self._pool is None:
            return
        try:
            async with self._pool.connection() as conn:
                if self._role:
                    async with conn.transaction():
                        await conn.execute(
                            sql.SQL("set local role {}").format(sql.Identifier(self._role))
                        )
                        await conn.execute(_SWEEP)
                else:
                    await conn.execute(_SWEEP)
        except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
            log.debug("rate limit sweep failed: %s", type(exc).__name__)

    async def close(self) -> None:
        if self._sweeping is not None:
            self._sweeping.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeping
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
