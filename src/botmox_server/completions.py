"""Results from a backend's thread handed to the futures of an event loop, one wake-up per burst.

A backend that commits on a thread of its own (the SQLite audit group commit) finishes many
requests at once. ``loop.call_soon_threadsafe`` per request would wake the loop (a write to its
self-pipe) once per request; :class:`LoopCompletions` queues the results and schedules a single
drain for everything that arrives before the loop gets to it.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import weakref
from typing import Any

__all__ = ["LoopCompletions", "completions_for"]


class LoopCompletions:
    """Settles futures of one event loop from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ready: collections.deque[tuple[asyncio.Future[Any], Any]] = collections.deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def settle_soon(self, future: asyncio.Future[Any], value: Any) -> None:
        """Set ``future``'s result to ``value`` on its loop, soon (callable from any thread;
        a future already done, e.g. cancelled, is left alone)."""
        self._ready.append((future, value))
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False  # anything queued from now on schedules another drain
        ready = self._ready
        while ready:
            future, value = ready.popleft()
            if not future.done():
                future.set_result(value)


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopCompletions] = (
    weakref.WeakKeyDictionary()
)


def completions_for(loop: asyncio.AbstractEventLoop) -> LoopCompletions:
    """The :class:`LoopCompletions` of ``loop`` (made on first use; call it on the loop)."""
    found = _BY_LOOP.get(loop)
    if found is None:
        found = _BY_LOOP[loop] = LoopCompletions(loop)
    return found
