"""The record collections on RTDB, at the seed's paths (:data:`COLLECTION_PATHS`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botmox_core.domain.listing import ListPage, ListQuery, apply_query
from botmox_core.domain.records import Collection, DomainRecord
from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.ports.modify import checked_change
from botmox_rtdb.domain_codec import decode, encode
from botmox_rtdb.domain_repositories.paths import COLLECTION_PATHS
from botmox_rtdb.domain_repositories.writes import DomainWrites, same_json
from botmox_rtdb.layout import check_depth, checked_key
from botmox_rtdb.transactions import UNCHANGED

__all__ = ["RtdbRecordRepository"]


class RtdbRecordRepository:
    """The record collections at the seed's paths (:data:`COLLECTION_PATHS`)."""

    def __init__(self, writes: DomainWrites) -> None:
        self._writes = writes

    def _parent(self, tenant_id: str, collection: Collection) -> str:
        return self._writes.layout.path(tenant_id, COLLECTION_PATHS[Collection(collection)])

    def _path(self, tenant_id: str, collection: Collection, record_id: str) -> str:
        return f"{self._parent(tenant_id, collection)}/{checked_key(record_id, 'id')}"

    def get(self, tenant_id: str, collection: Collection, record_id: str) -> DomainRecord | None:
        """The record, or ``None``."""
        raw = self._writes.read(self._path(tenant_id, collection, record_id))
        if raw is None:
            return None
        return DomainRecord(tenant_id, Collection(collection), record_id, decode(raw))

    def add(self, record: DomainRecord) -> DomainRecord:
        """Stage a new record; :class:`DuplicateError` now, or at commit if a racing writer
        took the id first."""
        path = self._path(record.tenant_id, record.collection, record.id)

        def exists() -> DuplicateError:
            return DuplicateError(f"record {record.id!r} exists", details={"id": record.id})

        if self._writes.read(path) is not None:
            raise exists()
        self._writes.stage_create(path, encode(record.data, "record"), exists, "add record")
        return record

    def modify(
        self,
        tenant_id: str,
        collection: Collection,
        record_id: str,
        change: Callable[[DomainRecord], DomainRecord],
    ) -> DomainRecord | None:
        """Stage ``change(current)``, applied at commit by compare-and-set (module docstring);
        ``None`` when absent. An unchanged record is not written."""
        path = self._path(tenant_id, collection, record_id)
        collection = Collection(collection)
        result: list[DomainRecord] = []

        def step(raw: Any) -> Any:
            result.clear()
            if raw is None:
                return UNCHANGED
            current = DomainRecord(tenant_id, collection, record_id, decode(raw))
            changed = checked_change(current, change)
            if changed.collection != current.collection:
                raise BadRequestError("a domain record change must not alter its collection")
            result.append(changed)
            if same_json(dict(changed.data), dict(current.data)):
                return UNCHANGED
            return encode(changed.data, "record")

        self._writes.modify(path, step, "record")
        return result[0] if result else None

    def delete(self, tenant_id: str, collection: Collection, record_id: str) -> bool:
        """Stage the removal; whether the record existed."""
        path = self._path(tenant_id, collection, record_id)
        if self._writes.read(path) is None:
            return False
        self._writes.stage_write(path, None)
        return True

    def put_many(self, records: Sequence[DomainRecord]) -> None:
        """Stage every record, created or replaced whole, as a plain write: no read and no
        condition now, and at commit one multi-path ``update()`` for the whole unit (atomic),
        instead of the conditional create of :meth:`add` (two requests a record) or the
        compare-and-set of :meth:`modify`. What is stored is what those store for the same data
        (:func:`~botmox_rtdb.domain_codec.encode`, at the same path). Every record is checked
        before any is staged (ids and data keys usable as RTDB keys, depth within RTDB's limit,
        no (tenant, collection, id) twice: :class:`BadRequestError`), so a refused batch stages
        nothing. A record this unit added, modified or deleted is replaced
        (:meth:`DomainWrites.replace`)."""
        staged: dict[str, Any] = {}
        for record in records:
            path = self._path(record.tenant_id, record.collection, record.id)
            if path in staged:
                raise BadRequestError(
                    f"record {record.id!r} is in the batch twice",
                    details={
                        "tenant_id": record.tenant_id,
                        "collection": Collection(record.collection).value,
                        "id": record.id,
                    },
                )
            value = encode(record.data, "record")
            check_depth(path, value, "record")
            staged[path] = value
        for path, value in staged.items():
            self._writes.replace(path, value)

    def _records(
        self, tenant_id: str, collection: Collection, raw: Mapping[str, Any]
    ) -> list[DomainRecord]:
        return [
            DomainRecord(tenant_id, collection, key, decode(value)) for key, value in raw.items()
        ]

    def list(self, tenant_id: str, collection: Collection, query: ListQuery) -> ListPage:
        """One page, as :func:`apply_query` defines it. With ``q`` or ``sort`` (other than
        ``id``) the whole collection is read and filtered and ordered in memory; otherwise
        only its keys are read and the page's records fetched."""
        collection = Collection(collection)
        parent = self._parent(tenant_id, collection)
        by_id = query.q is None and query.sort in (None, "id")
        if not by_id or self._writes.pending_under(parent):
            children = self._writes.children(parent, "list records")
            return apply_query(self._records(tenant_id, collection, children), query)
        keys = sorted(self._writes.keys(parent, "list records"), reverse=query.descending)
        page = keys[query.offset : query.offset + query.limit]
        fetched = self._writes.fetch(parent, page, "list records") if page else {}
        records = [
            DomainRecord(tenant_id, collection, key, decode(fetched[key]))
            for key in page
            if key in fetched
        ]
        return ListPage(records, len(keys))

    def scan(
        self, tenant_id: str, collection: Collection, *, after: str | None = None, limit: int = 500
    ) -> Sequence[DomainRecord]:
        """Up to ``limit`` records after ``after`` in id (code point) order: a shallow read of
        the keys, then the page fetched by key ranges."""
        collection = Collection(collection)
        if limit <= 0:
            return []
        parent = self._parent(tenant_id, collection)
        if self._writes.pending_under(parent):
            children = self._writes.children(parent, "scan records")
            ids = sorted(key for key in children if after is None or key > after)[:limit]
            return [DomainRecord(tenant_id, collection, key, decode(children[key])) for key in ids]
        keys = sorted(
            key for key in self._writes.keys(parent, "scan records") if after is None or key > after
        )[:limit]
        fetched = self._writes.fetch(parent, keys, "scan records") if keys else {}
        return [
            DomainRecord(tenant_id, collection, key, decode(fetched[key]))
            for key in keys
            if key in fetched
        ]
