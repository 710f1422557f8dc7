"""PATCH semantics of domain records and settings (the Bot-Mox contract, the same on every
backend): a patch is a JSON object whose keys are applied in order —

- a plain key replaces that top-level field (a nested object replaces the whole child: merging is
  shallow);
- a key ``a/b/c`` is a deep path: it sets ``c`` inside ``a.b``, creating objects on the way and
  replacing a non-object found on the way;
- a ``null`` value deletes the field (or the deep path's last key); deleting what is absent is
  a no-op.

Keys (and each segment of a deep path) must be usable as keys on every backend: 1-768 bytes of
UTF-8 without ``. # $ [ ]``, control characters, or an empty segment (:func:`key_error`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["MAX_KEY_BYTES", "apply_patch", "key_error", "set_at_path"]

MAX_KEY_BYTES = 768
_FORBIDDEN = re.compile(r"[.#$\[\]/\x00-\x1f\x7f]")


def key_error(key: Any) -> str | None:
    """Why ``key`` cannot be a record or settings key on every backend, or ``None``."""
    if not isinstance(key, str) or not key:
        return "keys must be non-empty strings"
    if _FORBIDDEN.search(key):
        return f"key {key[:40]!r} contains a character that is not allowed (. # $ [ ] / control)"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "keys must be valid Unicode text"
    if size > MAX_KEY_BYTES:
        return f"keys are at most {MAX_KEY_BYTES} bytes"
    return None


def set_at_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    """Set (or, for ``None``, delete) ``value`` at ``path`` inside ``tree``, in place."""
    node = tree
    for segment in path[:-1]:
        child = node.get(segment)
        if not isinstance(child, dict):
            if value is None:
                return  # deleting below something absent: nothing to do
            child = {}
            node[segment] = child
        node = child
    if value is None:
        node.pop(path[-1], None)
    else:
        node[path[-1]] = copy.deepcopy(value)


def apply_patch(data: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with ``patch`` applied (a new dict; neither argument changes). Keys are assumed
    valid (the services check them with :func:`key_error` per segment)."""
    result = copy.deepcopy(dict(data))
    for key, value in patch.items():
        set_at_path(result, key.split("/"), value)
    return result
