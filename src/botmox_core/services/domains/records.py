"""The record collections: list, get, create, patch and delete entities of the caller's tenant.

One service for all eight collections (:class:`~botmox_core.domain.records.Collection`); what
differs per collection is its :class:`~botmox_core.services.domains.entities.EntitySchema`.
Every call is one unit of work and one repository call (a list is one ``records.list``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from botmox_core.domain.patching import apply_patch, key_error
from botmox_core.domain.records import Collection, DomainRecord, new_record_id
from botmox_core.errors import BadRequestError, DuplicateError, NotFoundError
from botmox_core.services import validation as check
from botmox_core.services.domains.base import MAX_RECORD_BYTES, DomainService, record_id
from botmox_core.services.domains.entities import SCHEMAS, EntitySchema
from botmox_core.services.domains.query import list_query
from botmox_core.services.domains.rules import clean_json, encoded_size, invalid, obj
from botmox_core.services.principal import Principal

__all__ = ["KINDS", "RecordPage", "RecordService", "collection_for"]

#: The ``{kind}`` of ``/resources/{kind}`` and ``/workspace/{kind}``.
KINDS: Mapping[str, Mapping[str, Collection]] = {
    "resources": {
        "licenses": Collection.LICENSES,
        "proxies": Collection.PROXIES,
        "subscriptions": Collection.SUBSCRIPTIONS,
    },
    "workspace": {
        "notes": Collection.NOTES,
        "calendar": Collection.CALENDAR,
        "kanban": Collection.KANBAN,
    },
}
_AREA_NAMES = {"resources": "resource", "workspace": "workspace"}
#: Stamps the services own: a PATCH never sets them (``updated_at`` is stamped, ``created_at``
#: kept).
_STAMPS = frozenset({"created_at", "updated_at"})


def collection_for(area: str, kind: Any) -> Collection:
    """The collection of ``/{area}/{kind}``; 400 ``Invalid resource kind`` (or ``workspace``)
    for anything else."""
    kinds = KINDS[area]
    if not isinstance(kind, str) or kind not in kinds:
        allowed = "|".join(kinds)
        raise BadRequestError(
            f"Invalid {_AREA_NAMES[area]} kind",
            details=[{"field": "kind", "message": f"must be one of {allowed}"}],
        )
    return kinds[kind]


@attrs.frozen
class RecordPage:
    """One page of a list, as the API answers it.

    Attributes:
        data: the entities of the page.
        total: how many entities match in all.
        page, limit: the page asked for.
    """

    data: list[dict[str, Any]]
    total: int
    page: int
    limit: int

    @property
    def meta(self) -> dict[str, int]:
        return {"total": self.total, "page": self.page, "limit": self.limit}


def body_object(body: Any, schema: EntitySchema) -> dict[str, Any]:
    """``body`` as a non-empty JSON object (``"<X> payload must not be empty"`` otherwise)."""
    if body is None or body == {}:
        raise invalid("body", schema.empty_message)
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    return body


def check_size(data: Mapping[str, Any]) -> None:
    size = encoded_size(data)
    if size > MAX_RECORD_BYTES:
        raise invalid("body", f"the record must be at most {MAX_RECORD_BYTES} bytes of JSON")


class RecordService(DomainService):
    """CRUD and listing of the record collections, per tenant."""

    def schema(self, collection: Collection) -> EntitySchema:
        return SCHEMAS[collection]

    def list(self, principal: Principal, collection: Collection, **params: Any) -> RecordPage:
        """A page of the tenant's collection (``page, limit, sort, order, q``: see
        :func:`~botmox_core.services.domains.query.list_query`)."""
        query = list_query(**params)
        with (uow := self._read_unit()):
            found = uow.records.list(principal.tenant_id, collection, query)
        return RecordPage(
            [record.entity() for record in found.records], found.total, query.page, query.limit
        )

    def get(self, principal: Principal, collection: Collection, raw_id: Any) -> dict[str, Any]:
        """The entity; 404 with the collection's message when the tenant has none."""
        rid = record_id(raw_id)
        with (uow := self._read_unit()):
            record = uow.records.get(principal.tenant_id, collection, rid)
        if record is None:
            raise NotFoundError(SCHEMAS[collection].not_found)
        return dict(record.entity())

    def create(self, principal: Principal, collection: Collection, body: Any) -> dict[str, Any]:
        """Store a new entity: ``id`` from the body (trimmed) or a new push id; 409
        ``DUPLICATE`` when the id exists. ``created_at`` is kept when the body gives one (a
        non-negative integer), else now; ``updated_at`` is now."""
        schema = SCHEMAS[collection]
        data = clean_json(body_object(body, schema), "")
        now = self.now_ms()
        raw_id = data.pop("id", None)
        rid = new_record_id(now) if raw_id is None else record_id(raw_id, trim=True)
        data = obj(schema.fields, required=schema.required_on_create)(data, "")
        data.setdefault("created_at", now)
        data["updated_at"] = now
        check_size(data)
        record = DomainRecord(principal.tenant_id, collection, rid, data)
        with (uow := self._unit()):
            try:
                stored = uow.records.add(record)
            except DuplicateError:
                raise DuplicateError(
                    f"{schema.label} {rid} already exists",
                    details=[{"field": "id", "message": "already exists"}],
                ) from None
            uow.commit()
        return dict(stored.entity())

    def patch(
        self, principal: Principal, collection: Collection, raw_id: Any, body: Any
    ) -> dict[str, Any]:
        """Apply a PATCH (shallow merge, ``a/b`` deep keys, ``null`` deletes: see
        :mod:`botmox_core.domain.patching`) and answer the merged entity; 404 when absent.

        ``created_at`` and ``updated_at`` in the body are ignored (``updated_at`` becomes
        now); an ``id`` other than the record's is a 400. Every top-level field the patch
        touches is checked after merging; a required field cannot be deleted."""
        schema = SCHEMAS[collection]
        rid = record_id(raw_id)
        changes = patch_changes(body_object(body, schema), rid)
        # In the body's order (not a set's, which differs per process): the first field
        # that fails is the one named, on every server alike.
        touched = list(dict.fromkeys(key.split("/", 1)[0] for key in changes))
        now = self.now_ms()

        def change(current: DomainRecord) -> DomainRecord:
            data = apply_patch(current.data, changes)
            for name in touched:
                if name in data:
                    problem = check.json_depth_error(data[name])
                    if problem is not None:
                        raise invalid(name, problem)
                    if name in schema.fields:
                        data[name] = schema.fields[name](data[name], name)
                elif name in schema.required_on_create:
                    raise invalid(name, "is required and cannot be removed")
            if not isinstance(data.get("created_at"), int) or isinstance(
                data.get("created_at"), bool
            ):
                data["created_at"] = now
            data["updated_at"] = now
            check_size(data)
            return attrs.evolve(current, data=data)

        with (uow := self._unit()):
            stored = uow.records.modify(principal.tenant_id, collection, rid, change)
            if stored is None:
                raise NotFoundError(schema.not_found)
            uow.commit()
        return dict(stored.entity())

    def delete(self, principal: Principal, collection: Collection, raw_id: Any) -> dict[str, Any]:
        """Remove the entity: ``{id, deleted: true}``; 404 when absent."""
        rid = record_id(raw_id)
        with (uow := self._unit()):
            existed = uow.records.delete(principal.tenant_id, collection, rid)
            if not existed:
                raise NotFoundError(SCHEMAS[collection].not_found)
            uow.commit()
        return {"id": rid, "deleted": True}


def patch_changes(body: Mapping[str, Any], rid: str) -> dict[str, Any]:
    """The changes a PATCH body makes: keys checked segment by segment, values cleaned, the
    stamps dropped and an ``id`` equal to the record's dropped (another one is a 400)."""
    changes: dict[str, Any] = {}
    for key, value in body.items():
        segments = key.split("/") if isinstance(key, str) else [key]
        for segment in segments:
            problem = key_error(segment)
            if problem is not None:
                raise invalid("body", problem)
        head = segments[0]
        if head in _STAMPS:
            continue
        if head == "id":
            if len(segments) > 1 or not isinstance(value, str) or value.strip() != rid:
                raise invalid("id", "a record's id cannot be changed")
            continue
        changes[key] = clean_json(value, key)
    return changes
