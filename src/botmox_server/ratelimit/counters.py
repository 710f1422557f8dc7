"""Fixed-window request counters: exact in process memory, or shared by replicas through a
:class:`~botmox_core.ports.ratelimit.RateLimitStore` with a small local lease.

Windows are aligned to the epoch (``floor(now / window) * window``), so replicas with
synchronised clocks agree on them without talking to each other.

**Shared counting with leases.** A replica does not ask the store for every request: it
reserves a few requests at a time (``lease_size``: 1 % of the limit, at most 50) with one atomic
``reserve`` and serves them locally. The store's total never exceeds what was reserved, and a
reservation is only granted up to the limit, so the allowed requests of one bucket in one window
across all replicas are between ``limit - replicas * lease_size`` (leases left unused when the
window ends) and ``limit``. Once the store reports the limit reached, the replica refuses that
bucket locally until the window ends, without further round trips.

**When the store fails** (an error, or no answer within ``STORE_TIMEOUT`` seconds) the counter
degrades to counting per replica — each replica then allows up to the full limit — for
``RETRY_AFTER_FAILURE`` seconds before asking the store again. It logs a warning when it
degrades and an info line when the store answers again; requests are never refused because the
store is down.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import NamedTuple

from botmox_core.ports.ratelimit import RateLimitStore

__all__ = ["Decision", "LocalCounter", "SharedCounter", "lease_size"]

log = logging.getLogger("botmox.ratelimit")

STORE_TIMEOUT = 0.5
RETRY_AFTER_FAILURE = 5.0
MAX_LEASE = 50


class Decision(NamedTuple):
    """The outcome of counting one request.

    Attributes:
        allowed: whether the request may proceed.
        limit: the bucket's limit per window.
        remaining: requests left in this window (an estimate across replicas).
        reset: whole seconds until the window ends (at least 1).
    """

    allowed: bool
    limit: int
    remaining: int
    reset: int


def lease_size(limit: int) -> int:
    """Requests a replica reserves from the shared store at a time."""
    return max(1, min(MAX_LEASE, limit // 100))


def _window(now: float, window: int) -> tuple[int, int]:
    start = int(now // window) * window
    return start, max(1, math.ceil(start + window - now))


class LocalCounter:
    """Exact per-process counts (the default store, ``memory``). Everything from a previous
    window is dropped when a new one starts, so memory is bounded by the buckets seen in one
    window."""

    name = "memory"

    def __init__(self, window: int) -> None:
        self.window = window
        self._start = -1
        self._counts: dict[str, int] = {}

    def hit(self, bucket: str, limit: int, now: float) -> Decision:
        start, reset = _window(now, self.window)
        if start != self._start:
            self._start, self._counts = start, {}
        used = self._counts.get(bucket, 0) + 1
        self._counts[bucket] = used
        return Decision(used <= limit, limit, max(0, limit - used), reset)

    async def ahit(self, bucket: str, limit: int, now: float) -> Decision:
        return self.hit(bucket, limit, now)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _Lease:
    __slots__ = ("exhausted", "left", "pending", "seen_total")

    def __init__(self) -> None:
        self.left = 0
        self.seen_total = 0
        self.exhausted = False
        self.pending: asyncio.Future[None] | None = None


class SharedCounter:
    """Counts shared by replicas through ``store`` (see the module docstring)."""

    def __init__(self, store: RateLimitStore, window: int) -> None:
        self.store = store
        self.name = store.name
        self.window = window
        self._start = -1
        self._leases: dict[str, _Lease] = {}
        self._fallback = LocalCounter(window)
        self._degraded_until = 0.0
        self._degraded = False

    async def start(self) -> None:
        await self.store.start()

    async def close(self) -> None:
        await self.store.close()

    @property
    def degraded(self) -> bool:
        """True while counting per replica because the store failed."""
        return self._degraded

    async def ahit(self, bucket: str, limit: int, now: float) -> Decision:
        start, reset = _window(now, self.window)
        if start != self._start:
            self._start, self._leases = start, {}
        lease = self._leases.get(bucket)
        if lease is None:
            lease = self._leases[bucket] = _Lease()
        while True:
            if lease.left > 0:
                lease.left -= 1
                remaining = max(0, limit - lease.seen_total + lease.left)
                return Decision(True, limit, remaining, reset)
            if lease.exhausted:
                return Decision(False, limit, 0, reset)
            if self._degraded and now < self._degraded_until:
                return self._fallback.hit(bucket, limit, now)
            if lease.pending is not None:
                await asyncio.shield(lease.pending)
                continue
            if not await self._reserve(bucket, lease, limit, start, now):
                return self._fallback.hit(bucket, limit, now)

    async def _reserve(
        self, bucket: str, lease: _Lease, limit: int, start: int, now: float
    ) -> bool:
        """One reservation for ``lease``; False when the store failed (now degraded)."""
        amount = lease_size(limit)
        pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        lease.pending = pending
        try:
            total = await asyncio.wait_for(
                self.store.reserve(bucket, start, amount, start + self.window), STORE_TIMEOUT
            )
        except Exception as exc:  # any store failure degrades, never refuses or raises
            if not self._degraded:
                log.warning(
                    "rate limit store %s failed (%s); counting per replica until it answers",
                    self.name,
                    type(exc).__name__,
                )
            self._degraded = True
            self._degraded_until = now + RETRY_AFTER_FAILURE
            return False
        finally:
            lease.pending = None
            pending.set_result(None)
        if self._degraded:
            self._degraded = False
            log.info("rate limit store %s answers again; counting across replicas", self.name)
        granted = max(0, min(amount, limit - (total - amount)))
        lease.left += granted
        lease.seen_total = total
        lease.exhausted = total >= limit
        return True
