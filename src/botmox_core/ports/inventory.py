"""Operator inventory: what a tenant holds, listed with filters, and the few operator writes the
aggregate ports lack (drop an assignment, change a release's status).

Read by ``botmox admin ... list|show|revoke`` (``docs/operations.md``, operator CLI). A unit of
work that has an ``inventory`` attribute offers it (:func:`inventory_of`); SQLite and Supabase
do, through the one SQL implementation in :mod:`botmox_core.backends.sql_inventory`. A backend
without it (RTDB) makes those commands answer ``INVENTORY_NOT_SUPPORTED``.

Every method names the tenant except :meth:`Inventory.licences` (one licence per tenant; the
operator lists them all). Lists are ordered newest first where records have a creation time,
and hold at most ``limit`` entries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from botmox_core.models import (
    ApiToken,
    Assignment,
    Entitlement,
    Lease,
    Licence,
    Release,
    ReleaseScope,
    ReleaseStatus,
    Vm,
)
from botmox_core.ports.repositories import UnitOfWork

__all__ = ["Inventory", "inventory_of"]


@runtime_checkable
class Inventory(Protocol):
    """Operator listings over the artifact records of a backend."""

    def tokens(
        self,
        tenant_id: str,
        *,
        role: str | None = None,
        user_id: str | None = None,
        include_revoked: bool = False,
        limit: int = 100,
    ) -> Sequence[ApiToken]:
        """The tenant's API tokens (hashes only), newest first; revoked ones only when asked."""

    def token(self, tenant_id: str, token_id: str) -> ApiToken | None:
        """One token of the tenant, or None."""

    def vms(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        user_id: str | None = None,
        limit: int = 100,
    ) -> Sequence[Vm]:
        """The tenant's VMs, newest first."""

    def leases(
        self,
        tenant_id: str,
        *,
        status: str | None = None,
        vm_uuid: str | None = None,
        user_id: str | None = None,
        module: str | None = None,
        limit: int = 100,
    ) -> Sequence[Lease]:
        """The tenant's leases, newest issued first (``status`` is the stored one: an active
        lease past ``expires_at`` is still ``active``)."""

    def licences(self, tenant_id: str | None = None) -> Sequence[Licence]:
        """Every tenant's licence (or one tenant's), by tenant id."""

    def entitlements(self, tenant_id: str, *, user_id: str | None = None) -> Sequence[Entitlement]:
        """The tenant's entitlements, by user id."""

    def assignments(
        self,
        tenant_id: str,
        *,
        module: str | None = None,
        user_id: str | None = None,
        defaults_only: bool = False,
        limit: int = 100,
    ) -> Sequence[Assignment]:
        """The tenant's assignments (user ones and tenant defaults), newest first."""

    def delete_assignment(self, tenant_id: str, user_id: str | None, scope: ReleaseScope) -> bool:
        """Drop the assignment of ``user_id`` (None: the tenant default) for the scope; False
        when there was none."""

    def set_release_status(
        self, tenant_id: str, release_id: int, status: ReleaseStatus
    ) -> Release | None:
        """Change a release's status (``disabled`` stops resolves); None when missing."""


def inventory_of(uow: UnitOfWork) -> Inventory | None:
    """The unit's inventory, or None when its backend has none."""
    found = getattr(uow, "inventory", None)
    return found if isinstance(found, Inventory) else None
