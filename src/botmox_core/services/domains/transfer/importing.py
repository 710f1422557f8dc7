"""Import: check the whole file, then write it batch by batch; and the file to import from a
path or standard input."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import attrs

from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainDataBackend, after_bulk_write
from botmox_core.services.domains.transfer.format import (
    ImportReport,
    TransferError,
    TransferProgress,
    _domains,
    _Silent,
)
from botmox_core.services.domains.transfer.lines import (
    _Bad,
    _check_file,
    _Item,
    _item,
    _label,
    _lines,
    _parse,
    _Record,
)
from botmox_core.services.domains.transfer.writing import _write_batch

__all__ = ["BATCH_SIZE", "import_tenant", "readable_path"]


#: Items written per unit of work on import.
BATCH_SIZE = 500


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
    in_batch: set[tuple[str, str]] = set()  # the batch's record keys: each at most once
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
        if isinstance(item, _Record):
            key = (str(item.collection), item.id)
            if key in in_batch:  # the same record again: it is written after the first
                _flush(domains, tenant, batch, report, dry_run, shown)
                batch, in_batch = [], set()
            in_batch.add(key)
        batch.append((number, item))
        if len(batch) >= BATCH_SIZE:
            _flush(domains, tenant, batch, report, dry_run, shown)
            batch, in_batch = [], set()
    if batch:
        _flush(domains, tenant, batch, report, dry_run, shown)
    wrote = any(c["created"] or c["updated"] for c in report.counts.values())
    if wrote and not dry_run:
        after_bulk_write(domains)  # statistics and search indexes caught up before lists
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
