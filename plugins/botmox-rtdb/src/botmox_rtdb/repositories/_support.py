"""What the core repositories on RTDB share: reading a tenant's children, paging, counters."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from botmox_core.errors import BadRequestError
from botmox_rtdb.records import children_of
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.transactions import UNCHANGED, run_transaction
from botmox_rtdb.write_buffer import WriteBuffer

K = TypeVar("K", str, int, tuple[int, str, str, str, str])
T = TypeVar("T")


def _records_by_id(found: Any) -> dict[str, Any]:
    """Query results keyed by the records' ``id``: firebase-admin returns an ordered dict, or a
    plain list of values when the server answered an array (dense integer keys)."""
    values = found.values() if isinstance(found, dict) else found if isinstance(found, list) else []
    return {str(record.get("id")): record for record in values if isinstance(record, dict)}


def _tenant_children(buffer: WriteBuffer, parent: str) -> dict[str, Any]:
    """Every child of ``parent`` (stored, then this unit's pending writes), by key."""
    with map_rtdb_errors("scan records"):
        stored = dict(children_of(buffer.ref(parent).get()))
    stored.update(buffer.pending_children(parent))
    return {key: value for key, value in stored.items() if isinstance(value, dict)}


def _page(values: Iterable[tuple[K, T]], after: K | None, limit: int) -> list[T]:
    """The values whose key is after ``after``, in key order, at most ``limit``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise BadRequestError(f"limit must be a non-negative integer, got {limit!r}")
    ordered = sorted(values, key=lambda pair: pair[0])
    return [value for key, value in ordered if after is None or key > after][:limit]


def _follow_counter(buffer: WriteBuffer, path: str, used: int, operation: str) -> None:
    """Raise the counter at ``path`` to at least ``used`` (never down)."""

    def follow(current: Any) -> Any:
        value = current if isinstance(current, int) and not isinstance(current, bool) else 0
        return UNCHANGED if value >= used else used

    run_transaction(buffer.ref(path), follow, operation)


def _next_counter(buffer: WriteBuffer, path: str, operation: str) -> int:
    def increment(current: Any) -> Any:
        return (current if isinstance(current, int) and not isinstance(current, bool) else 0) + 1

    _, value = run_transaction(buffer.ref(path), increment, operation)
    return int(value)
