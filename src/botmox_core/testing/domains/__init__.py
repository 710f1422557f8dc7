"""Conformance suite for the domain data repositories (:mod:`botmox_core.ports.domains`).

A backend that declares ``capabilities.domains`` subclasses :class:`DomainRepositoryConformance`
with the same ``backend`` fixture as :class:`~botmox_core.testing.RepositoryConformance`::

    class TestMyBackendDomains(DomainRepositoryConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            backend = MyBackend(tmp_path / "db")
            yield backend
            backend.close()

``second_backend`` (another instance on the same store) enables the cross-instance lost-update
tests. Capabilities are read from the backend's declaration as in the repository kit: without
``domains`` every test skips with the reason; the all-or-nothing tests need ``rollback``.

One mixin per repository, all generic over the backend type: :class:`RecordConformance`
(create, read, modify incl. concurrency, delete, tenant isolation, scan order),
:class:`ListingConformance` (``list`` against the reference
:func:`~botmox_core.domain.listing.apply_query` over generated collections with every query
parameter and edge values), :class:`BotHistoryConformance` (lifecycle log, archive, a ban in one
unit), :class:`AggregateConformance` and :class:`SettingsConformance` (modify atomicity,
concurrent writers).
"""

from __future__ import annotations

from typing import TypeVar

from botmox_core.ports import DataBackend
from botmox_core.testing.domains._base import DOMAIN_REPOSITORIES, DomainConformanceBase
from botmox_core.testing.domains._support import (
    EDGE_NUMBERS,
    EDGE_STRINGS,
    T0_MS,
    check_same_json,
    generated_records,
    make_archive_entry,
    make_log_entry,
    make_record,
)
from botmox_core.testing.domains.aggregates import AggregateConformance
from botmox_core.testing.domains.history import BotHistoryConformance
from botmox_core.testing.domains.listing import ListingConformance
from botmox_core.testing.domains.records import RecordConformance
from botmox_core.testing.domains.settings import SettingsConformance

__all__ = [
    "DOMAIN_REPOSITORIES",
    "EDGE_NUMBERS",
    "EDGE_STRINGS",
    "T0_MS",
    "AggregateConformance",
    "BotHistoryConformance",
    "DomainConformanceBase",
    "DomainRepositoryConformance",
    "ListingConformance",
    "RecordConformance",
    "SettingsConformance",
    "check_same_json",
    "generated_records",
    "make_archive_entry",
    "make_log_entry",
    "make_record",
]

B = TypeVar("B", bound=DataBackend)


class DomainRepositoryConformance(
    RecordConformance[B],
    ListingConformance[B],
    BotHistoryConformance[B],
    AggregateConformance[B],
    SettingsConformance[B],
):
    """Pytest mixin: the behaviour of every backend that declares ``capabilities.domains``
    (every domain repository's mixin)."""
