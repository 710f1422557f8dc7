"""The lease a runner holds while it works: current token, expiry, heartbeat health.

Shared by the sync and async clients. The background heartbeat replaces the token under a lock,
so ``lease.token`` is always the newest token the server issued.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from botmox_core.client._models import LeaseGrant
from botmox_core.errors import BotmoxError

__all__ = ["Lease"]


class Lease:
    """A held licence lease, kept alive by heartbeats until its context manager exits.

    Read ``token`` each time you need it: heartbeats rotate it (the previous token stays valid
    until its own expiry, so a request racing a heartbeat still succeeds).
    """

    def __init__(self, grant: LeaseGrant) -> None:
        self._lock = threading.Lock()
        self._grant = grant
        self._heartbeat_error: BotmoxError | None = None
        self._heartbeats = 0
        self._renewals = 0

    @property
    def grant(self) -> LeaseGrant:
        """The current grant (token, expiry, binding)."""
        with self._lock:
            return self._grant

    @property
    def token(self) -> str:
        """The newest lease token."""
        return self.grant.token

    @property
    def lease_id(self) -> str:
        return self.grant.lease_id

    @property
    def expires_at(self) -> datetime:
        """When the newest token expires (UTC)."""
        return self.grant.expires_at

    @property
    def module(self) -> str | None:
        return self.grant.module

    @property
    def vm_uuid(self) -> str | None:
        return self.grant.vm_uuid

    @property
    def heartbeats(self) -> int:
        """Successful heartbeats since the lease was taken."""
        with self._lock:
            return self._heartbeats

    @property
    def renewals(self) -> int:
        """How often the lease was replaced by a brand-new lease."""
        with self._lock:
            return self._renewals

    @property
    def heartbeat_error(self) -> BotmoxError | None:
        """The last heartbeat failure, cleared by the next success; None while healthy."""
        with self._lock:
            return self._heartbeat_error

    @property
    def active(self) -> bool:
        """True while the token has not expired and the server has not refused a heartbeat."""
        with self._lock:
            refused = self._heartbeat_error is not None and not self._heartbeat_error.retryable
            return not refused and self._grant.expires_at > datetime.now(UTC)

    def _record_heartbeat(self, lease_id: str, data: object) -> None:
        """Swap in the rotated token, unless the lease was replaced while the heartbeat ran."""
        with self._lock:
            if self._grant.lease_id != lease_id:
                return
            self._grant = self._grant.rotated(data)
            self._heartbeats += 1
            self._heartbeat_error = None

    def _record_heartbeat_failure(self, lease_id: str, error: BotmoxError) -> None:
        with self._lock:
            if self._grant.lease_id == lease_id:
                self._heartbeat_error = error

    def _replace_grant(self, grant: LeaseGrant) -> None:
        with self._lock:
            self._grant = grant
            self._renewals += 1
            self._heartbeat_error = None

    def __repr__(self) -> str:
        grant = self.grant
        return (
            f"Lease(lease_id={grant.lease_id!r}, module={grant.module!r}, "
            f"vm_uuid={grant.vm_uuid!r}, expires_at={grant.expires_at.isoformat()!r}, "
            "token=<redacted>)"
        )
