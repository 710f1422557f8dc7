"""Where a tenant's domain data lives in RTDB: the seed's paths (:data:`COLLECTION_PATHS`,
:data:`AGGREGATE_PATHS`, ...) below the tenant's base (:class:`DomainLayout`)."""

from __future__ import annotations

import attrs

from botmox_core.domain.records import AggregateKey, Collection
from botmox_rtdb.layout import TENANTS, checked_key

__all__ = [
    "AGGREGATE_PATHS",
    "ARCHIVE",
    "COLLECTION_PATHS",
    "DOMAIN_ROOTS",
    "LIFECYCLE_LOG",
    "SETTINGS",
    "DomainLayout",
]

COLLECTION_PATHS: dict[Collection, str] = {
    Collection.LICENSES: "resources/licenses",
    Collection.PROXIES: "resources/proxies",
    Collection.SUBSCRIPTIONS: "resources/subscriptions",
    Collection.NOTES: "workspace/notes_v2",
    Collection.CALENDAR: "workspace/calendar_events",
    Collection.KANBAN: "workspace/kanban_tasks",
    Collection.BOTS: "bots",
    Collection.FINANCE_OPERATIONS: "finance/operations",
}
AGGREGATE_PATHS: dict[AggregateKey, str] = {
    AggregateKey.DAILY_STATS: "finance/daily_stats",
    AggregateKey.GOLD_PRICE_HISTORY: "finance/gold_price_history",
}
LIFECYCLE_LOG = "logs/bot_lifecycle"
ARCHIVE = "archive"
SETTINGS = "settings"
#: The first keys of every domain path (below a tenant's base).
DOMAIN_ROOTS = frozenset(
    {"bots", "resources", "workspace", "finance", "settings", "logs", "archive"}
)


@attrs.frozen
class DomainLayout:
    """Where a tenant's domain data lives: the root for ``legacy_tenant``, else
    ``tenants/{tenant}``."""

    legacy_tenant: str | None = None

    def base(self, tenant_id: str) -> str:
        """The tenant's base path (``""``: the root)."""
        checked_key(tenant_id, "tenant_id")
        return "" if tenant_id == self.legacy_tenant else f"{TENANTS}/{tenant_id}"

    def path(self, tenant_id: str, relative: str, *keys: str) -> str:
        """``relative`` (and ``keys``, which must already be checked) below the tenant's base."""
        return "/".join(part for part in (self.base(tenant_id), relative, *keys) if part)
