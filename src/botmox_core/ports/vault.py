"""Repository ports of the secret vault: secrets (metadata and versioned envelopes) and
bindings (``secret_ref`` from a scope's field).

A data backend supports the vault when its units of work also carry ``secrets`` and
``bindings`` (:class:`VaultUnitOfWork`) and it declares ``capabilities.vault``;
:func:`supports_vault` reads that declaration. Without it the server answers the vault routes
with 501 ``VAULT_NOT_SUPPORTED``.

Every method names the tenant and never reads or writes another tenant's data. Secret ids are
unique *per tenant* (two tenants may hold the same id; neither sees the other's). The services
validate every value before it gets here (ids, labels, envelopes via
:func:`~botmox_core.vault.envelopes.parse_envelope`); a backend stores what it is given and
returns it equal. Envelopes are stored as :func:`~botmox_core.vault.envelopes.envelope_document`
and read back with :func:`~botmox_core.vault.envelopes.parse_envelope`. Timestamps keep at
least milliseconds.

The vault's rules that span records (a binding's ``secret_ref`` is a secret of the same tenant;
rotation is check-and-set on ``version``) are kept by the services in one unit of work:
``secrets.modify`` is the check-and-set (atomic for the one secret, like every ``modify``), so a
backend without multi-record transactions still never loses or duplicates a version.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeGuard, runtime_checkable

from botmox_core.ports.repositories import DataBackend, UnitOfWork
from botmox_core.vault.models import ScopeType, Secret, SecretBinding, SecretVersion

__all__ = [
    "SecretBindingRepository",
    "SecretRepository",
    "VaultDataBackend",
    "VaultUnitOfWork",
    "supports_vault",
]


class SecretRepository(Protocol):
    """Secrets of every tenant and their versions."""

    def add(self, secret: Secret) -> None:
        """Store a new secret; :class:`~botmox_core.errors.DuplicateError` if the tenant
        already has that id."""

    def get(self, tenant_id: str, secret_id: str) -> Secret | None:
        """The secret, or ``None`` (also for another tenant's id)."""

    def modify(
        self, tenant_id: str, secret_id: str, change: Callable[[Secret], Secret]
    ) -> Secret | None:
        """Atomically replace the secret with ``change(current)``; ``None`` (nothing written)
        if absent. ``change`` may raise to abort (nothing written); it must keep ``id`` and
        ``tenant_id`` (:mod:`botmox_core.ports.modify`); an equal result writes nothing.
        Concurrent modifies of one secret never lose an update (this is the rotation's
        check-and-set)."""

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Secret]:
        """Up to ``limit`` of the tenant's secrets with ids after ``after``, in id order (code
        point): how export and migration read them page by page."""

    def add_version(self, version: SecretVersion) -> None:
        """Store a version; :class:`~botmox_core.errors.DuplicateError` if that (tenant,
        secret, version) exists."""

    def get_version(self, tenant_id: str, secret_id: str, version: int) -> SecretVersion | None:
        """One version (with ``envelope`` ``None`` once dropped), or ``None``."""

    def versions(self, tenant_id: str, secret_id: str) -> Sequence[SecretVersion]:
        """Every stored version of the secret, newest first (dropped envelopes as ``None``)."""

    def drop_envelopes(self, tenant_id: str, secret_id: str, *, below: int) -> int:
        """Forget the envelope of every version of the secret below ``below`` (their metadata
        stays); how many envelopes were dropped by this call."""


class SecretBindingRepository(Protocol):
    """Bindings of every tenant, unique per (tenant, scope_type, scope_id, field_name)."""

    def upsert(self, binding: SecretBinding) -> SecretBinding:
        """Create the binding, or re-point the one with the same (tenant, scope_type,
        scope_id, field_name): it keeps its ``id`` and ``created_at`` and takes ``secret_ref``
        and ``updated_at`` from ``binding``. Returns the stored binding."""

    def get(
        self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str
    ) -> SecretBinding | None:
        """The binding of that field, or ``None``."""

    def list(
        self,
        tenant_id: str,
        *,
        scope_type: ScopeType | None = None,
        scope_id: str | None = None,
        secret_ref: str | None = None,
        limit: int = 1000,
    ) -> Sequence[SecretBinding]:
        """The tenant's bindings matching every given filter, newest ``created_at`` first
        (ties: ``id`` ascending), at most ``limit``."""

    def delete(self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str) -> bool:
        """Remove the binding of that field; whether it existed."""


class VaultUnitOfWork(UnitOfWork, Protocol):
    """A unit of work that also carries the vault repositories."""

    secrets: SecretRepository
    bindings: SecretBindingRepository


@runtime_checkable
class VaultDataBackend(DataBackend, Protocol):
    """A :class:`DataBackend` whose units of work are :class:`VaultUnitOfWork`."""

    def unit_of_work(self) -> VaultUnitOfWork:
        """A new unit of work with the vault repositories."""


def supports_vault(backend: DataBackend) -> TypeGuard[VaultDataBackend]:
    """Whether ``backend`` declares the vault (``capabilities.vault``)."""
    return backend.capabilities.vault
