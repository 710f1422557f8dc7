"""Every migration stream in copy order, and the look-up by name (its own module: it composes
:mod:`.streams`, :mod:`.artifact_streams` and :mod:`.vault_streams`, which share the stream
types of the first)."""

from __future__ import annotations

from botmox_core.domain.records import Collection
from botmox_core.errors import BotmoxError
from botmox_core.migration.artifact_streams import ARTIFACT_STREAMS
from botmox_core.migration.streams import (
    AggregateStream,
    ArchiveStream,
    LogStream,
    RecordStream,
    SettingsStream,
    Stream,
)
from botmox_core.migration.vault_streams import BindingStream, SecretStream

__all__ = ["STREAMS", "stream_named"]

STREAMS: tuple[Stream, ...] = (
    *ARTIFACT_STREAMS,
    SettingsStream(),
    AggregateStream(),
    *(RecordStream(collection) for collection in Collection),
    LogStream(),
    ArchiveStream(),
    SecretStream(),
    BindingStream(),
)
"""Every stream, in the order a migration copies them (releases before the assignments naming
them, agents before their commands, secrets before the bindings naming them)."""


def stream_named(name: str) -> Stream:
    """The stream called ``name``; :class:`BotmoxError` naming the known ones otherwise."""
    for stream in STREAMS:
        if stream.name == name:
            return stream
    known = ", ".join(s.name for s in STREAMS)
    raise BotmoxError(f"unknown stream {name!r} (known: {known})", code="BAD_REQUEST")
