"""The base every repository conformance mixin shares: the ``backend`` fixtures, the capability
flags (read from what the backend declares) and the unit-of-work helpers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import ClassVar, Generic, TypeVar

import pytest

from botmox_core.models import (
    DownloadAuditEntry,
)
from botmox_core.ports import BackendCapabilities, DataBackend, UnitOfWork
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

    Capabilities come from the backend's declaration, ``backend.capabilities`` (a
    :class:`~botmox_core.ports.BackendCapabilities`): the tests of every capability it claims
    run (so a claim it cannot keep fails), those of a capability it does not claim skip with the
    reason. Each flag below maps to one declared field:

        supports_rollback → ``rollback``: leaving a unit without ``commit()`` discards its
            writes.
        supports_multi_record_transactions → ``multi_record_transactions``: a unit's writes to
            several records commit together, and a unit reads its own uncommitted writes.
        rejects_invalid_release_values → ``validates_release_values``: ``releases.add``
            refuses a sha256 that is not 64 lower-case hex digits and a ``size_bytes`` below 1
            with :class:`BadRequestError`.
        preserves_microseconds → ``microsecond_timestamps``: timestamps keep microseconds
            (milliseconds are always required).

    For backward compatibility a test class may still set a flag to ``True`` or ``False``; it
    then overrides the declaration for that class (``None``, the default, means "as declared").
    Prefer declaring: a flag set on the test class is not a promise the server can read.

    Tunables:
        concurrency_threads, modifies_per_thread: size of the lost-update test.
    """

    supports_rollback: ClassVar[bool | None] = None
    supports_multi_record_transactions: ClassVar[bool | None] = None
    rejects_invalid_release_values: ClassVar[bool | None] = None
    preserves_microseconds: ClassVar[bool | None] = None
    #: Which declared field each flag reads.
    capability_of_flag: ClassVar[dict[str, str]] = {
        "supports_rollback": "rollback",
        "supports_multi_record_transactions": "multi_record_transactions",
        "rejects_invalid_release_values": "validates_release_values",
        "preserves_microseconds": "microsecond_timestamps",
    }
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

    @pytest.fixture(autouse=True)
    def _fixture_request(self, request: pytest.FixtureRequest) -> None:
        """Keeps the test's request, so :meth:`capability` can reach the ``backend`` fixture."""
        self._request = request

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

    def declared_capabilities(self) -> BackendCapabilities:
        """The test's ``backend``'s declaration; fails the test when it declares none."""
        backend = self._request.getfixturevalue("backend")
        declared = getattr(backend, "capabilities", None)
        if not isinstance(declared, BackendCapabilities):
            pytest.fail(
                f"{type(backend).__name__} declares no capabilities: give the class "
                "`capabilities = BackendCapabilities(...)` (botmox_core.ports)"
            )
        return declared

    def capability(self, flag: str) -> bool:
        """Whether the backend has the capability behind ``flag``: the class attribute when a
        test class sets it, else the backend's declaration."""
        override: bool | None = getattr(self, flag)
        if override is not None:
            return override
        field = self.capability_of_flag[flag]
        return bool(getattr(self.declared_capabilities(), field))

    def _require(self, flag: str, reason: str) -> None:
        if self.capability(flag):
            return
        if getattr(self, flag) is not None:
            pytest.skip(f"{type(self).__name__}.{flag} is False: {reason}")
        field = self.capability_of_flag[flag]
        pytest.skip(f"the backend declares {field}=False: {reason}")

    def test_declares_its_capabilities(self, backend: B) -> None:
        """The declaration is a :class:`BackendCapabilities`, consistent with itself and with
        what the backend's units of work carry."""
        declared = self.declared_capabilities()
        if declared.multi_record_transactions:
            assert declared.rollback, "multi_record_transactions needs rollback"
        if declared.preferred_agent_transport is not None:
            assert declared.agents, "a preferred agent transport needs agents=True"
        if declared.agents:
            with backend.unit_of_work() as uow:
                missing = [name for name in ("agents", "commands") if not hasattr(uow, name)]
            assert not missing, f"the backend declares agents=True but its units lack {missing}"
