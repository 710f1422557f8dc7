"""Settings-tree paths and the tree operations at a path.

Paths (``GET|PUT|PATCH /api/v1/settings/{path}``) are split on ``/`` after trimming spaces and
slashes; a leading ``settings`` segment is dropped. A segment that is empty, ``.``, ``..``, holds
``. # $ [ ]`` or a control character, or is no valid key (:func:`~botmox_core.domain.patching.
key_error`) is a 400 ``Invalid settings path`` with ``details {path, reason}``; so is a path of
more than :data:`MAX_PATH_SEGMENTS` segments.

A write is a merge (:func:`merge_at`): an object written where an object is merges shallowly
(its ``null`` fields delete), anything else replaces the value (``null`` deletes it).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from botmox_core.domain.patching import key_error
from botmox_core.errors import BadRequestError

__all__ = ["MAX_PATH_SEGMENTS", "merge_at", "settings_path", "value_at"]

MAX_PATH_SEGMENTS = 8
_FORBIDDEN_IN_SEGMENT = frozenset(".#$[]")


def _bad_path(raw: str, reason: str) -> BadRequestError:
    return BadRequestError("Invalid settings path", details={"path": raw[:200], "reason": reason})


def settings_path(raw: Any) -> tuple[str, ...]:
    """The segments of a settings path below the tree's root (``()`` is the root)."""
    if raw is None:
        return ()
    if not isinstance(raw, str):
        raise _bad_path(str(raw), "the path must be text")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in raw):
        raise _bad_path(raw, "control characters are not allowed")
    trimmed = raw.strip().strip("/")
    segments = trimmed.split("/") if trimmed else []
    if segments and segments[0] == "settings":
        segments = segments[1:]
    for segment in segments:
        if segment in ("", ".", "..") or any(ch in _FORBIDDEN_IN_SEGMENT for ch in segment):
            raise _bad_path(raw, f"Invalid path segment: {segment[:64]}")
        problem = key_error(segment)
        if problem is not None:
            raise _bad_path(raw, f"Invalid path segment: {problem}")
    if len(segments) > MAX_PATH_SEGMENTS:
        raise _bad_path(raw, f"a settings path has at most {MAX_PATH_SEGMENTS} segments")
    return tuple(segments)


def value_at(tree: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value at ``path`` (``None`` when absent)."""
    node: Any = tree
    for segment in path:
        if not isinstance(node, Mapping) or segment not in node:
            return None
        node = node[segment]
    return copy.deepcopy(node)


def _merge_into(target: dict[str, Any], value: Mapping[str, Any]) -> None:
    for key, item in value.items():
        if item is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(item)


def merge_at(tree: Mapping[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """``tree`` after writing ``value`` at ``path`` (a new tree): an object merges shallowly
    into an object found there (its ``null`` fields delete), anything else replaces what is
    there, ``null`` deletes it; objects are created on the way (replacing non-objects)."""
    result = copy.deepcopy(dict(tree))
    if not path:
        _merge_into(result, value)
        return result
    node = result
    for segment in path[:-1]:
        child = node.get(segment)
        if not isinstance(child, dict):
            if value is None:
                return result
            child = {}
            node[segment] = child
        node = child
    last = path[-1]
    existing = node.get(last)
    if value is None:
        node.pop(last, None)
    elif isinstance(value, dict):
        merged = dict(existing) if isinstance(existing, dict) else {}
        _merge_into(merged, value)
        node[last] = merged
    else:
        node[last] = copy.deepcopy(value)
    return result
