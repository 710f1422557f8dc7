"""The domain repositories of the Supabase backend: record collections, the bot lifecycle log and
ban archive, finance aggregates and the settings tree (migrations ``20261201000000`` and
``20261204000000`` to ``20261206000000``), one module per concern, all re-exported here:

* :mod:`botmox_supabase.domain_storage`: the tables, the JSON written to ``jsonb`` columns;
* :mod:`botmox_supabase.domain_records`: the record collections (get, add, modify, delete,
  ``put_many``, list, scan);
* :mod:`botmox_supabase.domain_listing`: how a list filters, orders, counts and pages in SQL;
* :mod:`botmox_supabase.domain_history`: the bot lifecycle log and ban archive;
* :mod:`botmox_supabase.domain_settings`: finance aggregates and the settings tree.

Every statement names the tenant, like the other repositories of this backend.
"""

from __future__ import annotations

from botmox_supabase.domain_history import PostgresBotHistoryRepository
from botmox_supabase.domain_listing import (
    FEW_MATCHES_FACTOR,
    INDEXED_SORTS,
    SEARCH_INDEX_MAX_BYTES,
    like_pattern,
    list_statement,
)
from botmox_supabase.domain_records import PostgresRecordRepository
from botmox_supabase.domain_settings import PostgresAggregateRepository, PostgresSettingsRepository
from botmox_supabase.domain_storage import COLLECTION_TABLES, DOMAIN_TABLES, dump_json

__all__ = [
    "COLLECTION_TABLES",
    "DOMAIN_TABLES",
    "FEW_MATCHES_FACTOR",
    "INDEXED_SORTS",
    "SEARCH_INDEX_MAX_BYTES",
    "PostgresAggregateRepository",
    "PostgresBotHistoryRepository",
    "PostgresRecordRepository",
    "PostgresSettingsRepository",
    "dump_json",
    "like_pattern",
    "list_statement",
]
