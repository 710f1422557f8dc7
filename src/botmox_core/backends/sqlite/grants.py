"""The SQLite backend's download-grant read: the lease, the effective assignment and its release
in one ``SELECT`` (:meth:`SqliteBackend.read_download_grant
<botmox_core.backends.sqlite.backend.SqliteBackend.read_download_grant>`).

One statement on a reader connection in autocommit is one snapshot, so the three rows are
consistent with each other and with every unit committed before the read started; it takes no
lock a writer waits for. The effective assignment is the lease user's for the scope, else the
tenant default, exactly as :func:`botmox_core.ports.repositories.read_download_grant` defines it.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from botmox_core.backends.sqlite.columns import CODEC
from botmox_core.models import Assignment, Lease, Release, ReleaseScope
from botmox_core.ports.repositories import DownloadGrant

__all__ = ["GRANT_SQL", "grant_from_row", "grant_params"]

_PARTS: tuple[tuple[str, type[Any], tuple[str, ...]], ...] = (
    ("l", Lease, CODEC.fields(Lease)),
    ("a", Assignment, CODEC.fields(Assignment)),
    ("r", Release, CODEC.fields(Release)),
)

#: Parameters: tenant, lease id, then module, platform, channel twice (user's, then default).
GRANT_SQL = (
    "SELECT "  # noqa: S608 - fixed names only
    + ", ".join(f"{alias}.{name}" for alias, _, names in _PARTS for name in names)
    + " FROM leases AS l"
    " LEFT JOIN assignments AS a ON a.rowid = coalesce("
    "(SELECT rowid FROM assignments WHERE tenant_id = l.tenant_id AND user_id = l.user_id"
    " AND module = ?3 AND platform = ?4 AND channel = ?5),"
    "(SELECT rowid FROM assignments WHERE tenant_id = l.tenant_id AND user_id IS NULL"
    " AND module = ?3 AND platform = ?4 AND channel = ?5))"
    " LEFT JOIN releases AS r ON r.tenant_id = a.tenant_id AND r.id = a.release_id"
    " WHERE l.tenant_id = ?1 AND l.id = ?2"
)


def grant_params(tenant_id: str, lease_id: str, scope: ReleaseScope) -> tuple[str, ...]:
    """The parameters of :data:`GRANT_SQL`."""
    return (tenant_id, lease_id, scope.module, scope.platform, scope.channel)


#: Grants decoded from rows, by the row's values (the same row decodes to the same grant).
_DECODED: dict[tuple[Any, ...], DownloadGrant] = {}
DECODED_KEPT = 1024


def grant_from_row(row: sqlite3.Row | tuple[Any, ...] | None) -> DownloadGrant:
    """The grant a row of :data:`GRANT_SQL` describes (no row: no lease). A row equal to one
    decoded lately gives the grant decoded then (models are immutable): any change to the
    lease, assignment or release changes the row, so it is decoded afresh."""
    if row is None:
        return DownloadGrant(None)
    values_key = tuple(row)
    known = _DECODED.get(values_key)
    if known is not None:
        return known
    grant = _decode(values_key)
    while len(_DECODED) >= DECODED_KEPT:
        try:  # threads share the dict: another may have evicted the same entry first
            _DECODED.pop(next(iter(_DECODED)), None)
        except (RuntimeError, StopIteration):
            break
    _DECODED[values_key] = grant
    return grant


def _decode(row: tuple[Any, ...]) -> DownloadGrant:
    values: list[Any] = []
    start = 0
    for _, model, names in _PARTS:
        chunk = tuple(row[start : start + len(names)])
        start += len(names)
        values.append(
            None if chunk[0] is None else CODEC.value(dict(zip(names, chunk, strict=True)), model)
        )
    lease, assignment, release = values
    return DownloadGrant(lease, assignment, release if assignment is not None else None)
