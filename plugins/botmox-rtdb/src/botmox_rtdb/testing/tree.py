"""The emulator's JSON tree: key and depth rules, normalisation, pruning, ETags, array output.

The tree is plain nested ``dict`` objects whose leaves are ``bool``, ``int``, ``float`` or
``str``. An absent node is ``None``: writing ``null`` or an empty object deletes, and a write
that leaves a parent empty removes the parent too, as in the real service.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from typing import Any

__all__ = [
    "FORBIDDEN_KEY_CHARACTERS",
    "MAX_DEPTH",
    "MAX_KEY_BYTES",
    "InvalidDataError",
    "compute_etag",
    "get_node",
    "normalise_value",
    "parse_path",
    "set_node",
    "to_wire",
    "validate_key",
]

FORBIDDEN_KEY_CHARACTERS = frozenset(".#$[]/")
MAX_KEY_BYTES = 768
MAX_DEPTH = 32

_ARRAY_INDEX = re.compile(r"^(0|[1-9][0-9]{0,9})$")


class InvalidDataError(Exception):
    """A request the real service answers with 400 and ``{"error": message}``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def validate_key(key: str) -> None:
    """Raise :class:`InvalidDataError` unless ``key`` is a legal RTDB key.

    Legal: non-empty, at most 768 bytes of UTF-8, none of ``. # $ [ ] /`` and no ASCII
    control character (0x00-0x1F, 0x7F).
    """
    if not isinstance(key, str) or key == "":
        raise InvalidDataError("Invalid key: keys must be non-empty strings")
    bad = [c for c in key if c in FORBIDDEN_KEY_CHARACTERS or ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise InvalidDataError(
            f"Invalid key {key!r}: keys must not contain '.', '#', '$', '[', ']', '/' "
            "or ASCII control characters"
        )
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise InvalidDataError(f"Invalid key: longer than {MAX_KEY_BYTES} bytes")


def parse_path(path: str) -> list[str]:
    """Split a ``/``-separated path into validated segments (empty segments are ignored)."""
    segments = [segment for segment in path.split("/") if segment != ""]
    for segment in segments:
        validate_key(segment)
    if len(segments) > MAX_DEPTH:
        raise InvalidDataError(f"Path is deeper than {MAX_DEPTH} levels")
    return segments


def normalise_value(value: Any, depth: int = 0) -> Any:
    """The stored form of a JSON value written at ``depth`` (number of path segments).

    Arrays become objects keyed ``"0"``, ``"1"``...; ``null`` members and empty objects vanish
    (so the result may be ``None``: a delete); integral floats become ints, as JavaScript
    numbers are. Raises :class:`InvalidDataError` for illegal keys, non-finite numbers or
    data nested deeper than :data:`MAX_DEPTH` (a leaf more than 32 keys below the root, also
    when a push adds the 33rd).
    """
    if value is None:
        return value
    if isinstance(value, bool | str | int | float) and depth > MAX_DEPTH:
        raise InvalidDataError(f"Data is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidDataError("Invalid data; numbers must be finite")
        return int(value) if value.is_integer() and abs(value) < 2**53 else value
    if isinstance(value, list):
        value = {str(index): member for index, member in enumerate(value)}
    if isinstance(value, dict):
        if depth >= MAX_DEPTH and value:
            raise InvalidDataError(f"Data is nested deeper than {MAX_DEPTH} levels")
        result: dict[str, Any] = {}
        for key, member in value.items():
            validate_key(key)
            stored = normalise_value(member, depth + 1)
            if stored is not None:
                result[key] = stored
        return result or None
    raise InvalidDataError("Invalid data; couldn't parse JSON object, array, or value.")


def get_node(root: Any, segments: list[str]) -> Any:
    """The value at ``segments`` below ``root``, or ``None``."""
    node = root
    for segment in segments:
        if not isinstance(node, dict):
            return None
        node = node.get(segment)
    return node


def set_node(root: Any, segments: list[str], value: Any) -> Any:
    """Write the normalised ``value`` at ``segments`` below ``root`` and return the new root.

    Objects on the path are changed in place. ``None`` deletes; parents emptied by the write
    are pruned; a primitive on the way is replaced by an object, as in the real service.
    """
    if not segments:
        return value
    head, rest = segments[0], segments[1:]
    node: dict[str, Any] = root if isinstance(root, dict) else {}
    child = set_node(node.get(head), rest, value)
    if child is None:
        node.pop(head, None)
    else:
        node[head] = child
    return node or None


def to_wire(value: Any) -> Any:
    """The JSON the REST API returns for a stored value.

    An object whose keys are all array indexes, more than half of the indexes up to the largest
    being present, comes back as an array with ``null`` in the gaps (the real service's rule).
    """
    if not isinstance(value, dict):
        return value
    converted = {key: to_wire(member) for key, member in value.items()}
    if converted and all(_ARRAY_INDEX.match(key) for key in converted):
        largest = max(int(key) for key in converted)
        if largest < 2 * len(converted):
            return [converted.get(str(index)) for index in range(largest + 1)]
    return converted


def compute_etag(value: Any) -> str:
    """An ETag for the stored value at a location (``null`` has one too)."""
    canonical = json.dumps(to_wire(value), sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha1(canonical.encode("utf-8"), usedforsecurity=False).digest()
    return base64.b64encode(digest).decode("ascii")
