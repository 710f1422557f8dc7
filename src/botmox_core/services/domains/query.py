"""The list query of the collection routes (``page, limit, sort, order, q``), checked."""

from __future__ import annotations

from typing import Any

from botmox_core.domain.listing import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_Q,
    SORT_FIELD_PATTERN,
    ListQuery,
    ascii_lower,
)
from botmox_core.services.domains.rules import invalid

__all__ = ["MAX_PAGE", "list_query"]

MAX_PAGE = 1_000_000


def _whole_number(value: Any, field: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    raw = value.strip() if isinstance(value, str) else value
    if isinstance(raw, bool):
        raise invalid(field, f"must be an integer from {low} to {high}")
    if isinstance(raw, str):
        if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
            raise invalid(field, f"must be an integer from {low} to {high}")
        raw = int(raw)
    if not isinstance(raw, int) or not low <= raw <= high:
        raise invalid(field, f"must be an integer from {low} to {high}")
    return raw


def list_query(
    *, page: Any = None, limit: Any = None, sort: Any = None, order: Any = None, q: Any = None
) -> ListQuery:
    """A :class:`ListQuery` from the raw parameters (strings from the URL, or ``None``).

    ``page`` 1-1,000,000 (1); ``limit`` 1-200 (50); ``sort`` a top-level field name
    (letters, digits, ``_``; ``id`` is the record id); ``order`` ``asc`` (default) or ``desc``;
    ``q`` trimmed, at most 200 characters, no control characters (empty means no filter).
    Anything else is a 400 naming the parameter.
    """
    page_number = _whole_number(page, "page", 1, 1, MAX_PAGE)
    size = _whole_number(limit, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    sort_field: str | None = None
    if sort is not None:
        if not isinstance(sort, str):
            raise invalid("sort", "must be a field name")
        sort_field = sort or None
        if sort_field is not None and not SORT_FIELD_PATTERN.fullmatch(sort_field):
            raise invalid("sort", "must be 1-64 characters of A-Z a-z 0-9 _")
    direction = "asc" if order is None else order
    if direction not in ("asc", "desc"):
        raise invalid("order", "must be asc or desc")
    needle: str | None = None
    if q is not None:
        if not isinstance(q, str):
            raise invalid("q", "must be text")
        if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in q):
            raise invalid("q", "must not contain control characters")
        trimmed = q.strip()
        if len(trimmed) > MAX_Q:
            raise invalid("q", f"must be at most {MAX_Q} characters")
        try:
            trimmed.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid("q", "must be valid Unicode text") from None
        needle = ascii_lower(trimmed) or None
    return ListQuery(
        page=page_number, limit=size, sort=sort_field, descending=direction == "desc", q=needle
    )
