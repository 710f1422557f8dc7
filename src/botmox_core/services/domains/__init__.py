"""Domain data services: the farm's resources, workspace, bots (with their lifecycle), finance
and settings, per tenant (``/api/v1/resources``, ``/workspace``, ``/bots``, ``/finance``,
``/settings``; see docs/domains.md).

- :class:`RecordService`: list/get/create/patch/delete of the eight record collections;
- :class:`BotLifecycleService`: lifecycle reads, transition, ban, unban;
- :class:`FinanceService`: the finance aggregates;
- :class:`SettingsService`: the settings tree by path.

Each raises 501 ``DOMAINS_NOT_SUPPORTED`` when the data backend declares no domain data.
"""

from __future__ import annotations

import attrs

from botmox_core.ports import DataBackend
from botmox_core.services.domains.bots import BotLifecycleService
from botmox_core.services.domains.finance import FinanceService
from botmox_core.services.domains.records import RecordPage, RecordService, collection_for
from botmox_core.services.domains.settings import SettingsService
from botmox_core.services.principal import Clock, utcnow

__all__ = [
    "BotLifecycleService",
    "DomainServices",
    "FinanceService",
    "RecordPage",
    "RecordService",
    "SettingsService",
    "collection_for",
]


@attrs.frozen
class DomainServices:
    """The domain services of one process (``App.domains``).

    Attributes:
        records: the record collections.
        bots: bot lifecycle.
        finance: finance aggregates.
        settings: the settings tree.
    """

    records: RecordService
    bots: BotLifecycleService
    finance: FinanceService
    settings: SettingsService

    @classmethod
    def build(cls, backend: DataBackend, clock: Clock = utcnow) -> DomainServices:
        """All of them on ``backend`` (they answer 501 when it has no domain data)."""
        return cls(
            RecordService(backend, clock),
            BotLifecycleService(backend, clock),
            FinanceService(backend, clock),
            SettingsService(backend, clock),
        )
