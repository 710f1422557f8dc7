"""Export: one tenant's domain data written as ``botmox-domain-data`` lines, read through the
repository ports page by page."""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, BinaryIO

from botmox_core.domain.listing import ListQuery
from botmox_core.domain.records import (
    AggregateKey,
    Collection,
    now_ms,
)
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainDataBackend
from botmox_core.services.domains.transfer.format import (
    AGGREGATES,
    ARCHIVE,
    FORMAT,
    LOG,
    SETTINGS,
    VERSION,
    ExportReport,
    TransferError,
    TransferProgress,
    Writable,
    _domains,
    _line,
    _Silent,
)

__all__ = ["PAGE_SIZE", "export_tenant", "export_to_path"]


#: Records (and log or archive entries) read per repository call on export.
PAGE_SIZE = 500


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
