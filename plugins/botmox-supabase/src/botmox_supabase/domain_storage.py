"""How the Supabase backend stores domain data: the tables (migration ``20261201000000``), the
JSON text written to their ``jsonb`` columns, and the statement runner the domain repositories
share (:mod:`botmox_supabase.domain_repositories` lists them).

Every statement names the tenant, like the other repositories of this backend.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from botmox_core.domain.records import Collection
from botmox_core.errors import BadRequestError
from botmox_supabase.error_mapping import map_database_errors

__all__ = [
    "COLLECTION_TABLES",
    "DOMAIN_TABLES",
    "Connection",
    "DomainRepository",
    "SEARCH_TABLE",
    "collection_table",
    "dump_json",
    "json_object",
    "json_text",
    "jsonb_param",
]

#: The table of each collection (schema ``botmox``).
COLLECTION_TABLES: Mapping[Collection, str] = {
    Collection.LICENSES: "resources_licenses",
    Collection.PROXIES: "resources_proxies",
    Collection.SUBSCRIPTIONS: "resources_subscriptions",
    Collection.NOTES: "workspace_notes",
    Collection.CALENDAR: "workspace_calendar_events",
    Collection.KANBAN: "workspace_kanban_tasks",
    Collection.BOTS: "bots",
    Collection.FINANCE_OPERATIONS: "finance_operations",
}

#: The search text of every record of the collections, one narrow table (migration
#: ``20261205000000``): ``(tenant_id, collection, id, search)``, ``collection`` the collection's
#: table name. Written only by triggers on the collection tables, in each write's transaction.
SEARCH_TABLE = "domain_search"

#: Every table of the domain data.
DOMAIN_TABLES: tuple[str, ...] = (
    *COLLECTION_TABLES.values(),
    SEARCH_TABLE,
    "bot_lifecycle_log",
    "bot_archive",
    "finance_aggregates",
    "app_settings",
)

#: The unit of work's connection, as a callable: used after its unit ended, it raises.
Connection = Callable[[], psycopg.Connection[Any]]
Params = Sequence[Any] | Mapping[str, Any]


def collection_table(collection: Collection) -> sql.Identifier:
    """The qualified table of ``collection``."""
    return sql.Identifier("botmox", COLLECTION_TABLES[Collection(collection)])


# -- JSON -------------------------------------------------------------------------------------


def _has_big_float(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value) and "e+" in repr(value)
    if isinstance(value, dict):
        return any(_has_big_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_big_float(item) for item in value)
    return False


def dump_json(value: Any) -> str:
    """``value`` as JSON text for a ``jsonb`` column, keeping every number's type.

    ``jsonb`` stores numbers as ``numeric`` and prints them without an exponent, so a float
    Python writes as ``1e+16`` would come back as the integer ``10000000000000000``. Such floats
    are written in full with a ``.0`` (``10000000000000000.0``), which ``numeric`` keeps and
    reads back as the same float. Every other value is ``json.dumps``' text.
    """
    if not _has_big_float(value):
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    marker = f"botmox-float-{secrets.token_hex(8)}-"
    floats: list[str] = []

    def swap(item: Any) -> Any:
        if isinstance(item, float) and math.isfinite(item) and "e+" in repr(item):
            floats.append(f"{int(item)}.0")
            return f"{marker}{len(floats) - 1}"
        if isinstance(item, dict):
            return {key: swap(child) for key, child in item.items()}
        if isinstance(item, list):
            return [swap(child) for child in item]
        return item

    text = json.dumps(swap(value), ensure_ascii=False, allow_nan=False)
    for index in range(len(floats) - 1, -1, -1):  # marker-10 before marker-1
        text = text.replace(json.dumps(f"{marker}{index}"), floats[index])
    return text


def json_text(value: Any) -> str:
    """:func:`dump_json` of ``value``; what JSON cannot hold (NaN, infinities) is a 400."""
    try:
        return dump_json(value)
    except (ValueError, TypeError) as exc:
        raise BadRequestError(f"the value cannot be stored as JSON: {exc}") from exc


def jsonb_param(value: Any) -> Jsonb:
    """``value`` for a ``jsonb`` parameter (:func:`json_text`)."""
    text = json_text(value)
    return Jsonb(value, dumps=lambda _value: text)


def json_object(value: Any, what: str) -> dict[str, Any]:
    """``value`` read from a ``jsonb`` column that must hold an object."""
    if not isinstance(value, dict):
        raise BadRequestError(f"{what} must be a JSON object")
    return value


# -- plumbing ---------------------------------------------------------------------------------


class DomainRepository:
    """Base of the domain repositories: statements on the unit of work's connection, database
    errors mapped to core errors (naming :attr:`_action`)."""

    _action = "query"

    def __init__(self, connection: Connection) -> None:
        # A callable, not the connection: used after its unit of work ended, it raises.
        self._connection = connection

    def _rows(self, query: str | sql.Composed, params: Params = ()) -> list[tuple[Any, ...]]:
        with (
            map_database_errors(self._action),
            self._connection().cursor(row_factory=tuple_row) as cur,
        ):
            cur.execute(query, params)
            return cur.fetchall() if cur.description else []
