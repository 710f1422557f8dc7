"""How a collection is listed: the query, and the one definition of matching and ordering that
every backend implements exactly (the parity harness compares them answer for answer).

- **Filter** ``q``: case-insensitive (ASCII letters) substring of one *top-level primitive
  value* of the entity (the id included): a string, a number or a boolean; nested objects and
  arrays and nulls never match. Each value is compared through its search text
  (:func:`value_text`); :func:`search_text` joins an entity's texts with ``\\x1f`` (which ``q``
  cannot contain), so SQL backends may store it in a column and match with one substring test.
- **Order** by ``sort`` (a top-level field; ``id`` is the id): values rank by type first —
  missing or null, then ``false``, ``true``, numbers (by value), strings (by Unicode code point,
  i.e. UTF-8 byte order), then objects and arrays (equal among themselves) — the order Firebase
  RTDB uses for ``orderByChild``; ties by id (code point order). ``order=desc`` is the exact
  reverse. Without ``sort`` the order is by id.
- **Page**: ``total`` counts every match; ``page`` (from 1) of ``limit`` (1-200) records;
  a page past the end is empty with the right total.

:func:`apply_query` is the reference implementation (used by backends that list in Python,
such as RTDB, and by the conformance suite as the oracle).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from botmox_core.domain.records import DomainRecord

__all__ = [
    "MAX_LIMIT",
    "SEARCH_SEPARATOR",
    "SORT_FIELD_PATTERN",
    "ListPage",
    "ListQuery",
    "apply_query",
    "ascii_lower",
    "matches",
    "search_text",
    "sort_key",
    "value_text",
]

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
MAX_Q = 200
SEARCH_SEPARATOR = "\x1f"
#: Fields a list may sort by: top-level keys of this shape (``id`` sorts by the record id).
SORT_FIELD_PATTERN = re.compile(r"[A-Za-z0-9_]{1,64}", re.ASCII)

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    """``text`` with ASCII letters lower-cased and nothing else changed (as SQLite's
    ``lower()``; every backend folds exactly these 26 letters)."""
    return text.translate(_ASCII_LOWER)


@attrs.frozen(kw_only=True)
class ListQuery:
    """A validated list query (the services build it from ``page, limit, sort, order, q``).

    Attributes:
        page: 1-based page number.
        limit: records per page, 1 to :data:`MAX_LIMIT`.
        sort: top-level field to order by, or ``None`` (order by id).
        descending: ``order=desc``.
        q: the filter, already trimmed and ASCII-lower-cased, without control characters
            (the services refuse them), or ``None``.
    """

    page: int = 1
    limit: int = DEFAULT_LIMIT
    sort: str | None = None
    descending: bool = False
    q: str | None = None

    @property
    def offset(self) -> int:
        """How many matching records come before this page."""
        return (self.page - 1) * self.limit


@attrs.frozen
class ListPage:
    """One page of a list.

    Attributes:
        records: the page, in order.
        total: how many records match the query in all.
    """

    records: list[DomainRecord]
    total: int


def value_text(value: Any) -> str | None:
    """The search text of one top-level value, or ``None`` for values ``q`` never matches.

    Strings as they are, booleans as ``true``/``false``, integers (and floats with an integral
    value below 2**53) in decimal digits, other finite floats as Python's shortest ``repr``;
    everything then ASCII-lower-cased.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return ascii_lower(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return ascii_lower(repr(value))
    return None


def search_text(record_id: str, data: Mapping[str, Any]) -> str:
    """The texts of the id and every top-level primitive value, joined by ``\\x1f`` (and
    framed by it, so ``q`` never matches across two values)."""
    texts = [ascii_lower(record_id)]
    for key, value in data.items():
        if key == "id":
            continue
        text = value_text(value)
        if text is not None:
            texts.append(text)
    return SEARCH_SEPARATOR + SEARCH_SEPARATOR.join(texts) + SEARCH_SEPARATOR


def matches(record: DomainRecord, q: str | None) -> bool:
    """Whether ``record`` passes the filter ``q`` (already normalised)."""
    if q is None:
        return True
    return SEARCH_SEPARATOR not in q and q in search_text(record.id, record.data)


def sort_key(record: DomainRecord, field: str | None) -> tuple[Any, ...]:
    """The ascending order of :mod:`this module <botmox_core.domain.listing>`, as a key."""
    if field is None:
        return (0, 0, "", record.id)
    value = record.id if field == "id" else record.data.get(field)
    if value is None:
        rank, number, text = 0, 0.0, ""
    elif value is False:
        rank, number, text = 1, 0.0, ""
    elif value is True:
        rank, number, text = 2, 0.0, ""
    elif isinstance(value, int | float):
        rank, number, text = 3, value, ""
    elif isinstance(value, str):
        rank, number, text = 4, 0.0, value
    else:
        rank, number, text = 5, 0.0, ""
    return (rank, number, text, record.id)


def apply_query(records: Iterable[DomainRecord], query: ListQuery) -> ListPage:
    """Filter, order and page ``records`` in memory: the reference every backend matches."""
    matching = [record for record in records if matches(record, query.q)]
    matching.sort(key=lambda record: sort_key(record, query.sort), reverse=query.descending)
    return ListPage(matching[query.offset : query.offset + query.limit], len(matching))
