"""The ``botmox-domain-data`` format's shared pieces: its name and version, the limits, the
error and report types, and how one line is encoded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import attrs

from botmox_core.errors import (
    BotmoxError,
    DomainsNotSupportedError,
)
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainDataBackend, supports_domains
from botmox_core.services import validation as check
from botmox_core.services.domains.settings import MAX_PATH_SEGMENTS

__all__ = [
    "AGGREGATES",
    "ARCHIVE",
    "ExportReport",
    "FORMAT",
    "ImportReport",
    "LOG",
    "LineError",
    "MAX_LINE_BYTES",
    "MAX_LISTED_ERRORS",
    "SETTINGS",
    "TransferError",
    "TransferProgress",
    "VERSION",
    "Writable",
]


FORMAT = "botmox-domain-data"


VERSION = 1


#: Bad lines listed in a report (all are counted).
MAX_LISTED_ERRORS = 1000


#: The longest line import reads (a record's data is at most 256 KiB of JSON; the settings
#: tree 2 MiB; escaping can grow them): a longer line is refused without being held whole.
MAX_LINE_BYTES = 16 * 1024 * 1024


LOG = "lifecycle_log"


ARCHIVE = "archive"


AGGREGATES = "aggregates"


SETTINGS = "settings"


#: Depth of a record's data: 16 levels per field as the API creates it, one more through a
#: PATCH's deep key.
_RECORD_DEPTH = check.MAX_JSON_DEPTH + 1


#: Depth of a settings tree: a body 17 deep written at a path of up to 8 segments.
_SETTINGS_DEPTH = check.MAX_JSON_DEPTH + 1 + MAX_PATH_SEGMENTS


_GZIP_MAGIC = b"\x1f\x8b"


class TransferError(BotmoxError):
    """The file cannot be imported (or the export failed): 400 ``BAD_REQUEST`` for the CLI."""

    default_code = "BAD_REQUEST"
    status = 400


class TransferProgress(Protocol):
    """Where export and import report progress (the CLI draws bars)."""

    def start(self, label: str, total: int | None) -> None:
        """A new phase or collection, with its size when known."""

    def advance(self, label: str, amount: int = 1) -> None:
        """``amount`` more done in ``label``."""


class Writable(Protocol):
    """Where an export is written (a binary file, standard output, a gzip stream)."""

    def write(self, data: bytes, /) -> object: ...


class _Silent:
    def start(self, label: str, total: int | None) -> None:
        pass

    def advance(self, label: str, amount: int = 1) -> None:
        pass


@attrs.frozen
class LineError:
    """A line that could not be imported: its number (1-based) and why."""

    line: int
    message: str


@attrs.define
class ExportReport:
    """What an export wrote: tenant, source backend, item counts and the SHA-256 of the file
    before the trailer."""

    tenant: str
    source_backend: str
    exported_at: int
    items: int = 0
    counts: dict[str, int] = attrs.field(factory=dict)
    sha256: str = ""


@attrs.define
class ImportReport:
    """What an import did (or, with ``dry_run``, would do).

    Attributes:
        tenant: the tenant written to.
        header: the file's header (source tenant, backend, export time).
        dry_run: nothing was written.
        complete: the trailer was present and its count and SHA-256 matched.
        problems: why the file is not complete (missing trailer, hash mismatch, truncation).
        counts: per kind or collection: ``created``, ``updated``, ``unchanged``.
        errors: the bad lines (the first :data:`MAX_LISTED_ERRORS`).
        error_count: how many lines were bad in all.
    """

    tenant: str
    header: dict[str, Any] = attrs.field(factory=dict)
    dry_run: bool = False
    complete: bool = False
    problems: list[str] = attrs.field(factory=list)
    counts: dict[str, dict[str, int]] = attrs.field(factory=dict)
    errors: list[LineError] = attrs.field(factory=list)
    error_count: int = 0

    def add_error(self, line: int, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_LISTED_ERRORS:
            self.errors.append(LineError(line, message))

    def count(self, label: str, outcome: str) -> None:
        bucket = self.counts.setdefault(label, {"created": 0, "updated": 0, "unchanged": 0})
        bucket[outcome] += 1


def _domains(backend: DataBackend) -> DomainDataBackend:
    if not supports_domains(backend):
        raise DomainsNotSupportedError(
            f"the {backend.name} data backend does not store domain data"
        )
    return backend


def _line(value: Mapping[str, Any]) -> bytes:
    return (
        json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"
    ).encode("utf-8")
