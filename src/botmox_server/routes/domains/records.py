"""Record collection routes: ``/resources/{kind}``, ``/workspace/{kind}``, ``/bots`` and
``/finance/operations`` (list, create, get, patch, delete). Thin: the services check
everything."""

from __future__ import annotations

from typing import Any

from litestar import Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from botmox_core.domain.records import Collection
from botmox_core.services.domains import RecordPage, collection_for
from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok

Body = JSONBody[Any]


def _page(found: RecordPage) -> Response[Any]:
    return ok(found.data, meta=found.meta)


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
    return _page(
        core.domains.records.list(
            principal, collection, page=page, limit=limit, sort=sort, order=order, q=q
        )
    )


# -- /resources/{kind} and /workspace/{kind} ----------------------------------------------------


@get("/api/v1/resources/{kind:str}", sync_to_thread=True, tags=["resources"])
def list_resources(
    kind: FromPath[str],
    core: Core,
    principal: Caller,
    page: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    sort: FromQuery[str | None] = None,
    order: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
) -> Response[Any]:
    """A page of licences, proxies or subscriptions (``page, limit, sort, order, q``)."""
    collection = collection_for("resources", kind)
    return _list(core, principal, collection, page, limit, sort, order, q)


@post("/api/v1/resources/{kind:str}", sync_to_thread=True, tags=["resources"])
def create_resource(
    kind: FromPath[str], core: Core, principal: Caller, data: Body = None
) -> Response[Any]:
    """Create a licence, proxy or subscription (201); 409 ``DUPLICATE`` for a taken id."""
    collection = collection_for("resources", kind)
    return ok(core.domains.records.create(principal, collection, data), 201)


@get("/api/v1/resources/{kind:str}/{record_id:str}", sync_to_thread=True, tags=["resources"])
def get_resource(
    kind: FromPath[str], record_id: FromPath[str], core: Core, principal: Caller
) -> Response[Any]:
    """One resource; 404 ``Resource not found``."""
    collection = collection_for("resources", kind)
    return ok(core.domains.records.get(principal, collection, record_id))


@patch("/api/v1/resources/{kind:str}/{record_id:str}", sync_to_thread=True, tags=["resources"])
def patch_resource(
    kind: FromPath[str], record_id: FromPath[str], core: Core, principal: Caller, data: Body = None
) -> Response[Any]:
    """Merge a patch into a resource (shallow, ``a/b`` deep keys, ``null`` deletes); 404."""
    collection = collection_for("resources", kind)
    return ok(core.domains.records.patch(principal, collection, record_id, data))


@delete(
    "/api/v1/resources/{kind:str}/{record_id:str}",
    sync_to_thread=True,
    status_code=200,
    tags=["resources"],
)
def delete_resource(
    kind: FromPath[str], record_id: FromPath[str], core: Core, principal: Caller
) -> Response[Any]:
    """Delete a resource: ``{id, deleted: true}``; 404."""
    collection = collection_for("resources", kind)
    return ok(core.domains.records.delete(principal, collection, record_id))


@get("/api/v1/workspace/{kind:str}", sync_to_thread=True, tags=["workspace"])
def list_workspace(
    kind: FromPath[str],
    core: Core,
    principal: Caller,
    page: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    sort: FromQuery[str | None] = None,
    order: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
) -> Response[Any]:
    """A page of notes, calendar events or kanban tasks."""
    collection = collection_for("workspace", kind)
    return _list(core, principal, collection, page, limit, sort, order, q)


@post("/api/v1/workspace/{kind:str}", sync_to_thread=True, tags=["workspace"])
def create_workspace(
    kind: FromPath[str], core: Core, principal: Caller, data: Body = None
) -> Response[Any]:
    """Create a note, calendar event or kanban task (201)."""
    collection = collection_for("workspace", kind)
    return ok(core.domains.records.create(principal, collection, data), 201)


@get("/api/v1/workspace/{kind:str}/{record_id:str}", sync_to_thread=True, tags=["workspace"])
def get_workspace(
    kind: FromPath[str], record_id: FromPath[str], core: Core, principal: Caller
) -> Response[Any]:
    """One workspace entity; 404 ``Workspace entity not found``."""
    collection = collection_for("workspace", kind)
    return ok(core.domains.records.get(principal, collection, record_id))


@patch("/api/v1/workspace/{kind:str}/{record_id:str}", sync_to_thread=True, tags=["workspace"])
def patch_workspace(
    kind: FromPath[str], record_id: FromPath[str], core: Core, principal: Caller, data: Body = None
) -> Response[Any]:
    """Merge a patch into a workspace entity; 404."""
    collection = collection_for("workspace", kind)
    return ok(core.domains.records.patch(principal, collection, record_id, data))


@delete(
    "/api/v1/workspace/{kind:str}/{record_id:str}",
    sync_to_thread=True,
    status_code=200,
    tags=["workspace"],
)
def delete_workspace(
    kind: FromPath[str], record_id: FromPath[str], core: Core, principal: Caller
) -> Response[Any]:
    """Delete a workspace entity: ``{id, deleted: true}``; 404."""
    collection = collection_for("workspace", kind)
    return ok(core.domains.records.delete(principal, collection, record_id))


# -- /bots and /finance/operations -------------------------------------------------------------


@get("/api/v1/bots", sync_to_thread=True, tags=["bots"])
def list_bots(
    core: Core,
    principal: Caller,
    page: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    sort: FromQuery[str | None] = None,
    order: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
) -> Response[Any]:
    """A page of the tenant's bots."""
    return _list(core, principal, Collection.BOTS, page, limit, sort, order, q)


@post("/api/v1/bots", sync_to_thread=True, tags=["bots"])
def create_bot(core: Core, principal: Caller, data: Body = None) -> Response[Any]:
    """Create a bot (201)."""
    return ok(core.domains.records.create(principal, Collection.BOTS, data), 201)


@get("/api/v1/bots/{record_id:str}", sync_to_thread=True, tags=["bots"])
def get_bot(record_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
    """One bot; 404 ``Bot not found``."""
    return ok(core.domains.records.get(principal, Collection.BOTS, record_id))


@patch("/api/v1/bots/{record_id:str}", sync_to_thread=True, tags=["bots"])
def patch_bot(
    record_id: FromPath[str], core: Core, principal: Caller, data: Body = None
) -> Response[Any]:
    """Merge a patch into a bot; 404."""
    return ok(core.domains.records.patch(principal, Collection.BOTS, record_id, data))


@delete("/api/v1/bots/{record_id:str}", sync_to_thread=True, status_code=200, tags=["bots"])
def delete_bot(record_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
    """Delete a bot (its lifecycle log and archive stay): ``{id, deleted: true}``; 404."""
    return ok(core.domains.records.delete(principal, Collection.BOTS, record_id))


@get("/api/v1/finance/operations", sync_to_thread=True, tags=["finance"])
def list_finance_operations(
    core: Core,
    principal: Caller,
    page: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    sort: FromQuery[str | None] = None,
    order: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
) -> Response[Any]:
    """A page of finance operations."""
    return _list(core, principal, Collection.FINANCE_OPERATIONS, page, limit, sort, order, q)


@post("/api/v1/finance/operations", sync_to_thread=True, tags=["finance"])
def create_finance_operation(core: Core, principal: Caller, data: Body = None) -> Response[Any]:
    """Record a finance operation (201; ``type, category, amount, currency, date`` required)."""
    return ok(core.domains.records.create(principal, Collection.FINANCE_OPERATIONS, data), 201)


@get("/api/v1/finance/operations/{record_id:str}", sync_to_thread=True, tags=["finance"])
def get_finance_operation(record_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
    """One finance operation; 404 ``Finance operation not found``."""
    return ok(core.domains.records.get(principal, Collection.FINANCE_OPERATIONS, record_id))


@patch("/api/v1/finance/operations/{record_id:str}", sync_to_thread=True, tags=["finance"])
def patch_finance_operation(
    record_id: FromPath[str], core: Core, principal: Caller, data: Body = None
) -> Response[Any]:
    """Merge a patch into a finance operation; 404."""
    return ok(core.domains.records.patch(principal, Collection.FINANCE_OPERATIONS, record_id, data))


@delete(
    "/api/v1/finance/operations/{record_id:str}",
    sync_to_thread=True,
    status_code=200,
    tags=["finance"],
)
def delete_finance_operation(
    record_id: FromPath[str], core: Core, principal: Caller
) -> Response[Any]:
    """Delete a finance operation: ``{id, deleted: true}``; 404."""
    return ok(core.domains.records.delete(principal, Collection.FINANCE_OPERATIONS, record_id))


ROUTES: list[Any] = [
    list_resources,
    create_resource,
    get_resource,
    patch_resource,
    delete_resource,
    list_workspace,
    create_workspace,
    get_workspace,
    patch_workspace,
    delete_workspace,
    list_bots,
    create_bot,
    get_bot,
    patch_bot,
    delete_bot,
    list_finance_operations,
    create_finance_operation,
    get_finance_operation,
    patch_finance_operation,
    delete_finance_operation,
]
