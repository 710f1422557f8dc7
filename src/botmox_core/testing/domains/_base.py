"""The base every domain conformance mixin shares: the fixtures and capability reading of the
repository kit, the domain capability, and unit-of-work helpers typed for domain units."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import pytest

from botmox_core.ports import DataBackend
from botmox_core.ports.domains import DomainUnitOfWork
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


def _domain(uow: Any) -> DomainUnitOfWork:
    missing = [name for name in DOMAIN_REPOSITORIES if not hasattr(uow, name)]
    if missing:
        raise AssertionError(f"the unit of work lacks the domain repositories {missing}")
    unit: DomainUnitOfWork = uow
    return unit
