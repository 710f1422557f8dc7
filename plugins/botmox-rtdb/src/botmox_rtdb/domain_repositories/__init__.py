"""The domain repositories (records, bot history, finance aggregates, settings) on RTDB.

Layout — the seed's paths, below a tenant's base (:class:`DomainLayout`)::

    bots/{id}                          resources/{licenses,proxies,subscriptions}/{id}
    workspace/notes_v2/{id}            workspace/calendar_events/{id}
    workspace/kanban_tasks/{id}        finance/operations/{id}
    finance/daily_stats                finance/gold_price_history
    settings                           (the whole settings tree)
    logs/bot_lifecycle/{id}            archive/{id}

The base is the database root for the one configured *legacy tenant* (option ``legacy_tenant``),
so an existing Bot-Mox database is used as it is, and ``tenants/{tenant}`` for every other
tenant (beside the runner paths of :mod:`botmox_rtdb.layout`, which use other names). Values go
through :mod:`botmox_rtdb.domain_codec`, so what RTDB would change (nulls, empty objects and
arrays, big integers, ``1.0``) reads back exactly.

Writes are staged in the unit of work and applied at commit:

* ``add``: a conditional create (ETag transaction) that refuses an existing id;
* ``delete``, ``records.put_many`` (create or replace, the bulk write of migration and import),
  ``append_log``, ``append_archive``, ``aggregates.put``: plain writes, applied in the unit's
  one multi-path ``update()`` (atomic), so a batch of any size is one request at commit;
* ``records.modify`` and ``settings.modify``: read now with the location's ETag, applied at
  commit by compare-and-set. A unit whose only writes are such modifies writes each with
  ``set_if_unchanged``; on a conflict the change runs again on the value that won (no update is
  lost). A unit that also has other writes (a ban: bot, archive entry, log entry) first *locks*
  each modified location by compare-and-set (:data:`~botmox_rtdb.domain_codec.LOCK_KEY`,
  refused with 409 ``CONFLICT`` if the value changed since it was read), then writes the new
  values together with every other write in the one multi-path update — all or nothing — which
  also removes the locks. Modifies wait for a live lock (at most :data:`LOCK_TTL_MS`); a lock
  left by a crashed server expires.

Listing reads the tenant's collection and applies
:func:`~botmox_core.domain.listing.apply_query` in memory (RTDB cannot filter by substring or
order by the type ranks on the server); without ``q`` and ``sort`` only the keys are read
(shallow) and the page's records are fetched by key ranges.
"""

from __future__ import annotations

from botmox_rtdb.domain_repositories.aggregates import RtdbAggregateRepository
from botmox_rtdb.domain_repositories.history import RtdbBotHistoryRepository
from botmox_rtdb.domain_repositories.paths import (
    AGGREGATE_PATHS,
    ARCHIVE,
    COLLECTION_PATHS,
    DOMAIN_ROOTS,
    LIFECYCLE_LOG,
    SETTINGS,
    DomainLayout,
)
from botmox_rtdb.domain_repositories.records import RtdbRecordRepository
from botmox_rtdb.domain_repositories.settings import RtdbSettingsRepository
from botmox_rtdb.domain_repositories.writes import LOCK_TTL_MS, DomainWrites

__all__ = [
    "AGGREGATE_PATHS",
    "ARCHIVE",
    "COLLECTION_PATHS",
    "DOMAIN_ROOTS",
    "LIFECYCLE_LOG",
    "LOCK_TTL_MS",
    "SETTINGS",
    "DomainLayout",
    "DomainWrites",
    "RtdbAggregateRepository",
    "RtdbBotHistoryRepository",
    "RtdbRecordRepository",
    "RtdbSettingsRepository",
]
