"""The canonical form of a logical record, its hash, and a field-level diff.

Two backends hold "the same" record when their canonical forms are equal. The form is the JSON
value of the record (as the repository ports return it) normalised for what differs between
backends without meaning anything:

* object keys in code point order (the text is written with sorted keys);
* numbers: an integral float is the integer (``1.0`` is ``1``; no backend keeps them apart,
  RTDB stores every number as a double); ``true`` is never ``1``;
* RTDB's dropped values: ``null`` members and empty objects and arrays are left out, at any
  depth; an array is the object of its indexes (``["a", "b"]`` is ``{"0": "a", "1": "b"}``),
  so an array and the integer-keyed object RTDB reads back for it are one form;
* timestamps (:class:`~datetime.datetime`) as ISO 8601 UTC with milliseconds, the precision
  every backend keeps.

The hash is the SHA-256 of the canonical JSON text (UTF-8, compact, sorted keys).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

from botmox_core.converter import format_timestamp

__all__ = ["EMPTY", "canonical", "canonical_text", "digest", "field_diff"]


class _Empty:
    """Marker: the value is dropped (null, an empty object or array)."""

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY: Any = _Empty()


def canonical(value: Any) -> Any:
    """``value``'s canonical form (:data:`EMPTY` when it is dropped entirely). Iterative, so
    any nesting is safe."""
    return _canonical(value)


def _canonical(value: Any) -> Any:
    if value is None:
        return EMPTY
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return _canonical(value.value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) <= 2**63:
            return int(value)
        return value
    if isinstance(value, datetime):
        return format_timestamp(value)
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = ((str(index), member) for index, member in enumerate(value))
    elif isinstance(value, set | frozenset):
        items = ((str(member), True) for member in sorted(value, key=str))
    else:
        return str(value)
    result: dict[str, Any] = {}
    for key, member in items:
        normal = _canonical(member)
        if normal is not EMPTY:
            result[str(key)] = normal
    return result if result else EMPTY


def canonical_text(value: Any) -> str:
    """The canonical JSON text of ``value`` (``null`` when it is dropped entirely)."""
    normal = canonical(value)
    return json.dumps(
        None if normal is EMPTY else normal,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=True,
    )


def digest(value: Any) -> bytes:
    """SHA-256 of :func:`canonical_text` (32 bytes)."""
    return hashlib.sha256(canonical_text(value).encode("utf-8", "surrogatepass")).digest()


def field_diff(source: Any, target: Any, *, limit: int = 20) -> list[dict[str, Any]]:
    """Where the canonical forms differ: up to ``limit`` ``{"path", "source", "target"}``
    (``path`` a ``/``-joined key path, ``""`` for the whole value; a side without the field
    shows ``null``)."""
    found: list[dict[str, Any]] = []
    stack: list[tuple[str, Any, Any]] = [("", canonical(source), canonical(target))]
    while stack and len(found) < limit:
        path, left, right = stack.pop()
        if isinstance(left, dict) and isinstance(right, dict):
            for key in sorted(set(left) | set(right), reverse=True):
                stack.append(
                    (f"{path}/{key}" if path else key, left.get(key, EMPTY), right.get(key, EMPTY))
                )
            continue
        if _same(left, right):
            continue
        found.append(
            {
                "path": path,
                "source": None if left is EMPTY else left,
                "target": None if right is EMPTY else right,
            }
        )
    return found


def _same(left: Any, right: Any) -> bool:
    if left is EMPTY or right is EMPTY:
        return left is right
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return type(left) is type(right) and bool(left == right)
