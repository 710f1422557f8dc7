"""How model values are stored in SQLite columns, and read back unchanged: the SQLite hooks of
the shared record codec (:mod:`botmox_core.records`).

* Timestamps: ISO 8601 UTC text with microseconds, fixed width
  (``2026-11-24T23:00:00.123456Z``), so text order is time order and values round-trip exactly.
  Naive datetimes are refused (by the codec).
* JSON objects (``metadata``, ``payload``, ``result``): compact JSON text; NaN and non-JSON
  values are refused.
* String collections (entitlement modules, agent capabilities): a JSON array (a set's members
  sorted).
* Enums: their values (the codec).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from botmox_core.errors import BadRequestError
from botmox_core.records import FieldHooks, RecordCodec, RecordHooks, enum_value

__all__ = [
    "CODEC",
    "decode_json_array",
    "decode_json_object",
    "decode_timestamp",
    "encode_json_array",
    "encode_json_object",
    "encode_timestamp",
    "enum_value",
]

_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_WIDTH = len("2026-11-24T23:00:00.123456Z")


def encode_timestamp(value: datetime, field: str = "timestamp") -> str:
    """Fixed-width ISO UTC text for an aware datetime; :class:`BadRequestError` when naive."""
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise BadRequestError(f"timestamps must be timezone-aware datetimes, got {value!r}")
    return _timestamp_text(value)


def _timestamp_text(value: datetime, field: str = "timestamp") -> str:
    """:func:`encode_timestamp` of a datetime the codec has checked to be aware."""
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def decode_timestamp(text: str) -> datetime:
    """The aware UTC datetime stored by :func:`encode_timestamp` (``ValueError`` for other
    text)."""
    if len(text) == _WIDTH and text[10] == "T" and text[-1] == "Z":
        return datetime.fromisoformat(text)  # the stored format, 20 times faster than strptime
    return datetime.strptime(text, _FORMAT).replace(tzinfo=UTC)


def encode_json_object(value: dict[str, Any], field: str = "metadata") -> str:
    """Compact JSON text of a dict; :class:`BadRequestError` if it is not JSON-serialisable."""
    if not isinstance(value, dict):
        raise BadRequestError(f"{field} must be a JSON object, got {type(value).__name__}")
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise BadRequestError(f"{field} is not valid JSON: {exc}") from exc


def decode_json_object(text: str) -> dict[str, Any]:
    """The dict stored by :func:`encode_json_object` (``ValueError`` for anything else)."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def encode_json_array(names: list[str], field: str = "names") -> str:
    """A JSON array of strings."""
    return json.dumps(names, ensure_ascii=False, separators=(",", ":"))


def decode_json_array(text: str) -> list[Any]:
    """The list stored by :func:`encode_json_array` (``ValueError`` for anything else)."""
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError("not a JSON array")
    return value


CODEC = RecordCodec(
    RecordHooks(
        timestamp=FieldHooks(_timestamp_text, decode_timestamp),
        json_object=FieldHooks(encode_json_object, decode_json_object),
        strings=FieldHooks(encode_json_array, decode_json_array),
    )
)
"""The SQLite backend's record codec (records keyed by column name)."""
