"""JSON from the network, bounded in depth at the edge.

The decoder recurses once per nesting level, so a body or frame of a few kilobytes nested a few
thousand levels deep overflows the interpreter's recursion limit (a 500 before any handler
runs), and a value a few hundred levels deep that got stored would crash every later reader.
:func:`decode_bounded` turns both into a 400 ``BAD_REQUEST`` naming the field:
:class:`BoundedRequest` applies it to every JSON request body, the agent WebSocket session to
every frame.

The limit is the one every stored JSON value has
(:data:`botmox_core.services.validation.MAX_JSON_DEPTH`), counted from each top-level field's
value, so the edge and the services refuse the same values with the same message.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar import Request
from litestar.serialization import decode_json
from litestar.types import Empty

from botmox_core.services import validation as check

__all__ = ["BoundedRequest", "decode_bounded", "too_deep_field"]


# A JSON string as an encoder writes it (always terminated), so matching is linear.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
# Brackets of both kinds as one pair of symbols; every other byte dropped.
_BRACKETS = bytes.maketrans(b"[{]}", b"(())")
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def nests_deeper_than(value: Any, max_depth: int) -> bool:
    """Whether ``value`` (decoded JSON) nests objects/arrays more than ``max_depth`` levels.

    Measured on its re-encoding without recursion in Python: strings removed, brackets kept,
    then each pass removes the innermost level (``()``), so the text is empty after exactly
    *depth* passes. Every step runs in C, linear in the size per pass.
    """
    encoded = msgspec.json.encode(value)
    brackets = _STRING.sub(b"", encoded).translate(_BRACKETS, _NOT_BRACKETS)
    for _ in range(max_depth):
        if not brackets:
            return False
        brackets = brackets.replace(b"()", b"")
    return bool(brackets)


def too_deep_field(value: Any, max_depth: int = check.MAX_JSON_DEPTH) -> str | None:
    """The top-level field of ``value`` whose value nests more than ``max_depth`` levels, or
    ``None`` when none does. A document that is not an object counts as the field ``body``
    (one level more allowed: the document itself)."""
    if not isinstance(value, dict):
        return "body" if nests_deeper_than(value, max_depth + 1) else None
    if not nests_deeper_than(value, max_depth + 1):
        return None
    for key, item in value.items():
        if nests_deeper_than(item, max_depth):
            return key if isinstance(key, str) and key.isprintable() else "body"
    return None  # unreachable: the document is too deep only if one of its fields is


def decode_bounded(raw: bytes | str, *, what: str = "body", **decode_options: Any) -> Any:
    """``raw`` decoded as JSON; a 400 ``BAD_REQUEST`` naming the field when a value nests more
    than the limit (or the document overflows the decoder). Malformed JSON raises what the
    decoder raises."""
    try:
        value = decode_json(raw or b"null", **decode_options)
    except RecursionError:
        raise check.invalid(what, f"must nest at most {check.MAX_JSON_DEPTH} levels deep") from None
    field = too_deep_field(value)
    if field is not None:
        name = what if field == "body" else field[:64]
        raise check.invalid(name, f"must nest at most {check.MAX_JSON_DEPTH} levels deep")
    return value


class BoundedRequest(Request[Any, Any, Any]):
    """Litestar's request, with JSON bodies bounded in depth (see :func:`decode_bounded`)."""

    async def json(self) -> Any:
        """The decoded JSON body (cached), or ``BAD_REQUEST`` naming a field nested too deep."""
        if self._json is Empty:
            if (cached := self._connection_state.json) is not Empty:
                self._json = cached
            else:
                body = await self.body()
                self._json = self._connection_state.json = decode_bounded(
                    body, type_decoders=self.route_handler.resolve_type_decoders()
                )
        return self._json
