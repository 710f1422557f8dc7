"""The base every domain conformance mixin shares: the fixtures and capability reading of the
repository kit, the domain capability, and unit-of-work helpers typed for domain units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import pytest

from botmox_core.domain.listing import ListQuery
from botmox_core.domain.records import AggregateKey, Collection
from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainUnitOfWork
from botmox_core.ports.repositories import read_unit_of_work
from botmox_core.testing.domains._support import make_record
from botmox_core.testing.repository._base import RepositoryConformanceBase

__all__ = ["DomainConformanceBase", "DOMAIN_REPOSITORIES"]

B = TypeVar("B", bound=DataBackend)
T = TypeVar("T")

#: What a domain unit of work carries.
DOMAIN_REPOSITORIES = ("records", "bot_history", "aggregates", "settings")


class DomainConformanceBase(RepositoryConformanceBase[B]):
    """Pytest mixin base of the domain suites (fixtures: see
    :class:`~botmox_core.testing.repository._base.RepositoryConformanceBase`).

    Every test needs the backend to declare ``capabilities.domains`` (flag
    ``supports_domains``); without it the domain tests skip with the reason. The atomicity
    tests of several writes in one unit also need ``rollback`` (flag ``supports_rollback``).

    Tunables:
        concurrency_threads, modifies_per_thread: size of the lost-update tests.
        listing_records: how many generated records the listing comparison uses.
    """

    supports_domains: ClassVar[bool | None] = None
    capability_of_flag: ClassVar[dict[str, str]] = {
        **RepositoryConformanceBase.capability_of_flag,
        "supports_domains": "domains",
    }
    listing_records: ClassVar[int] = 240

    @pytest.fixture(autouse=True)
    def _needs_domains(self, _fixture_request: None) -> None:
        self._require("supports_domains", "the domain repositories are not implemented")

    @staticmethod
    def write_unit(backend: DataBackend, action: Callable[[DomainUnitOfWork], T]) -> T:
        """Run ``action`` in a new domain unit of work and commit it."""
        with backend.unit_of_work() as uow:
            result = action(_domain(uow))
            uow.commit()
        return result

    @staticmethod
    def read_unit(backend: DataBackend, action: Callable[[DomainUnitOfWork], T]) -> T:
        """Run ``action`` in a new domain unit of work left without committing."""
        with backend.unit_of_work() as uow:
            return action(_domain(uow))

    def test_declares_domains_and_units_carry_them(self, backend: B) -> None:
        """A backend that declares ``domains`` hands out units with all four repositories."""
        with backend.unit_of_work() as uow:
            missing = [name for name in DOMAIN_REPOSITORIES if not hasattr(uow, name)]
        assert not missing, f"the backend declares domains=True but its units lack {missing}"

    def test_read_units_read_what_was_committed(self, backend: B, tenant: str) -> None:
        """The services read through the backend's read unit
        (:func:`~botmox_core.ports.repositories.read_unit_of_work`): it carries the four
        repositories and sees every unit committed before it began."""

        def write(uow: DomainUnitOfWork) -> None:
            uow.records.add(make_record(tenant, record_id="read-a", name="alpha"))
            uow.records.add(make_record(tenant, record_id="read-b", name="beta"))
            uow.aggregates.put(tenant, AggregateKey.DAILY_STATS, {"2026-12-01": {"n": 1}})
            uow.settings.modify(tenant, lambda tree: {**tree, "ui": {"theme": "dark"}})

        self.write_unit(backend, write)
        with read_unit_of_work(backend) as unit:
            uow = _domain(unit)
            page = uow.records.list(tenant, Collection.BOTS, ListQuery(q="alpha"))
            got = uow.records.get(tenant, Collection.BOTS, "read-b")
            daily = uow.aggregates.get(tenant, AggregateKey.DAILY_STATS)
            tree = uow.settings.get(tenant)
        assert ([r.id for r in page.records], page.total) == (["read-a"], 1)
        assert got is not None and got.data["name"] == "beta"
        assert daily == {"2026-12-01": {"n": 1}}
        assert tree is not None and tree["ui"] == {"theme": "dark"}


def _domain(uow: Any) -> DomainUnitOfWork:
    missing = [name for name in DOMAIN_REPOSITORIES if not hasattr(uow, name)]
    if missing:
        raise AssertionError(f"the unit of work lacks the domain repositories {missing}")
    unit: DomainUnitOfWork = uow
    return unit
