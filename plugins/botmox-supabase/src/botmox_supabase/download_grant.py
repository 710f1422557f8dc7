"""resolve-download's read on PostgreSQL: one call of ``botmox.download_grant()``, one round trip.

The function (migration ``20261207000000_botmox_download_grant``) reads the lease, the effective
assignment of the scope (the lease user's before the tenant default) and that assignment's
release. It is PL/pgSQL so that PostgreSQL keeps the plans of those three reads for the life of a
connection's session, even when the statement itself is sent unprepared (``pooler_mode =
transaction``): what is parsed and planned per call is only the small select below, about a
third of what planning the three reads as one statement cost.

The select names each column it wants, generated from the models' fields, so a model and the
function that disagree fail loudly rather than shift columns; the row comes back as plain typed
columns (no JSON to encode on the server and parse here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from botmox_core.models import Assignment, Lease, Release, ReleaseScope
from botmox_core.ports.repositories import DownloadGrant
from botmox_supabase.repositories import CODEC

__all__ = ["DOWNLOAD_GRANT_SQL", "decode_grant", "grant_params"]

_LEASE = CODEC.fields(Lease)
_ASSIGNMENT = CODEC.fields(Assignment)
_RELEASE = CODEC.fields(Release)
_ENDS = (len(_LEASE), len(_LEASE) + len(_ASSIGNMENT))
# a column that is NOT NULL in its table: NULL there means the row is absent
_ASSIGNMENT_PRESENT = _ENDS[0] + _ASSIGNMENT.index("tenant_id")
_RELEASE_PRESENT = _ENDS[1] + _RELEASE.index("id")

#: The grant's one statement: one row of the three records' columns (none when there is no such
#: lease); an absent assignment or release is all NULLs. The function's columns are the tables'
#: with a prefix: ``l_`` lease, ``a_`` assignment, ``r_`` release.
DOWNLOAD_GRANT_SQL = (
    "select "  # noqa: S608 - fixed names
    + ", ".join(
        f"{prefix}_{name}"
        for prefix, fields in (("l", _LEASE), ("a", _ASSIGNMENT), ("r", _RELEASE))
        for name in fields
    )
    + " from botmox.download_grant(%s, %s, %s, %s, %s)"
)


def grant_params(tenant_id: str, lease_id: str, scope: ReleaseScope) -> tuple[str, ...]:
    """The parameters of :data:`DOWNLOAD_GRANT_SQL`."""
    return (tenant_id, lease_id, scope.module, scope.platform, scope.channel)


def decode_grant(row: Sequence[Any] | None) -> DownloadGrant:
    """The :class:`~botmox_core.ports.repositories.DownloadGrant` of a row of
    :data:`DOWNLOAD_GRANT_SQL` (None: no such lease)."""
    if row is None:
        return DownloadGrant(None)
    first, second = _ENDS
    lease = CODEC.value(dict(zip(_LEASE, row[:first], strict=True)), Lease)
    if row[_ASSIGNMENT_PRESENT] is None:
        return DownloadGrant(lease)
    assignment = CODEC.value(dict(zip(_ASSIGNMENT, row[first:second], strict=True)), Assignment)
    if row[_RELEASE_PRESENT] is None:
        return DownloadGrant(lease, assignment)
    release = CODEC.value(dict(zip(_RELEASE, row[second:], strict=True)), Release)
    return DownloadGrant(lease, assignment, release)
