"""The base every repository conformance mixin shares: the ``backend`` fixtures, capability
flags and the unit-of-work helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar, Generic, TypeVar

import pytest

from botmox_core.models import (
    DownloadAuditEntry,
)
from botmox_core.ports import DataBackend, UnitOfWork
from botmox_core.testing.repository._support import _uid

B = TypeVar("B", bound=DataBackend)
T = TypeVar("T")

__all__ = ["RepositoryConformanceBase"]


class RepositoryConformanceBase(Generic[B]):
    """Pytest mixin: the behaviour every :class:`~botmox_core.ports.DataBackend` must show.

    Fixtures to provide:
        backend: yields a fresh, empty backend and closes it afterwards (required).
        second_backend: another instance on the same store as ``backend`` (optional; tests
            that need it skip without it).

    Capability flags (override as class attributes):
        supports_rollback: leaving a unit without ``commit()`` discards its writes.
        supports_multi_record_transactions: a unit's writes to several records commit
            together, and a unit reads its own uncommitted writes.
        rejects_invalid_release_values: ``releases.add`` refuses a sha256 that is not 64
            lower-case hex digits and a ``size_bytes`` below 1 with :class:`BadRequestError`.
        preserves_microseconds: timestamps keep microseconds (milliseconds are always
            required).
        concurrency_threads, modifies_per_thread: size of the lost-update test.
    """

    supports_rollback: ClassVar[bool] = True
    supports_multi_record_transactions: ClassVar[bool] = True
    rejects_invalid_release_values: ClassVar[bool] = True
    preserves_microseconds: ClassVar[bool] = True
    concurrency_threads: ClassVar[int] = 4
    modifies_per_thread: ClassVar[int] = 10

    # -- fixtures --------------------------------------------------------------------------

    @pytest.fixture
    def backend(self) -> Iterator[B]:
        """Override: yield a fresh, empty backend and close it afterwards."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `backend` fixture yielding a fresh, empty "
            "DataBackend, for example:\n\n"
            "    @pytest.fixture\n"
            "    def backend(self, tmp_path):\n"
            "        backend = MyBackend(tmp_path / 'db')\n"
            "        yield backend\n"
            "        backend.close()\n"
        )

    @pytest.fixture
    def second_backend(self, backend: DataBackend) -> Iterator[DataBackend]:
        """Override (optional): yield another instance on the same store as ``backend``."""
        pytest.skip(
            f"{type(self).__name__} has no `second_backend` fixture (a second instance on the "
            "same store), so cross-instance checks are skipped"
        )

    @pytest.fixture
    def tenant(self) -> str:
        return _uid("tenant_a")

    @pytest.fixture
    def other_tenant(self) -> str:
        return _uid("tenant_b")

    # -- helpers -----------------------------------------------------------------------------

    @staticmethod
    def committed(backend: DataBackend, action: Callable[[UnitOfWork], T]) -> T:
        """Run ``action`` in a new unit of work and commit it."""
        with backend.unit_of_work() as uow:
            result = action(uow)
            uow.commit()
        return result

    @staticmethod
    def read(backend: DataBackend, action: Callable[[UnitOfWork], T]) -> T:
        """Run ``action`` in a new unit of work that is left without committing."""
        with backend.unit_of_work() as uow:
            return action(uow)

    @staticmethod
    def append_each(
        backend: DataBackend, entries: list[DownloadAuditEntry]
    ) -> list[DownloadAuditEntry]:
        """Append each entry in its own committed unit, in order; the stored entries."""
        stored = []
        for entry in entries:
            with backend.unit_of_work() as uow:
                stored.append(uow.audit.append(entry))
                uow.commit()
        return stored

    def _require(self, flag: str, reason: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False: {reason}")
