"""Shared pieces of the domain conformance kit: record builders, the edge values every backend
must store and order exactly, a deterministic generator of mixed collections, and a strict JSON
comparison (integers stay integers, booleans stay booleans)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from typing import Any

from botmox_core.domain.records import (
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
)

__all__ = [
    "EDGE_NUMBERS",
    "EDGE_STRINGS",
    "T0_MS",
    "check_same_json",
    "generated_records",
    "make_archive_entry",
    "make_log_entry",
    "make_record",
    "uid",
]

#: A fixed instant in epoch milliseconds.
T0_MS = 1_795_000_000_000

#: Numbers whose order and search text backends get wrong when they go through doubles, drop
#: the sign of zero, or cut integers to 64 bits.
EDGE_NUMBERS: tuple[int | float, ...] = (
    0,
    0.0,
    -0.0,
    1,
    1.0,
    -1,
    0.5,
    -0.5,
    1.5,
    3,
    10,
    1e300,
    -1e300,
    5e-324,
    -5e-324,
    1.7976931348623157e308,
    2**53,
    2**53 + 1,
    float(2**53),
    -(2**53) - 1,
    2**63 - 1,
    2**63,
    -(2**63),
    -(2**63) - 1,
    10**30,
    10**30 + 1,
    1e30,
    123456789.125,
    1e-7,
    0.1,
    0.30000000000000004,
)

#: Strings that differ only in case, accents, code-point order of astral characters (which
#: UTF-16 orders differently), prefixes, digits and look-alikes of other types.
EDGE_STRINGS: tuple[str, ...] = (
    "",
    " ",
    "a",
    "A",
    "ab",
    "aB",
    "Ab",
    "abc",
    "Zed",
    "zed",
    "émile",
    "Émile",
    "ÉMILE",
    "ß",
    "ﬀ",
    "日本語",
    "\uffff",
    "\U0001f600 smile",
    "\U0001d11e clef",
    "𝄞",
    "true",
    "false",
    "null",
    "1",
    "10",
    "9",
    "-0",
    "1e300",
    "line\nbreak",
    "tab\there",
    'quote " and \\ backslash',
    "100%_like",
    "%",
    "_",
)


def uid(prefix: str) -> str:
    """A fresh unique name (tenants, ids)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def make_record(
    tenant_id: str,
    collection: Collection = Collection.BOTS,
    record_id: str | None = None,
    **data: Any,
) -> DomainRecord:
    """A record with stamps and a few fields; keyword arguments replace or add fields."""
    fields: dict[str, Any] = {
        "name": "Bot one",
        "status": "farming",
        "level": 42,
        "gold": 1234.5,
        "active": True,
        "tags": ["a", "b"],
        "character": {"name": "Ünïcødé ✓ \U0001f600", "realm": "eu", "stats": {"str": 5}},
        "created_at": T0_MS,
        "updated_at": T0_MS + 1,
    }
    fields.update(data)
    return DomainRecord(tenant_id, collection, record_id or uid("rec"), fields)


def make_log_entry(
    tenant_id: str, bot_id: str, timestamp: int = T0_MS, **changes: Any
) -> LifecycleLogEntry:
    """A lifecycle log entry; keyword arguments replace fields."""
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "id": uid("log"),
        "bot_id": bot_id,
        "type": "status_change",
        "message": "Status changed from prepare to leveling ✓",
        "timestamp": timestamp,
        "details": {"from": "prepare", "to": "leveling", "nested": {"n": [1, 2.5, None]}},
    }
    values.update(changes)
    return LifecycleLogEntry(**values)


def make_archive_entry(
    tenant_id: str, bot_id: str, archived_at: int = T0_MS, **changes: Any
) -> ArchiveEntry:
    """A ban archive entry; keyword arguments replace fields."""
    values: dict[str, Any] = {
        "tenant_id": tenant_id,
        "id": uid("arc"),
        "bot_id": bot_id,
        "reason": "banned",
        "archived_at": archived_at,
        "ban_details": {"ban_date": "2026-01-02", "ban_reason": "detected", "mechanism": "wave"},
        "snapshot": {"project_id": "wow_tbc", "character": {"name": "Zed"}, "total_farmed": 12},
    }
    values.update(changes)
    return ArchiveEntry(**values)


_ID_CHARS = "ABCabc019_-:@"


def _value(rng: random.Random) -> Any:
    """One top-level value of any JSON type (edge values favoured)."""
    kind = rng.randrange(12)
    if kind < 3:
        return rng.choice(EDGE_STRINGS)
    if kind < 6:
        return rng.choice(EDGE_NUMBERS)
    if kind == 6:
        return rng.choice((True, False))
    if kind == 7:
        return None
    if kind == 8:
        return rng.choice(({}, {"a": 1}, {"z": {"y": "deep"}}))
    if kind == 9:
        return rng.choice(([], [1, 2], ["b", None]))
    if kind == 10:
        return f"{rng.choice(EDGE_STRINGS)}-{rng.randrange(1000)}"
    return rng.randrange(-5, 5) * rng.choice((1, 0.5))


def generated_records(
    tenant_id: str, collection: Collection, count: int, *, seed: int = 11
) -> list[DomainRecord]:
    """``count`` records with mixed-type fields (``mixed`` of any type, ``name`` mostly text,
    ``score`` mostly numbers, ``flag`` mostly booleans; each sometimes missing or null), many
    ties, and ids over the whole id alphabet. Deterministic for a seed."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not secrets
    records: list[DomainRecord] = []
    seen: set[str] = set()
    while len(records) < count:
        length = rng.randrange(1, 6)
        record_id = "".join(rng.choice(_ID_CHARS) for _ in range(length)) + str(len(records) % 7)
        if record_id in seen:
            continue
        seen.add(record_id)
        data: dict[str, Any] = {}
        if rng.random() < 0.9:
            data["mixed"] = _value(rng)
        if rng.random() < 0.9:
            data["name"] = rng.choice(EDGE_STRINGS) if rng.random() < 0.8 else _value(rng)
        if rng.random() < 0.9:
            data["score"] = rng.choice(EDGE_NUMBERS) if rng.random() < 0.8 else _value(rng)
        if rng.random() < 0.8:
            data["flag"] = rng.choice((True, False)) if rng.random() < 0.8 else _value(rng)
        data["nested"] = {"name": rng.choice(EDGE_STRINGS), "hidden": "needle"}
        data["created_at"] = T0_MS + rng.randrange(50)
        data["updated_at"] = T0_MS + rng.randrange(50, 100)
        records.append(DomainRecord(tenant_id, collection, record_id, data))
    return records


def _strict(value: Any, path: str, other: Any) -> None:
    if isinstance(value, bool) or isinstance(other, bool) or value is None or other is None:
        ok = type(value) is type(other) and value == other
    elif isinstance(value, int) and not isinstance(value, bool):
        ok = type(other) is int and other == value
    elif isinstance(value, float):
        ok = isinstance(other, int | float) and other == value
    elif isinstance(value, str):
        ok = isinstance(other, str) and other == value
    elif isinstance(value, Mapping):
        if not isinstance(other, Mapping) or set(value) != set(other):
            ok = False
        else:
            for key in value:
                _strict(value[key], f"{path}.{key}", other[key])
            return
    elif isinstance(value, list | tuple):
        if not isinstance(other, list | tuple) or len(value) != len(other):
            ok = False
        else:
            for index, (a, b) in enumerate(zip(value, other, strict=True)):
                _strict(a, f"{path}[{index}]", b)
            return
    else:
        ok = value == other
    if not ok:
        raise AssertionError(f"{path}: stored {value!r}, read back {other!r}")


def check_same_json(expected: Any, actual: Any, what: str = "data") -> None:
    """``actual`` is ``expected`` as JSON: same keys, same strings, booleans and nulls,
    integers exactly (and still integers), floats equal in value."""
    _strict(expected, what, actual)
