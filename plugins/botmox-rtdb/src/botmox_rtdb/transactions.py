"""Compare-and-set transactions on one RTDB location.

Each attempt reads the value with its ETag and writes the new value with ``if-match`` (the
SDK's :meth:`~firebase_admin.db.Reference.set_if_unchanged`); a 412 answer means someone else
wrote first, so the update function runs again on the value that won, after a short jittered
pause. This is what :meth:`firebase_admin.db.Reference.transaction` does, plus backoff under
contention, an explicit "leave unchanged" outcome and error mapping.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

from firebase_admin import db

from botmox_core.errors import ServiceUnavailableError
from botmox_rtdb.sdk_errors import map_rtdb_errors

__all__ = ["UNCHANGED", "run_transaction"]

MAX_ATTEMPTS = 60


class _Unchanged:
    def __repr__(self) -> str:
        return "UNCHANGED"


UNCHANGED: Any = _Unchanged()
"""Return this from an update function to end the transaction without writing."""


def run_transaction(
    ref: db.Reference, update: Callable[[Any], Any], operation: str
) -> tuple[bool, Any]:
    """Atomically replace the value at ``ref`` with ``update(current)``.

    ``update`` receives the current JSON value (``None`` when absent) and returns the new value
    or :data:`UNCHANGED`; it may run several times, so it must be pure. Exceptions it raises
    abort the transaction and propagate. Returns ``(written, value)``: whether a write happened,
    and the value now stored (the new one, or the current one when unchanged).
    Raises :class:`ServiceUnavailableError` when contention outlasts every attempt.
    """
    with map_rtdb_errors(operation):
        current, etag = ref.get(etag=True)
        for attempt in range(MAX_ATTEMPTS):
            new_value = update(current)
            if new_value is UNCHANGED:
                return False, current
            if new_value is None:
                raise ValueError("an update function must not return None; use UNCHANGED")
            written, current, etag = ref.set_if_unchanged(etag, new_value)
            if written:
                return True, new_value
            time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))  # noqa: S311
    raise ServiceUnavailableError(
        f"RTDB transaction for {operation} kept conflicting; try again"
    )
