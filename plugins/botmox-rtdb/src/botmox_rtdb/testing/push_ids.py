"""Push ids: 20 characters, chronologically sortable, unique.

Eight characters encode the milliseconds since the epoch in a 64-character alphabet whose
order matches ASCII order; twelve random characters follow. Ids made in the same millisecond
increment the random part, so they still sort in creation order.
"""

from __future__ import annotations

import secrets
import threading
import time

__all__ = ["PUSH_ID_ALPHABET", "PushIdGenerator"]

PUSH_ID_ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


class PushIdGenerator:
    """Thread-safe generator of push ids."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_random: list[int] = [0] * 12

    def next_id(self, now_ms: int | None = None) -> str:
        """A new push id for time ``now_ms`` (default: now)."""
        millis = int(time.time() * 1000) if now_ms is None else now_ms
        with self._lock:
            if millis <= self._last_ms:
                # Same (or an earlier, clock-stepped) millisecond: keep the last time and bump.
                millis = self._last_ms
                position = 11
                while position >= 0 and self._last_random[position] == 63:
                    self._last_random[position] = 0
                    position -= 1
                if position < 0:
                    millis += 1  # 64**12 ids in one millisecond: move to the next one
                    self._last_random = [secrets.randbelow(64) for _ in range(12)]
                else:
                    self._last_random[position] += 1
            else:
                self._last_random = [secrets.randbelow(64) for _ in range(12)]
            self._last_ms = millis
            time_chars = []
            for _ in range(8):
                time_chars.append(PUSH_ID_ALPHABET[millis % 64])
                millis //= 64
            random_chars = (PUSH_ID_ALPHABET[n] for n in self._last_random)
            return "".join(reversed(time_chars)) + "".join(random_chars)
