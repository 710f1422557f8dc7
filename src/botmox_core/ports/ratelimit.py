"""Rate-limit store port: a counter shared by every server replica, so that a client's limit
holds across replicas (the embedded default counts in process memory and needs no store).

Implemented by botmox-supabase (``postgres``: a counter row per bucket and window in
PostgreSQL). Registered with the ``botmox_register_rate_limit_stores`` hook; selected with
``BOTMOX_RATE_LIMIT_STORE`` or the data backend's ``preferred_rate_limit_store``. Stores are
asynchronous: the server calls them on the request path, on the event loop.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["RateLimitStore"]


class RateLimitStore(Protocol):
    """Fixed-window request counters shared by server replicas."""

    name: str

    async def start(self) -> None:
        """Open connections; called once at server start. Must not fail when the store is
        unreachable (the server then counts per replica until it answers)."""

    async def reserve(self, bucket: str, window_start: int, amount: int, expires_at: int) -> int:
        """Add ``amount`` to the counter of ``(bucket, window_start)`` atomically and return the
        counter's new total (all replicas' reservations in this window, this one included).
        ``expires_at`` (epoch seconds) is when the row may be deleted. Raises on any failure."""

    async def close(self) -> None:
        """Close connections; called once at server shutdown."""
