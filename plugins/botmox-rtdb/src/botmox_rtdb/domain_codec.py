"""How domain data (records, log and archive entries, aggregates, the settings tree) is stored in
RTDB so that it reads back exactly as it was given.

RTDB changes some JSON on the way in: it drops ``null`` members and empty objects and arrays,
turns arrays into objects keyed ``"0"``, ``"1"``... (and objects keyed like that back into
arrays), stores integral floats as integers and every number as a double (integers beyond
2**53 are rounded). The other backends keep all of it, and the services promise a client gets
back what it stored, so:

* a value RTDB keeps exactly (:func:`rtdb_view` of it is strictly equal to it, the usual case:
  every record the seed wrote) is stored as it is, in the seed's shape;
* otherwise the object is stored as RTDB makes of it **plus** one extra key,
  :data:`EXACT_KEY`, holding the JSON text of the whole object. Reading returns that text's value
  only while the stored fields are still what RTDB made of it (:func:`decode`); once another
  writer (the seed's server, a console edit) changes the fields, the fields win and the stale
  text is ignored.

:data:`LOCK_KEY` is the compare-and-set lock of :mod:`botmox_rtdb.domain_repositories`; reads
never show it. A client field with a reserved name is kept exactly through :data:`EXACT_KEY`.
Existing data is read faithfully: fields RTDB already dropped are missing, a record stored as a
non-object reads as ``{"value": ...}`` (the seed's rule), an array as the object the seed's
JavaScript made of it (``{"0": ..., "1": ...}``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from botmox_rtdb.layout import checked_key

__all__ = [
    "EXACT_KEY",
    "LOCK_KEY",
    "RESERVED_KEYS",
    "check_keys",
    "decode",
    "encode",
    "equivalent",
    "rtdb_view",
    "strictly_equal",
    "without_reserved",
]

EXACT_KEY = "_botmox_exact"
LOCK_KEY = "_botmox_lock"
RESERVED_KEYS = frozenset({EXACT_KEY, LOCK_KEY})

_ARRAY_INDEX = re.compile(r"(0|[1-9][0-9]{0,9})", re.ASCII)
_EXACT_INT_LIMIT = 2**53


def check_keys(value: Any, what: str) -> None:
    """Refuse (400 ``INVALID_KEY``) any object key, at any depth of ``value``, that RTDB cannot
    store: ``. # $ [ ] /``, control characters, empty, over 768 bytes. Iterative, so any nesting
    is checked safely."""
    stack: list[Any] = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, member in item.items():
                checked_key(key, f"{what} key")
                stack.append(member)
        elif isinstance(item, list | tuple):
            stack.extend(item)


def _stored(value: Any) -> Any:
    """What RTDB stores for ``value`` (``None``: nothing)."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < _EXACT_INT_LIMIT:
            return int(value)
        return value
    if isinstance(value, list | tuple):
        value = {str(index): member for index, member in enumerate(value)}
    if isinstance(value, Mapping):
        result = {}
        for key, member in value.items():
            stored = _stored(member)
            if stored is not None:
                result[key] = stored
        return result or None
    return value


def _wire(value: Any) -> Any:
    """The JSON the REST API answers for a stored value (index-keyed objects that are more than
    half full come back as arrays, with ``null`` in the gaps)."""
    if not isinstance(value, dict):
        return value
    converted = {key: _wire(member) for key, member in value.items()}
    if converted and all(_ARRAY_INDEX.fullmatch(key) for key in converted):
        largest = max(int(key) for key in converted)
        if largest < 2 * len(converted):
            return [converted.get(str(index)) for index in range(largest + 1)]
    return converted


def rtdb_view(value: Any) -> Any:
    """What a read returns after ``value`` is written to RTDB (``None`` when nothing is
    stored)."""
    return _wire(_stored(value))


def strictly_equal(a: Any, b: Any) -> bool:
    """JSON equality that tells types apart (``1`` vs ``1.0`` vs ``True``) and treats integers
    RTDB cannot hold exactly (beyond 2**53) as never equal."""
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int):
        return type(b) is int and a == b and abs(a) <= _EXACT_INT_LIMIT
    if isinstance(a, float):
        return type(b) is float and a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, str):
        return isinstance(b, str) and a == b
    if isinstance(a, Mapping):
        return (isinstance(b, Mapping) and a.keys() == b.keys()
                and all(strictly_equal(a[key], b[key]) for key in a))
    if isinstance(a, list | tuple):
        return (isinstance(b, list | tuple) and len(a) == len(b)
                and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True)))
    return False


def equivalent(a: Any, b: Any) -> bool:
    """Whether two JSON values are the same as far as a read from RTDB can tell: numbers by
    value (an integer and a float, a rounded big integer and its double, compare equal)."""
    if a is None or b is None or isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float):
        if not isinstance(b, int | float):
            return False
        return a == b or float(a) == float(b)
    if isinstance(a, str):
        return isinstance(b, str) and a == b
    if isinstance(a, Mapping):
        return (isinstance(b, Mapping) and a.keys() == b.keys()
                and all(equivalent(a[key], b[key]) for key in a))
    if isinstance(a, list | tuple):
        return (isinstance(b, list | tuple) and len(a) == len(b)
                and all(equivalent(x, y) for x, y in zip(a, b, strict=True)))
    return False


def without_reserved(value: Mapping[str, Any]) -> dict[str, Any]:
    """``value`` without :data:`RESERVED_KEYS`."""
    return {key: member for key, member in value.items() if key not in RESERVED_KEYS}


def encode(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """The stored form of an object (see the module docstring); keys are checked first
    (:func:`check_keys`)."""
    check_keys(data, what)
    plain = without_reserved(data)
    if len(plain) == len(data) and strictly_equal(rtdb_view(plain), plain):
        return dict(data)
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return {**plain, EXACT_KEY: text}


def decode(stored: Any) -> dict[str, Any]:
    """The object a stored value stands for (see the module docstring)."""
    if isinstance(stored, list):  # an object keyed "0", "1"...: the seed spread it
        return {str(index): member for index, member in enumerate(stored) if member is not None}
    if not isinstance(stored, Mapping):
        return {"value": stored}
    fields = without_reserved(stored)
    text = stored.get(EXACT_KEY)
    if isinstance(text, str):
        try:
            exact = json.loads(text)
        except ValueError:
            return fields
        if isinstance(exact, dict):
            # the stored object keeps its extra key, so only its members get RTDB's treatment
            stored_plain = _stored(without_reserved(exact)) or {}
            view = {key: _wire(member) for key, member in stored_plain.items()}
            if equivalent(view, fields):
                return exact
    return fields
