"""Export and import of one tenant's domain data as JSON lines (``botmox data export|import``;
the format the migration tool reuses). See docs/domains.md, "Export and import".

The format (``botmox-domain-data``, version 1) is UTF-8 text, one compact JSON object per line:

1. a header: ``{"kind": "header", "format": "botmox-domain-data", "version": 1, "tenant": ...,
   "source_backend": ..., "exported_at": <epoch ms>}``;
2. the items, one per line, in this order:
   ``{"kind": "settings", "tree": {...}}`` (when the tenant has a tree),
   ``{"kind": "aggregate", "key": "daily_stats", "value": {...}}`` (per stored aggregate),
   ``{"kind": "record", "collection": "bots", "id": ..., "data": {...}}`` (per collection, in
   id order), ``{"kind": "lifecycle_log", "id", "bot_id", "type", "message", "timestamp",
   "details"}`` and ``{"kind": "archive", "id", "bot_id", "reason", "archived_at",
   "ban_details", "snapshot"}`` (oldest first);
3. a trailer: ``{"kind": "trailer", "items": N, "counts": {...}, "sha256": ...}``: how many
   item lines, per kind and collection, and the SHA-256 of every byte before the trailer line
   (header and items, newlines included), so a truncated or altered file is detected.

Export reads through the repository ports page by page (bounded memory). Import checks the
whole file first (JSON, kinds, ids, keys, depth, sizes: the rules the services apply; then the
trailer) and writes nothing when it finds a problem, unless told to go on; then it writes
through the ports with upsert semantics, so importing the same file twice changes nothing the
second time: a record is added when absent, replaced when different (``created_at`` and
``updated_at`` kept exactly as exported) and left alone when equal; log and archive entries are
appended when absent; aggregates and the settings tree are replaced when different.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol

import attrs

from botmox_core.domain.listing import ListQuery
from botmox_core.domain.records import (
    RECORD_ID_PATTERN,
    AggregateKey,
    ArchiveEntry,
    Collection,
    DomainRecord,
    LifecycleLogEntry,
    now_ms,
)
from botmox_core.errors import (
    BadRequestError,
    BotmoxError,
    DomainsNotSupportedError,
    DuplicateError,
)
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainDataBackend, DomainUnitOfWork, supports_domains
from botmox_core.services import validation as check
from botmox_core.services.domains.base import MAX_RECORD_BYTES, MAX_SETTINGS_BYTES
from botmox_core.services.domains.rules import clean_json, encoded_size
from botmox_core.services.domains.settings import MAX_PATH_SEGMENTS

__all__ = [
    "FORMAT",
    "VERSION",
    "ExportReport",
    "ImportReport",
    "LineError",
    "TransferError",
    "TransferProgress",
    "Writable",
    "export_tenant",
    "export_to_path",
    "import_tenant",
    "readable_path",
]

FORMAT = "botmox-domain-data"
VERSION = 1
#: Records (and log or archive entries) read per repository call on export.
PAGE_SIZE = 500
#: Items written per unit of work on import.
BATCH_SIZE = 200
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


# -- export -----------------------------------------------------------------------------------


def _records(backend: DomainDataBackend, tenant: str, collection: Collection) -> Iterator[Any]:
    after: str | None = None
    while True:
        with (uow := backend.unit_of_work()):
            page = list(uow.records.scan(tenant, collection, after=after, limit=PAGE_SIZE))
        for record in page:
            yield {
                "kind": "record",
                "collection": str(collection),
                "id": record.id,
                "data": dict(record.data),
            }
        if len(page) < PAGE_SIZE:
            return
        after = page[-1].id


def _log(backend: DomainDataBackend, tenant: str) -> Iterator[Any]:
    after: tuple[int, str] | None = None
    while True:
        with (uow := backend.unit_of_work()):
            page = list(uow.bot_history.log(tenant, limit=PAGE_SIZE, after=after))
        for entry in page:
            yield {
                "kind": LOG,
                "id": entry.id,
                "bot_id": entry.bot_id,
                "type": entry.type,
                "message": entry.message,
                "timestamp": entry.timestamp,
                "details": dict(entry.details),
            }
        if len(page) < PAGE_SIZE:
            return
        after = (page[-1].timestamp, page[-1].id)


def _archive(backend: DomainDataBackend, tenant: str) -> Iterator[Any]:
    after: tuple[int, str] | None = None
    while True:
        with (uow := backend.unit_of_work()):
            page = list(uow.bot_history.archive(tenant, limit=PAGE_SIZE, after=after))
        for entry in page:
            yield {
                "kind": ARCHIVE,
                "id": entry.id,
                "bot_id": entry.bot_id,
                "reason": entry.reason,
                "archived_at": entry.archived_at,
                "ban_details": dict(entry.ban_details),
                "snapshot": dict(entry.snapshot),
            }
        if len(page) < PAGE_SIZE:
            return
        after = (page[-1].archived_at, page[-1].id)


def export_tenant(
    backend: DataBackend,
    tenant: str,
    out: Writable,
    *,
    progress: TransferProgress | None = None,
) -> ExportReport:
    """Write ``tenant``'s domain data to ``out`` in the format above, reading page by page
    (never a whole collection at once). Not a snapshot: run it while nobody writes (the
    migration's write freeze) for a consistent copy."""
    domains = _domains(backend)
    shown = progress or _Silent()
    report = ExportReport(tenant, backend.name, now_ms())
    digest = hashlib.sha256()

    def emit(value: Mapping[str, Any]) -> None:
        data = _line(value)
        digest.update(data)
        out.write(data)

    emit(
        {
            "kind": "header",
            "format": FORMAT,
            "version": VERSION,
            "tenant": tenant,
            "source_backend": backend.name,
            "exported_at": report.exported_at,
        }
    )

    def item(label: str, value: Mapping[str, Any]) -> None:
        emit(value)
        report.items += 1
        report.counts[label] = report.counts.get(label, 0) + 1
        shown.advance(label)

    with (uow := domains.unit_of_work()):
        tree = uow.settings.get(tenant)
        aggregates = {key: uow.aggregates.get(tenant, key) for key in AggregateKey}
        totals = {
            collection: uow.records.list(tenant, collection, ListQuery(limit=1)).total
            for collection in Collection
        }
    shown.start(SETTINGS, 1 if tree is not None else 0)
    if tree is not None:
        item(SETTINGS, {"kind": "settings", "tree": dict(tree)})
    shown.start(AGGREGATES, sum(value is not None for value in aggregates.values()))
    for key, value in aggregates.items():
        if value is not None:
            item(AGGREGATES, {"kind": "aggregate", "key": str(key), "value": dict(value)})
    del tree, aggregates
    for collection in Collection:
        shown.start(str(collection), totals[collection])
        for value in _records(domains, tenant, collection):
            item(str(collection), value)
    shown.start(LOG, None)
    for value in _log(domains, tenant):
        item(LOG, value)
    shown.start(ARCHIVE, None)
    for value in _archive(domains, tenant):
        item(ARCHIVE, value)
    report.sha256 = digest.hexdigest()
    out.write(
        _line(
            {
                "kind": "trailer",
                "items": report.items,
                "counts": report.counts,
                "sha256": report.sha256,
            }
        )
    )
    return report


def export_to_path(
    backend: DataBackend,
    tenant: str,
    target: str,
    *,
    progress: TransferProgress | None = None,
    stdout: BinaryIO | None = None,
) -> ExportReport:
    """:func:`export_tenant` to a file (gzip when its name ends in ``.gz``; written beside it
    and renamed into place only when complete) or, for ``-``, to ``stdout``."""
    if target == "-":
        if stdout is None:
            raise TransferError("no standard output to export to")
        report = export_tenant(backend, tenant, stdout, progress=progress)
        stdout.flush()
        return report
    path = Path(target)
    partial = path.with_name(path.name + ".partial")
    try:
        with open(partial, "wb") as raw:
            if path.name.endswith(".gz"):
                with gzip.GzipFile(filename=path.name[:-3], mode="wb", fileobj=raw) as packed:
                    report = export_tenant(backend, tenant, packed, progress=progress)
            else:
                report = export_tenant(backend, tenant, raw, progress=progress)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return report


# -- reading a file ---------------------------------------------------------------------------


@attrs.frozen
class _Record:
    collection: Collection
    id: str
    data: dict[str, Any]


@attrs.frozen
class _Log:
    id: str
    bot_id: str
    type: str
    message: str
    timestamp: int
    details: dict[str, Any]


@attrs.frozen
class _Archive:
    id: str
    bot_id: str
    reason: str
    archived_at: int
    ban_details: dict[str, Any]
    snapshot: dict[str, Any]


@attrs.frozen
class _Aggregate:
    key: AggregateKey
    value: dict[str, Any]


@attrs.frozen
class _Settings:
    tree: dict[str, Any]


_Item = _Record | _Log | _Archive | _Aggregate | _Settings


class _Bad(Exception):
    """A line that cannot be imported (the message names why)."""


def _refuse_constant(name: str) -> Any:
    raise _Bad(f"{name} is not a JSON number")


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise _Bad("not UTF-8 text") from None
    except RecursionError:
        raise _Bad("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise _Bad(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise _Bad("not a JSON object")
    return value


def _fields(value: Mapping[str, Any], kind: str, names: tuple[str, ...]) -> None:
    unknown = sorted(set(value) - {"kind", *names})
    if unknown:
        raise _Bad(f"{kind}: unknown field {unknown[0]!r}")
    missing = [name for name in names if name not in value]
    if missing:
        raise _Bad(f"{kind}: missing field {missing[0]!r}")


def _id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not RECORD_ID_PATTERN.fullmatch(value):
        raise _Bad(f"{field}: must be 1-128 characters of A-Z a-z 0-9 _ : @ -")
    return value


def _millis(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Bad(f"{field}: must be epoch milliseconds (a non-negative integer)")
    if value > 2**53 - 1:
        raise _Bad(f"{field}: must be within 2**53")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{field}: must be a string")
    if "\x00" in value:
        raise _Bad(f"{field}: must not contain NUL characters")
    return value


def _json_object(value: Any, field: str, max_depth: int = check.MAX_JSON_DEPTH) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{field}: must be a JSON object")
    try:
        cleaned = clean_json(value, field, max_depth=max_depth)
    except BadRequestError as exc:
        raise _Bad(exc.message) from None
    assert isinstance(cleaned, dict)
    return cleaned


def _item(value: Mapping[str, Any]) -> _Item:
    """The item of a parsed line, checked with the services' rules."""
    kind = value.get("kind")
    if kind == "record":
        _fields(value, "record", ("collection", "id", "data"))
        try:
            collection = Collection(value["collection"])
        except (ValueError, TypeError):
            raise _Bad(f"record: unknown collection {str(value['collection'])[:80]!r}") from None
        record_id = _id(value["id"], "id")
        data = _json_object(value["data"], "data", _RECORD_DEPTH)
        if "id" in data:
            raise _Bad("data: must not hold an id (it is the line's id)")
        for stamp in ("created_at", "updated_at"):
            if stamp in data:
                _millis(data[stamp], f"data.{stamp}")
        if encoded_size(data) > MAX_RECORD_BYTES:
            raise _Bad(f"data: a record is at most {MAX_RECORD_BYTES} bytes of JSON")
        return _Record(collection, record_id, data)
    if kind == LOG:
        _fields(value, LOG, ("id", "bot_id", "type", "message", "timestamp", "details"))
        return _Log(
            _id(value["id"], "id"),
            _id(value["bot_id"], "bot_id"),
            _string(value["type"], "type"),
            _string(value["message"], "message"),
            _millis(value["timestamp"], "timestamp"),
            _json_object(value["details"], "details"),
        )
    if kind == ARCHIVE:
        _fields(
            value, ARCHIVE, ("id", "bot_id", "reason", "archived_at", "ban_details", "snapshot")
        )
        return _Archive(
            _id(value["id"], "id"),
            _id(value["bot_id"], "bot_id"),
            _string(value["reason"], "reason"),
            _millis(value["archived_at"], "archived_at"),
            _json_object(value["ban_details"], "ban_details"),
            _json_object(value["snapshot"], "snapshot"),
        )
    if kind == "aggregate":
        _fields(value, "aggregate", ("key", "value"))
        try:
            key = AggregateKey(value["key"])
        except (ValueError, TypeError):
            raise _Bad(f"aggregate: unknown key {str(value['key'])[:80]!r}") from None
        return _Aggregate(key, _json_object(value["value"], "value", _SETTINGS_DEPTH))
    if kind == "settings":
        _fields(value, "settings", ("tree",))
        tree = _json_object(value["tree"], "tree", _SETTINGS_DEPTH)
        if encoded_size(tree) > MAX_SETTINGS_BYTES:
            raise _Bad(f"tree: the settings tree is at most {MAX_SETTINGS_BYTES} bytes of JSON")
        return _Settings(tree)
    if kind in ("header", "trailer"):
        raise _Bad(f"a {kind} line in the middle of the file")
    raise _Bad(f"unknown kind {str(kind)[:80]!r}")


def _label(item: _Item) -> str:
    if isinstance(item, _Record):
        return str(item.collection)
    if isinstance(item, _Log):
        return LOG
    if isinstance(item, _Archive):
        return ARCHIVE
    if isinstance(item, _Aggregate):
        return AGGREGATES
    return SETTINGS


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(number, bytes, ended)`` per line; ``ended`` is False for a last line without a
    newline. A line longer than :data:`MAX_LINE_BYTES` is given cut short (and fails to
    parse) without being held whole."""
    with open(path, "rb") as raw:
        packed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=raw, mode="rb") if packed else raw
        try:
            number = 0
            while True:
                line = stream.readline(MAX_LINE_BYTES + 1)
                if not line:
                    return
                number += 1
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while True:  # skip the rest of the over-long line
                        rest = stream.readline(MAX_LINE_BYTES)
                        if not rest or rest.endswith(b"\n"):
                            break
                    yield number, b"", True
                    continue
                yield number, line, line.endswith(b"\n")
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise TransferError(f"line {number + 1}: the file cannot be read: {exc}") from None
        finally:
            if packed:
                stream.close()


@attrs.define
class _Check:
    """What the checking pass found."""

    header: dict[str, Any] = attrs.field(factory=dict)
    bad_lines: set[int] = attrs.field(factory=set)
    skipped_lines: set[int] = attrs.field(factory=set)
    totals: dict[str, int] = attrs.field(factory=dict)
    last_line: int = 0


def _check_header(raw: bytes) -> dict[str, Any]:
    try:
        header = _parse(raw)
    except _Bad as exc:
        raise TransferError(f"line 1: {exc}") from None
    if header.get("kind") != "header" or header.get("format") != FORMAT:
        raise TransferError(f"line 1: not a {FORMAT} file (no header line)")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TransferError("line 1: the header has no valid version")
    if version > VERSION:
        raise TransferError(
            f"line 1: format version {version} is newer than this botmox reads ({VERSION})"
        )
    for field in ("tenant", "source_backend"):
        if not isinstance(header.get(field), str):
            raise TransferError(f"line 1: the header's {field} must be a string")
    if not isinstance(header.get("exported_at"), int):
        raise TransferError("line 1: the header's exported_at must be epoch milliseconds")
    return header


def _check_file(
    path: Path, report: ImportReport, *, allow_partial: bool, progress: TransferProgress
) -> _Check:
    """The checking pass: every line parsed and checked, the trailer compared."""
    found = _Check()
    digest = hashlib.sha256()
    trailer: dict[str, Any] | None = None
    trailer_line = 0
    items = 0
    counts: dict[str, int] = {}
    progress.start("checking", None)
    for number, raw, ended in _lines(path):
        found.last_line = number
        progress.advance("checking")
        if number == 1:
            found.header = _check_header(raw)
            report.header = found.header
            digest.update(raw)
            continue
        if trailer is not None:
            report.add_error(number, f"a line after the trailer (line {trailer_line})")
            found.bad_lines.add(number)
            continue
        try:
            value = _parse(raw) if raw else None
            if value is None:
                raise _Bad(f"longer than {MAX_LINE_BYTES} bytes")
        except _Bad as exc:
            if not ended:
                if allow_partial:
                    report.problems.append(f"line {number}: truncated (no newline), skipped")
                    found.skipped_lines.add(number)
                    continue
                report.add_error(number, f"{exc} (truncated: the file ends without a newline)")
            else:
                report.add_error(number, str(exc))
            found.bad_lines.add(number)
            items += 1
            digest.update(raw)
            continue
        if value.get("kind") == "trailer":
            trailer, trailer_line = value, number
            continue
        digest.update(raw)
        items += 1
        try:
            item = _item(value)
        except _Bad as exc:
            report.add_error(number, str(exc))
            found.bad_lines.add(number)
            continue
        label = _label(item)
        counts[label] = counts.get(label, 0) + 1
    if found.last_line == 0:
        raise TransferError(f"{path}: the file is empty (no header line)")
    found.totals = counts
    if trailer is None:
        report.problems.append("the trailer is missing: the file is incomplete (truncated?)")
    else:
        if trailer.get("sha256") != digest.hexdigest():
            report.problems.append(
                f"line {trailer_line}: the SHA-256 of the file does not match its trailer "
                "(altered or truncated)"
            )
        if trailer.get("items") != items:
            report.problems.append(
                f"line {trailer_line}: the trailer counts {trailer.get('items')!r} items, "
                f"the file holds {items}"
            )
    report.complete = trailer is not None and not report.problems
    return found


# -- writing ----------------------------------------------------------------------------------


def _write_record(uow: DomainUnitOfWork, tenant: str, item: _Record, dry_run: bool) -> str:
    if dry_run:
        current = uow.records.get(tenant, item.collection, item.id)
        if current is None:
            return "created"
        return "unchanged" if _same(current.data, item.data) else "updated"
    outcome: list[str] = []

    def change(current: DomainRecord) -> DomainRecord:
        if _same(current.data, item.data):
            outcome[:] = ["unchanged"]
            return current
        outcome[:] = ["updated"]
        return attrs.evolve(current, data=item.data)

    if uow.records.modify(tenant, item.collection, item.id, change) is not None:
        return outcome[0]
    uow.records.add(DomainRecord(tenant, item.collection, item.id, item.data))
    return "created"


def _same(left: Any, right: Any) -> bool:
    """Equal as JSON values: objects by keys and values, arrays item by item, ``true`` is not
    ``1``, and ``1`` equals ``1.0`` (no backend keeps them apart)."""
    if isinstance(left, dict):
        return (
            isinstance(right, dict)
            and left.keys() == right.keys()
            and all(_same(value, right[key]) for key, value in left.items())
        )
    if isinstance(left, list):
        return isinstance(right, list) and len(left) == len(right) and all(map(_same, left, right))
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    if isinstance(left, int | float) and isinstance(right, int | float):
        return left == right
    return type(left) is type(right) and bool(left == right)


def _existing(
    read: Callable[[tuple[int, str]], list[Any]],
    time_of: Callable[[Any], int],
    stamp: int,
    entry_id: str,
) -> Any | None:
    """The entry with ``entry_id`` at time ``stamp`` among one bot's entries, read after the
    cursor (``stamp - 1``, past every id) until the time passes ``stamp``."""
    cursor = (stamp - 1, "\x7f")
    for _ in range(10_000):
        page = read(cursor)
        for entry in page:
            if time_of(entry) > stamp:
                return None
            if time_of(entry) == stamp and entry.id == entry_id:
                return entry
        if len(page) < 64:
            return None
        cursor = (time_of(page[-1]), page[-1].id)
    return None


def _write_log(uow: DomainUnitOfWork, tenant: str, item: _Log, dry_run: bool) -> str:
    found = _existing(
        lambda after: list(uow.bot_history.log(tenant, item.bot_id, limit=64, after=after)),
        lambda entry: entry.timestamp,
        item.timestamp,
        item.id,
    )
    entry = LifecycleLogEntry(
        tenant, item.id, item.bot_id, item.type, item.message, item.timestamp, item.details
    )
    if found is not None:
        if (
            found.type == entry.type
            and found.message == entry.message
            and _same(dict(found.details), item.details)
        ):
            return "unchanged"
        raise _Bad(
            f"lifecycle log entry {item.id} exists with other content (entries never change)"
        )
    if not dry_run:
        try:
            uow.bot_history.append_log(entry)
        except DuplicateError:
            raise _Bad(f"lifecycle log entry {item.id} exists with another bot or time") from None
    return "created"


def _write_archive(uow: DomainUnitOfWork, tenant: str, item: _Archive, dry_run: bool) -> str:
    found = _existing(
        lambda after: list(uow.bot_history.archive(tenant, item.bot_id, limit=64, after=after)),
        lambda entry: entry.archived_at,
        item.archived_at,
        item.id,
    )
    entry = ArchiveEntry(
        tenant,
        item.id,
        item.bot_id,
        item.reason,
        item.archived_at,
        item.ban_details,
        item.snapshot,
    )
    if found is not None:
        if (
            found.reason == entry.reason
            and _same(dict(found.ban_details), item.ban_details)
            and _same(dict(found.snapshot), item.snapshot)
        ):
            return "unchanged"
        raise _Bad(f"archive entry {item.id} exists with other content (entries never change)")
    if not dry_run:
        try:
            uow.bot_history.append_archive(entry)
        except DuplicateError:
            raise _Bad(f"archive entry {item.id} exists with another bot or time") from None
    return "created"


def _write_aggregate(uow: DomainUnitOfWork, tenant: str, item: _Aggregate, dry_run: bool) -> str:
    current = uow.aggregates.get(tenant, item.key)
    if current is not None and _same(dict(current), item.value):
        return "unchanged"
    if not dry_run:
        uow.aggregates.put(tenant, item.key, item.value)
    return "created" if current is None else "updated"


def _write_settings(uow: DomainUnitOfWork, tenant: str, item: _Settings, dry_run: bool) -> str:
    if dry_run:
        current = uow.settings.get(tenant)
        if current is None:
            return "created"
        return "unchanged" if _same(dict(current), item.tree) else "updated"
    outcome: list[str] = []

    def change(current: Mapping[str, Any]) -> Mapping[str, Any]:
        if _same(dict(current), item.tree):
            outcome[:] = ["unchanged"]
            return current
        outcome[:] = ["updated" if current else "created"]
        return item.tree

    uow.settings.modify(tenant, change)
    return outcome[0]


def _write(uow: DomainUnitOfWork, tenant: str, item: _Item, dry_run: bool) -> str:
    if isinstance(item, _Record):
        return _write_record(uow, tenant, item, dry_run)
    if isinstance(item, _Log):
        return _write_log(uow, tenant, item, dry_run)
    if isinstance(item, _Archive):
        return _write_archive(uow, tenant, item, dry_run)
    if isinstance(item, _Aggregate):
        return _write_aggregate(uow, tenant, item, dry_run)
    return _write_settings(uow, tenant, item, dry_run)


def _write_batch(
    backend: DomainDataBackend,
    tenant: str,
    batch: list[tuple[int, _Item]],
    report: ImportReport,
    dry_run: bool,
) -> None:
    """One unit of work for the batch; if any item fails, the batch is rolled back and written
    again one item per unit so the failing lines are named and the rest is written."""
    outcomes: list[str] = []
    try:
        with (uow := backend.unit_of_work()):
            for _, item in batch:
                outcomes.append(_write(uow, tenant, item, dry_run))
            if not dry_run:
                uow.commit()
    except (_Bad, BotmoxError):
        if len(batch) == 1:
            number, item = batch[0]
            try:
                with (uow := backend.unit_of_work()):
                    outcome = _write(uow, tenant, item, dry_run)
                    if not dry_run:
                        uow.commit()
            except _Bad as exc:
                report.add_error(number, str(exc))
                return
            except BotmoxError as exc:
                report.add_error(number, f"the backend refused it: {exc.code}: {exc.message}")
                return
            report.count(_label(item), outcome)
            return
        for single in batch:
            _write_batch(backend, tenant, [single], report, dry_run)
        return
    for (_, item), outcome in zip(batch, outcomes, strict=True):
        report.count(_label(item), outcome)


def import_tenant(
    backend: DataBackend,
    tenant: str,
    path: Path,
    *,
    dry_run: bool = False,
    allow_partial: bool = False,
    continue_on_error: bool = False,
    progress: TransferProgress | None = None,
) -> ImportReport:
    """Import the file at ``path`` (plain or gzip) into ``tenant``: check it whole first, then
    write (see the module doc). Raises :class:`TransferError` (nothing written) for an
    unreadable header, for bad lines unless ``continue_on_error``, and for a missing or
    mismatched trailer unless ``allow_partial``; otherwise the report lists what was done and
    the lines that were not imported."""
    domains = _domains(backend)
    shown = progress or _Silent()
    report = ImportReport(tenant, dry_run=dry_run)
    found = _check_file(path, report, allow_partial=allow_partial, progress=shown)
    if report.error_count and not continue_on_error:
        listed = "; ".join(f"line {error.line}: {error.message}" for error in report.errors[:20])
        more = report.error_count - min(20, len(report.errors))
        raise TransferError(
            f"{report.error_count} bad line(s), nothing imported: {listed}"
            + (f" (and {more} more)" if more else ""),
            details=[attrs.asdict(error) for error in report.errors],
        )
    if report.problems and not allow_partial:
        raise TransferError(
            "; ".join(report.problems) + ". Nothing imported (--allow-partial imports what "
            "the file holds)."
        )
    for label, total in found.totals.items():
        shown.start(label, total)
    batch: list[tuple[int, _Item]] = []
    for number, raw, _ in _lines(path):
        if number == 1 or number in found.bad_lines or number in found.skipped_lines:
            continue
        try:
            value = _parse(raw)
            if value.get("kind") == "trailer":
                continue
            item = _item(value)
        except _Bad as exc:  # the file changed since the check
            raise TransferError(f"line {number}: changed while importing: {exc}") from None
        batch.append((number, item))
        if len(batch) >= BATCH_SIZE:
            _flush(domains, tenant, batch, report, dry_run, shown)
            batch = []
    if batch:
        _flush(domains, tenant, batch, report, dry_run, shown)
    return report


def _flush(
    backend: DomainDataBackend,
    tenant: str,
    batch: list[tuple[int, _Item]],
    report: ImportReport,
    dry_run: bool,
    progress: TransferProgress,
) -> None:
    _write_batch(backend, tenant, batch, report, dry_run)
    per_label: dict[str, int] = {}
    for _, item in batch:
        per_label[_label(item)] = per_label.get(_label(item), 0) + 1
    for label, amount in per_label.items():
        progress.advance(label, amount)


@contextlib.contextmanager
def readable_path(source: str, stdin: BinaryIO | None = None) -> Iterator[Path]:
    """The file to import: ``source`` itself, or for ``-`` standard input copied to a
    temporary file (import reads the file twice: once to check it, once to write)."""
    if source != "-":
        path = Path(source)
        if not path.is_file():
            raise TransferError(f"no file at {path}")
        yield path
        return
    if stdin is None:
        raise TransferError("no standard input to import from")
    handle, name = tempfile.mkstemp(prefix="botmox-import-", suffix=".jsonl")
    try:
        with os.fdopen(handle, "wb") as spool:
            shutil.copyfileobj(stdin, spool, 1024 * 1024)
        yield Path(name)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(name)
