"""The download audit on RTDB: ``tenants/{t}/download_audit/{id}``, ids from the tenant's
counter ``tenants/{t}/counters/download_audit``."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.models import DownloadAuditEntry
from botmox_rtdb import layout
from botmox_rtdb.layout import tenant_path
from botmox_rtdb.queries import query_string_value
from botmox_rtdb.records import from_record, to_record
from botmox_rtdb.repositories._support import (
    _follow_counter,
    _next_counter,
    _page,
    _records_by_id,
)
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.write_buffer import WriteBuffer, create_if_absent

__all__ = ["RtdbDownloadAuditRepository"]


class RtdbDownloadAuditRepository:
    """Audit entries at ``tenants/{t}/download_audit/{id}``; ids from the tenant's counter."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Allocate an id now (race-free counter) and stage the entry."""
        counter = tenant_path(entry.tenant_id, layout.COUNTERS, layout.AUDIT)
        entry_id = _next_counter(self._buffer, counter, "allocate audit id")
        stored = attrs.evolve(entry, id=entry_id)
        path = tenant_path(entry.tenant_id, layout.AUDIT, str(entry_id))
        self._buffer.stage_write(path, to_record(stored, path))
        return stored

    def list(
        self, tenant_id: str, *, lease_id: str | None = None, limit: int = 100
    ) -> Sequence[DownloadAuditEntry]:
        """Newest first, at most ``limit`` (indexes ``id`` and ``lease_id``)."""
        if limit <= 0:
            return []
        parent = tenant_path(tenant_id, layout.AUDIT)
        with map_rtdb_errors("list audit entries"):
            query = self._buffer.ref(parent)
            if lease_id is None:
                found = query.order_by_child("id").limit_to_last(limit).get()
            else:
                found = (
                    query.order_by_child("lease_id").equal_to(query_string_value(lease_id)).get()
                )
        children = _records_by_id(found)
        for key, record in self._buffer.pending_children(parent).items():
            matches = isinstance(record, dict) and record.get("lease_id") == lease_id
            if lease_id is None or matches:
                children[key] = record
        entries = [
            from_record(r, DownloadAuditEntry, tenant_id=tenant_id)
            for r in children.values()
            if isinstance(r, dict)
        ]
        entries.sort(key=lambda entry: entry.id, reverse=True)
        return entries[:limit]

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> Sequence[DownloadAuditEntry]:
        """The tenant's entries after the id ``after``, by id (index ``id``, a page at most)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadRequestError(f"limit must be a non-negative integer, got {limit!r}")
        if limit == 0:
            return []
        parent = tenant_path(tenant_id, layout.AUDIT)
        with map_rtdb_errors("scan audit entries"):
            found = (
                self._buffer.ref(parent)
                .order_by_child("id")
                .start_at((after or 0) + 1)
                .limit_to_first(limit)
                .get()
            )
        children = _records_by_id(found)
        children.update(self._buffer.pending_children(parent))
        entries = [
            from_record(r, DownloadAuditEntry, tenant_id=tenant_id)
            for r in children.values()
            if isinstance(r, dict)
        ]
        return _page(((entry.id, entry) for entry in entries), after, limit)

    def import_(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Stage the entry under its own id (:class:`DuplicateError` when taken) and raise the
        tenant's audit counter to at least that id now."""
        if isinstance(entry.id, bool) or not isinstance(entry.id, int) or entry.id < 1:
            raise BadRequestError(f"an imported audit entry needs a positive id, got {entry.id!r}")
        path = tenant_path(entry.tenant_id, layout.AUDIT, str(entry.id))
        if self._buffer.read(path) is not None:
            raise DuplicateError(f"audit entry {entry.id} exists")
        counter = tenant_path(entry.tenant_id, layout.COUNTERS, layout.AUDIT)
        _follow_counter(self._buffer, counter, entry.id, "keep audit id")
        self._buffer.stage_conditional(
            create_if_absent(
                path,
                to_record(entry, path),
                lambda: DuplicateError(f"audit entry {entry.id} exists"),
                "import audit entry",
            )
        )
        return entry
