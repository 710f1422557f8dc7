"""The one place where botmox values are (un)structured to JSON-ready data and back.

Timestamps become ISO 8601 strings in UTC (``2026-11-24T23:00:00Z``), enums their values,
frozensets sorted lists. Plugins add hooks for their own types through the
``botmox_configure_converter`` hook, or by calling :func:`configure_converter` on a converter of
their own. Data backends store models through :mod:`botmox_core.records`, a record codec built
on a copy of this converter.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cattrs import Converter
from cattrs.preconf.json import make_converter

__all__ = ["configure_converter", "format_timestamp", "get_converter", "parse_timestamp"]


def format_timestamp(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, millisecond precision."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: botmox timestamps are timezone-aware UTC")
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


def parse_timestamp(value: str | datetime) -> datetime:
    """Parse an ISO 8601 timestamp; a timestamp without offset is taken as UTC."""
    if isinstance(value, datetime):
        parsed = value
    else:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def configure_converter(converter: Converter) -> Converter:
    """Install botmox's hooks on ``converter`` and return it."""
    converter.register_unstructure_hook(datetime, format_timestamp)
    converter.register_structure_hook(datetime, lambda value, _: parse_timestamp(value))
    converter.register_unstructure_hook(frozenset, lambda value: sorted(value))
    return converter


_converter: Converter | None = None


def get_converter() -> Converter:
    """The process-wide converter (built on first use)."""
    global _converter
    if _converter is None:
        _converter = configure_converter(make_converter())
    return _converter
