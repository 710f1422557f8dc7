"""The base every vault conformance mixin shares: the ``backend`` fixtures and capability flags of
the repository kit, the ``vault`` requirement, and the vault unit-of-work helpers."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar, TypeVar

import attrs
import pytest

from botmox_core.ports import DataBackend
from botmox_core.ports.vault import VaultUnitOfWork
from botmox_core.testing.repository._base import RepositoryConformanceBase
from botmox_core.testing.vault._support import VAULT_REPOSITORIES, _vault, make_secret, make_version
from botmox_core.vault.envelopes import Envelope
from botmox_core.vault.models import Secret, SecretVersion

__all__ = ["B", "VaultConformanceBase"]

B = TypeVar("B", bound=DataBackend)
T = TypeVar("T")


class VaultConformanceBase(RepositoryConformanceBase[B]):
    """Pytest mixin base of the vault suites (fixtures: see
    :class:`~botmox_core.testing.repository._base.RepositoryConformanceBase`).

    Every test needs ``capabilities.vault`` (flag ``supports_vault``).

    Tunables:
        concurrency_threads, modifies_per_thread: size of the check-and-set test.
    """

    supports_vault: ClassVar[bool | None] = None
    capability_of_flag: ClassVar[dict[str, str]] = {
        **RepositoryConformanceBase.capability_of_flag,
        "supports_vault": "vault",
    }

    @pytest.fixture(autouse=True)
    def _needs_vault(self, _fixture_request: None) -> None:
        self._require("supports_vault", "the vault repositories are not implemented")

    @staticmethod
    def write_unit(backend: DataBackend, action: Callable[[VaultUnitOfWork], T]) -> T:
        """Run ``action`` in a new vault unit of work and commit it."""
        with backend.unit_of_work() as uow:
            result = action(_vault(uow))
            uow.commit()
        return result

    @staticmethod
    def read_unit(backend: DataBackend, action: Callable[[VaultUnitOfWork], T]) -> T:
        """Run ``action`` in a new vault unit of work left without committing."""
        with backend.unit_of_work() as uow:
            return action(_vault(uow))

    def store(
        self, backend: DataBackend, secret: Secret, envelope: Envelope | None = None
    ) -> SecretVersion:
        """Add ``secret`` and its first version in one committed unit; the version."""
        version = make_version(secret, envelope)

        def add(uow: VaultUnitOfWork) -> None:
            uow.secrets.add(secret)
            uow.secrets.add_version(version)

        self.write_unit(backend, add)
        return version

    def secret_ref(self, backend: DataBackend, tenant: str, secret_id: str | None = None) -> str:
        """Store a secret of ``tenant`` (with ``secret_id``, else a new id); its id (bindings
        reference stored secrets, so a backend may enforce the reference)."""
        secret = make_secret(tenant)
        if secret_id is not None:
            secret = attrs.evolve(secret, id=secret_id)
        self.store(backend, secret)
        return secret.id

    def test_declares_vault_and_units_carry_it(self, backend: B) -> None:
        with backend.unit_of_work() as uow:
            missing = [name for name in VAULT_REPOSITORIES if not hasattr(uow, name)]
        assert not missing, f"the backend declares vault=True but its units lack {missing}"
