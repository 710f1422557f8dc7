"""Record collection routes: ``/resources/{kind}``, ``/workspace/{kind}``, ``/bots`` and
``/finance/operations`` (list, create, get, patch, delete), plus the finance aggregates. Thin:
the services check everything.

Handlers sharing a path live in one controller: Litestar 2.25 answers 500 for a second
thread-run function handler registered on the same path (a coroutine never awaited)."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from botmox_core.domain.records import AggregateKey, Collection
from botmox_core.services.domains import collection_for
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok

Body = JSONBody[Any]
_ONE = "/{record_id:str}"


def _list(
    core: Core,
    principal: Caller,
    collection: Collection,
    page: str | None,
    limit: str | None,
    sort: str | None,
    order: str | None,
    q: str | None,
) -> Response[Any]:
    found = core.domains.records.list(
        principal, collection, page=page, limit=limit, sort=sort, order=order, q=q
    )
    return ok(found.data, meta=found.meta)


class _KindController(Controller):
    """``/{area}/{kind}`` collections (``area`` set by the subclasses)."""

    area = ""

    @get("/", sync_to_thread=True)
    def list_entities(
        self,
        kind: FromPath[str],
        core: Core,
        principal: Caller,
        page: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        order: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """A page of the kind's entities (``page, limit, sort, order, q``)."""
        collection = collection_for(self.area, kind)
        return _list(core, principal, collection, page, limit, sort, order, q)

    @post("/", sync_to_thread=True)
    def create_entity(
        self, kind: FromPath[str], core: Core, principal: Caller, data: Body = None
    ) -> Response[Any]:
        """Create an entity (201); 409 ``DUPLICATE`` for a taken id."""
        collection = collection_for(self.area, kind)
        return ok(core.domains.records.create(principal, collection, data), 201)

    @get(_ONE, sync_to_thread=True)
    def get_entity(
        self, kind: FromPath[str], record_id: FromPath[str], core: Core, principal: Caller
    ) -> Response[Any]:
        """One entity; 404."""
        collection = collection_for(self.area, kind)
        return ok(core.domains.records.get(principal, collection, record_id))

    @patch(_ONE, sync_to_thread=True)
    def patch_entity(
        self,
        kind: FromPath[str],
        record_id: FromPath[str],
        core: Core,
        principal: Caller,
        data: Body = None,
    ) -> Response[Any]:
        """Merge a patch (shallow, ``a/b`` deep keys, ``null`` deletes): the entity; 404."""
        collection = collection_for(self.area, kind)
        return ok(core.domains.records.patch(principal, collection, record_id, data))

    @delete(_ONE, sync_to_thread=True, status_code=200)
    def delete_entity(
        self, kind: FromPath[str], record_id: FromPath[str], core: Core, principal: Caller
    ) -> Response[Any]:
        """Delete an entity: ``{id, deleted: true}``; 404."""
        collection = collection_for(self.area, kind)
        return ok(core.domains.records.delete(principal, collection, record_id))


class ResourcesController(_KindController):
    """``/resources/{kind}``: licenses, proxies, subscriptions."""

    path = "/api/v1/resources/{kind:str}"
    area = "resources"
    tags = ("resources",)


class WorkspaceController(_KindController):
    """``/workspace/{kind}``: notes, calendar, kanban."""

    path = "/api/v1/workspace/{kind:str}"
    area = "workspace"
    tags = ("workspace",)


class _CollectionController(Controller):
    """One fixed collection (``collection`` set by the subclasses)."""

    collection = Collection.BOTS

    @get("/", sync_to_thread=True)
    def list_entities(
        self,
        core: Core,
        principal: Caller,
        page: FromQuery[str | None] = None,
        limit: FromQuery[str | None] = None,
        sort: FromQuery[str | None] = None,
        order: FromQuery[str | None] = None,
        q: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """A page of the collection (``page, limit, sort, order, q``)."""
        return _list(core, principal, self.collection, page, limit, sort, order, q)

    @post("/", sync_to_thread=True)
    def create_entity(self, core: Core, principal: Caller, data: Body = None) -> Response[Any]:
        """Create an entity (201); 409 ``DUPLICATE`` for a taken id."""
        return ok(core.domains.records.create(principal, self.collection, data), 201)

    @get(_ONE, sync_to_thread=True)
    def get_entity(self, record_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
        """One entity; 404."""
        return ok(core.domains.records.get(principal, self.collection, record_id))

    @patch(_ONE, sync_to_thread=True)
    def patch_entity(
        self, record_id: FromPath[str], core: Core, principal: Caller, data: Body = None
    ) -> Response[Any]:
        """Merge a patch: the entity; 404."""
        return ok(core.domains.records.patch(principal, self.collection, record_id, data))

    @delete(_ONE, sync_to_thread=True, status_code=200)
    def delete_entity(
        self, record_id: FromPath[str], core: Core, principal: Caller
    ) -> Response[Any]:
        """Delete an entity: ``{id, deleted: true}``; 404."""
        return ok(core.domains.records.delete(principal, self.collection, record_id))


class FinanceOperationsController(_CollectionController):
    """``/finance/operations``."""

    path = "/api/v1/finance/operations"
    collection = Collection.FINANCE_OPERATIONS
    tags = ("finance",)


class FinanceAggregatesController(Controller):
    """``/finance/daily-stats`` and ``/finance/gold-price-history`` (read-only)."""

    path = "/api/v1/finance"
    tags = ("finance",)

    @get("/daily-stats", sync_to_thread=True)
    def daily_stats(self, core: Core, principal: Caller) -> Response[Any]:
        """The daily stats by date (``{}`` when none)."""
        return ok(core.domains.finance.aggregate(principal, AggregateKey.DAILY_STATS))

    @get("/gold-price-history", sync_to_thread=True)
    def gold_price_history(self, core: Core, principal: Caller) -> Response[Any]:
        """The gold price history (``{}`` when none; deprecated)."""
        return ok(core.domains.finance.aggregate(principal, AggregateKey.GOLD_PRICE_HISTORY))
