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

Speed (a migration or parity hashes every record of both sides): plain JSON values (``dict``,
``list``, ``str``, ``int``, ``float``, ``bool``, ``None``) are normalised by a walk that
dispatches on the exact type, and a value whose JSON text shows nothing to normalise (no
``null``, no array, no empty object, no integral float) is not walked at all: its sorted compact
JSON text already is the canonical text. Anything else (enums, datetimes, sets, tuples, other
mappings, non-string keys) takes the general walk.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
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
    """``value``'s canonical form (:data:`EMPTY` when it is dropped entirely)."""
    return _plain(value)


_MAX_EXACT = 2**63


def _plain(value: Any) -> Any:
    """The canonical form, fast for plain JSON types (exact ``dict``/``list`` with ``str``
    keys, ``str``, ``int``, ``float``, ``bool``, ``None``); anything else is handed to
    :func:`_general`, whose result it equals."""
    kind = type(value)
    if kind is str or kind is int or kind is bool:
        return value
    if kind is dict:
        result: dict[str, Any] = {}
        for key, member in value.items():
            if type(key) is not str:
                return _general(value)
            member_kind = type(member)
            if member_kind is str or member_kind is int or member_kind is bool:
                result[key] = member
            elif member is not None:
                normal = _plain(member)
                if normal is not EMPTY:
                    result[key] = normal
        return result if result else EMPTY
    if kind is list:
        listed: dict[str, Any] = {}
        for index, member in enumerate(value):
            member_kind = type(member)
            if member_kind is str or member_kind is int or member_kind is bool:
                listed[str(index)] = member
            elif member is not None:
                normal = _plain(member)
                if normal is not EMPTY:
                    listed[str(index)] = normal
        return listed if listed else EMPTY
    if kind is float:
        if math.isfinite(value) and value.is_integer() and abs(value) <= _MAX_EXACT:
            return int(value)
        return value
    if value is None:
        return EMPTY
    return _general(value)


def _general(value: Any) -> Any:
    """The canonical form of any value (members through :func:`_plain`)."""
    if value is None:
        return EMPTY
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return _plain(value.value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) <= _MAX_EXACT:
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
        normal = _plain(member)
        if normal is not EMPTY:
            result[str(key)] = normal
    return result if result else EMPTY


_encode = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=True
).encode

#: What in a value's JSON text may need normalising: ``null``, an array, an empty object, an
#: integral float (``repr`` writes it ``1.0`` or with a positive exponent, ``1e+16``). A string
#: holding one of these only costs the normalising walk.
_NORMALISABLE = re.compile(r"null|\[|\{\}|\.0(?![0-9])|e\+")


def canonical_text(value: Any) -> str:
    """The canonical JSON text of ``value`` (``null`` when it is dropped entirely)."""
    if type(value) is dict and not _surely_normalised(value):
        try:
            text = _encode(value)
        except (TypeError, ValueError, RecursionError):
            pass
        else:
            # Only exact dicts, lists, strings, numbers, booleans and None encode without a
            # TypeError here, save subclasses of str, int and float (enums among them), whose
            # text is their value's: what the general walk makes of them too. Keys that are not
            # strings are the one thing the text cannot show; they are checked below.
            if _NORMALISABLE.search(text) is None and _string_keys(value):
                return text
    normal = canonical(value)
    return _encode(None if normal is EMPTY else normal)


def _surely_normalised(value: dict[Any, Any]) -> bool:
    """A top-level member is an array or ``null``: the text would only show it (and cost an
    encoding more than the walk)."""
    return any(member is None or type(member) is list for member in value.values())


def _string_keys(value: dict[Any, Any]) -> bool:
    """Every key at every depth is a ``str`` (``value`` holds no arrays: only dicts nest)."""
    stack = [value]
    while stack:
        node = stack.pop()
        for key, member in node.items():
            if type(key) is not str:
                return False
            if type(member) is dict:
                stack.append(member)
    return True


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
