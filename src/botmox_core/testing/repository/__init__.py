"""Conformance suite for :class:`~botmox_core.ports.DataBackend` implementations.

Subclass :class:`RepositoryConformance` in a test module and provide the ``backend`` fixture::

    import pytest
    from botmox_core.testing import RepositoryConformance

    class TestMyBackend(RepositoryConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            backend = MyBackend(tmp_path / "db")   # fresh and empty for every test
            yield backend
            backend.close()

Optionally provide ``second_backend`` — another instance on the *same* store (a second
connection pool, client or process-like handle) — to let the suite check committed data and
lost-update protection across instances, not only through the instance that wrote.

The suite only uses the public ports: each test writes in one unit of work, commits, and reads
back in a new unit, so it never relies on a unit surviving an error (after a repository raises,
the test leaves that unit). Every test works on its own random tenant ids, so stray data in the
store does not break it. Capability flags (class attributes) turn off what a backend cannot do;
the affected tests skip with the reason.

The suite is split by aggregate, one mixin each (:class:`TokenConformance`,
:class:`VmConformance`, :class:`LicenceConformance`, :class:`LeaseConformance`,
:class:`ReleaseConformance`, :class:`AssignmentConformance`, :class:`AuditConformance`,
:class:`DownloadGrantConformance`,
:class:`TimestampConformance`, :class:`UnitOfWorkConformance`), all generic over the backend
type; :class:`RepositoryConformance` composes them, so a backend that implements only some
aggregates can run only their mixins.
"""

from __future__ import annotations

from typing import TypeVar

from botmox_core.ports import DataBackend
from botmox_core.testing.repository._base import RepositoryConformanceBase
from botmox_core.testing.repository._support import (
    SCOPE,
    T0,
    make_assignment,
    make_entry,
    make_lease,
    make_release,
    make_token,
    make_vm,
)
from botmox_core.testing.repository.assignments import AssignmentConformance
from botmox_core.testing.repository.audit import AuditConformance
from botmox_core.testing.repository.backend import BackendBasicsConformance
from botmox_core.testing.repository.grants import DownloadGrantConformance
from botmox_core.testing.repository.leases import LeaseConformance
from botmox_core.testing.repository.licences import LicenceConformance
from botmox_core.testing.repository.releases import ReleaseConformance
from botmox_core.testing.repository.scans import ScanConformance
from botmox_core.testing.repository.timestamps import TimestampConformance
from botmox_core.testing.repository.tokens import TokenConformance
from botmox_core.testing.repository.unit_of_work import UnitOfWorkConformance
from botmox_core.testing.repository.vms import VmConformance

__all__ = [
    "SCOPE",
    "T0",
    "AssignmentConformance",
    "AuditConformance",
    "BackendBasicsConformance",
    "DownloadGrantConformance",
    "LeaseConformance",
    "LicenceConformance",
    "ReleaseConformance",
    "RepositoryConformance",
    "ScanConformance",
    "RepositoryConformanceBase",
    "TimestampConformance",
    "TokenConformance",
    "UnitOfWorkConformance",
    "VmConformance",
    "make_assignment",
    "make_entry",
    "make_lease",
    "make_release",
    "make_token",
    "make_vm",
]

B = TypeVar("B", bound=DataBackend)


class RepositoryConformance(
    BackendBasicsConformance[B],
    TokenConformance[B],
    VmConformance[B],
    LicenceConformance[B],
    LeaseConformance[B],
    ReleaseConformance[B],
    AssignmentConformance[B],
    AuditConformance[B],
    DownloadGrantConformance[B],
    ScanConformance[B],
    TimestampConformance[B],
    UnitOfWorkConformance[B],
):
    """Pytest mixin: the behaviour every :class:`~botmox_core.ports.DataBackend` must show
    (every aggregate's mixin). Fixtures and capability flags: see
    :class:`~botmox_core.testing.repository._base.RepositoryConformanceBase`."""
