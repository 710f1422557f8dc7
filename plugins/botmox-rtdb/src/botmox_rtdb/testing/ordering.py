"""RTDB ordering and query rules, as the REST API applies them.

Values order by type first — ``null`` < ``false`` < ``true`` < numbers < strings < objects —
then numbers numerically and strings by UTF-16 code units (JavaScript order); equal values
(and any two objects) are ordered by key. Keys that parse as 32-bit integers come first, in
numeric order, then every other key in string order.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from botmox_rtdb.testing.tree import InvalidDataError

__all__ = ["QuerySpec", "key_sort_key", "parse_query", "run_query", "value_sort_key"]

_INTEGER_KEY = re.compile(r"-?(0*)\d{1,10}", re.ASCII)
"""The JS SDK's integer-key test (``^-?(0*)\\d{1,10}$``): ASCII digits only, as ``\\d`` is in
JavaScript. Without ``re.ASCII`` Python would take ``"١٢"`` (Arabic-Indic digits) for 12."""
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1

QUERY_PARAMETERS = frozenset(
    {"orderBy", "startAt", "endAt", "equalTo", "limitToFirst", "limitToLast"}
)


def _utf16(text: str) -> bytes:
    return text.encode("utf-16-be", "surrogatepass")


def _key_as_int(key: str) -> int | None:
    if _INTEGER_KEY.fullmatch(key):
        number = int(key)
        if _INT32_MIN <= number <= _INT32_MAX:
            return number
    return None


def key_sort_key(key: str) -> tuple[Any, ...]:
    """Sort key of a child key: 32-bit integer keys first (numerically, shorter spelling first
    on a tie such as ``"1"``/``"01"``), then the rest in UTF-16 order."""
    number = _key_as_int(key)
    if number is not None:
        return (0, number, len(key))
    return (1, _utf16(key))


def value_sort_key(value: Any) -> tuple[Any, ...]:
    """Sort key of an indexed value by the type ranks and in-type order above."""
    if value is None:
        return (0,)
    if value is False:
        return (1,)
    if value is True:
        return (2,)
    if isinstance(value, int | float):
        return (3, value)
    if isinstance(value, str):
        return (4, _utf16(value))
    return (5,)


class QuerySpec:
    """A parsed query: ``order_by`` (``$key``, ``$value``, ``$priority`` or a child path) and
    optional bounds and limits (JSON-decoded)."""

    def __init__(
        self,
        order_by: str,
        start_at: Any = None,
        end_at: Any = None,
        limit_first: int | None = None,
        limit_last: int | None = None,
        has_start: bool = False,
        has_end: bool = False,
    ) -> None:
        self.order_by = order_by
        self.start_at = start_at
        self.end_at = end_at
        self.has_start = has_start
        self.has_end = has_end
        self.limit_first = limit_first
        self.limit_last = limit_last

    @property
    def child_path(self) -> list[str] | None:
        """The child path segments for an order-by-child query, else None."""
        if self.order_by in ("$key", "$value", "$priority"):
            return None
        return [segment for segment in self.order_by.split("/") if segment]


def _decode(name: str, raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidDataError(f"{name} must be a valid JSON value") from None


def _limit(name: str, raw: str) -> int:
    value = _decode(name, raw)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidDataError(f"{name} must be a non-negative integer")
    return value


def parse_query(params: Mapping[str, str]) -> QuerySpec | None:
    """The query described by the request's parameters, or None for a plain read.

    Raises :class:`InvalidDataError` for malformed parameters, filters without ``orderBy``,
    both limits, or ``equalTo`` combined with ``startAt``/``endAt``.
    """
    present = QUERY_PARAMETERS & params.keys()
    if not present:
        return None
    if "orderBy" not in params:
        raise InvalidDataError("orderBy must be defined when other query parameters are defined")
    order_by = _decode("orderBy", params["orderBy"])
    if not isinstance(order_by, str) or not order_by:
        raise InvalidDataError("orderBy must be a valid JSON encoded path")
    if "limitToFirst" in params and "limitToLast" in params:
        raise InvalidDataError("Only one of limitToFirst and limitToLast may be specified")
    if "equalTo" in params and ("startAt" in params or "endAt" in params):
        raise InvalidDataError("equalTo cannot be specified in addition to startAt or endAt")
    spec = QuerySpec(order_by)
    if order_by not in ("$key", "$value", "$priority"):
        for segment in spec.child_path or []:
            if segment.startswith("$") or any(c in segment for c in ".#[]"):
                raise InvalidDataError(f"orderBy must be a valid JSON encoded path: {order_by!r}")
    for name in ("startAt", "endAt", "equalTo"):
        if name not in params:
            continue
        bound = _decode(name, params[name])
        if isinstance(bound, dict | list):
            raise InvalidDataError(f"{name} must be a primitive JSON value")
        if order_by == "$key" and not isinstance(bound, str):
            raise InvalidDataError(f"{name} must be a string when orderBy is $key")
        if name in ("startAt", "equalTo"):
            spec.start_at, spec.has_start = bound, True
        if name in ("endAt", "equalTo"):
            spec.end_at, spec.has_end = bound, True
    if "limitToFirst" in params:
        spec.limit_first = _limit("limitToFirst", params["limitToFirst"])
    if "limitToLast" in params:
        spec.limit_last = _limit("limitToLast", params["limitToLast"])
    return spec


def _index_of(spec: QuerySpec, key: str, child: Any) -> Any:
    if spec.order_by == "$value":
        return child
    if spec.order_by == "$priority":
        return None  # the emulator stores no priorities: every child has a null priority
    node = child
    for segment in spec.child_path or []:
        if not isinstance(node, dict):
            return None
        node = node.get(segment)
    return node


def run_query(node: Any, spec: QuerySpec) -> Any:
    """Apply ``spec`` to the stored ``node``: order, filter by bounds, then limit.

    Returns an object of the matching children in query order (``{}`` when none match), or
    ``None`` when the node does not exist. A primitive node is returned as it is.
    """
    if node is None:
        return None
    if not isinstance(node, dict):
        return node
    entries: list[tuple[tuple[Any, ...], str, Any]] = []
    by_key = spec.order_by == "$key"
    bound = key_sort_key if by_key else value_sort_key
    low = bound(spec.start_at) if spec.has_start else None  # computed once, not per child
    high = bound(spec.end_at) if spec.has_end else None
    for key, child in node.items():
        if by_key:
            position: tuple[Any, ...] = (key_sort_key(key),)
            if low is not None and position[0] < low:
                continue
            if high is not None and position[0] > high:
                continue
        else:
            index_key = value_sort_key(_index_of(spec, key, child))
            if low is not None and index_key < low:
                continue
            if high is not None and index_key > high:
                continue
            position = (index_key, key_sort_key(key))
        entries.append((position, key, child))
    entries.sort(key=lambda entry: entry[0])
    if spec.limit_first is not None:
        entries = entries[: spec.limit_first]
    if spec.limit_last is not None:
        entries = entries[len(entries) - spec.limit_last :] if spec.limit_last else []
    return {key: child for _, key, child in entries}
