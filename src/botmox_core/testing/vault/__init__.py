"""Conformance suite for the vault repositories (:mod:`botmox_core.ports.vault`).

A backend that declares ``capabilities.vault`` subclasses :class:`VaultRepositoryConformance`
with the same ``backend`` fixture as :class:`~botmox_core.testing.RepositoryConformance`::

    class TestMyBackendVault(VaultRepositoryConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            backend = MyBackend(tmp_path / "db")
            yield backend
            backend.close()

Without ``vault`` every test skips with the reason; the rollback test needs ``rollback``.
``second_backend`` (another instance on the same store) enables the cross-instance
check-and-set test.

The suite is split by concern, one mixin each, all on
:class:`~botmox_core.testing.vault._base.VaultConformanceBase` and generic over the backend type:

* :class:`SecretRecordConformance` — secret records: read back, tenant isolation, duplicate ids,
  ``modify``, ``scan``;
* :class:`SecretVersionConformance` — versions and their envelopes: every envelope kind read back
  exactly, duplicate versions, newest-first listing, dropping old envelopes;
* :class:`SecretTransactionConformance` — check-and-set rotations under concurrency, rollback;
* :class:`SecretBindingConformance` — bindings: upsert on the unique key, filters, order, delete,
  tenant isolation;
* :class:`VaultServiceConformance` — the vault service on the backend: a binding to
  ``vm_settings``, another tenant's secret refused, one winner among concurrent rotations.

:class:`SecretConformance` (everything ``uow.secrets`` must do) composes the first three and
:class:`VaultRepositoryConformance` composes it with the bindings and the service.
:class:`VaultAtRestConformance` is opt-in: with a ``raw_vault_dump`` fixture (the store read
around the backend) it checks a dump holds a sealed secret's ciphertext but never its
plaintext. The builders (:func:`make_secret`,
:func:`make_version`, :func:`make_binding`, :func:`make_hpke_envelope`,
:func:`make_aes_envelope`) are handy for a backend's own tests too.
"""

from __future__ import annotations

from botmox_core.testing.vault._base import B, VaultConformanceBase
from botmox_core.testing.vault._support import (
    T0,
    VAULT_REPOSITORIES,
    make_aes_envelope,
    make_binding,
    make_hpke_envelope,
    make_secret,
    make_version,
)
from botmox_core.testing.vault.at_rest import RawVaultDump, VaultAtRestConformance, envelope_texts
from botmox_core.testing.vault.bindings import SecretBindingConformance
from botmox_core.testing.vault.records import SecretRecordConformance
from botmox_core.testing.vault.service import VaultServiceConformance
from botmox_core.testing.vault.transactions import SecretTransactionConformance
from botmox_core.testing.vault.versions import SecretVersionConformance

__all__ = [
    "T0",
    "VAULT_REPOSITORIES",
    "RawVaultDump",
    "SecretBindingConformance",
    "SecretConformance",
    "SecretRecordConformance",
    "SecretTransactionConformance",
    "SecretVersionConformance",
    "VaultAtRestConformance",
    "VaultConformanceBase",
    "VaultRepositoryConformance",
    "VaultServiceConformance",
    "envelope_texts",
    "make_aes_envelope",
    "make_binding",
    "make_hpke_envelope",
    "make_secret",
    "make_version",
]


class SecretConformance(
    SecretRecordConformance[B],
    SecretVersionConformance[B],
    SecretTransactionConformance[B],
):
    """Pytest mixin: what ``uow.secrets`` must do (records, versions, transactions)."""


class VaultRepositoryConformance(
    SecretConformance[B], SecretBindingConformance[B], VaultServiceConformance[B]
):
    """Pytest mixin: the behaviour of every backend that declares ``capabilities.vault``.
    Fixtures and capability flags: see
    :class:`~botmox_core.testing.vault._base.VaultConformanceBase`."""
