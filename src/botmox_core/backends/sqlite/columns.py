"""How model values are stored in SQLite columns, and read back unchanged.

* Timestamps: ISO 8601 UTC text with microseconds, fixed width
  (``2026-11-24T23:00:00.123456Z``), so text order is time order and values round-trip exactly.
  Naive datetimes are refused.
* JSON objects (``metadata``): compact JSON text; NaN and non-JSON values are refused.
* Module sets: a sorted JSON array.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from botmox_core.errors import BadRequestError

__all__ = [
    "decode_json_object",
    "decode_modules",
    "decode_optional_timestamp",
    "decode_timestamp",
    "encode_enum",
    "encode_json_object",
    "encode_modules",
    "encode_optional_timestamp",
    "encode_timestamp",
]

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"

E = TypeVar("E", bound=enum.Enum)


def encode_enum(kind: type[E], value: E | str, *, field: str) -> Any:
    """The stored value of an enum member (a member or its value); :class:`BadRequestError`
    when ``value`` is not one of ``kind``."""
    try:
        return kind(value).value
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise BadRequestError(f"{field} must be one of {allowed}, got {value!r}") from None


def encode_timestamp(value: datetime) -> str:
    """Fixed-width ISO UTC text for an aware datetime; :class:`BadRequestError` when naive."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise BadRequestError(f"timestamps must be timezone-aware datetimes, got {value!r}")
    return value.astimezone(UTC).strftime(_FORMAT)


def encode_optional_timestamp(value: datetime | None) -> str | None:
    """:func:`encode_timestamp`, passing ``None`` through."""
    return None if value is None else encode_timestamp(value)


def decode_timestamp(text: str) -> datetime:
    """The aware UTC datetime stored by :func:`encode_timestamp`."""
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def decode_optional_timestamp(text: str | None) -> datetime | None:
    """:func:`decode_timestamp`, passing ``None`` through."""
    return None if text is None else decode_timestamp(text)


def encode_json_object(value: dict[str, Any], *, field: str = "metadata") -> str:
    """Compact JSON text of a dict; :class:`BadRequestError` if it is not JSON-serialisable."""
    if not isinstance(value, dict):
        raise BadRequestError(f"{field} must be a JSON object, got {type(value).__name__}")
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise BadRequestError(f"{field} is not valid JSON: {exc}") from exc


def decode_json_object(text: str) -> dict[str, Any]:
    """The dict stored by :func:`encode_json_object`."""
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


def encode_modules(modules: Iterable[str]) -> str:
    """A sorted JSON array of module names."""
    names = list(modules)
    if not all(isinstance(name, str) for name in names):
        raise BadRequestError("entitlement modules must be strings")
    return json.dumps(sorted(set(names)), ensure_ascii=False, separators=(",", ":"))


def decode_modules(text: str) -> frozenset[str]:
    """The module set stored by :func:`encode_modules`."""
    return frozenset(json.loads(text))
