"""Artifact releases on RTDB: ``tenants/{t}/artifact_releases/{id}``, ids from the
backend-wide counter ``botmox_meta/counters/release_id``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import attrs

from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.models import Release, ReleaseScope
from botmox_rtdb import layout
from botmox_rtdb.layout import checked_key, tenant_path
from botmox_rtdb.queries import query_string_value
from botmox_rtdb.records import children_of, from_record, to_record
from botmox_rtdb.repositories._support import (
    _follow_counter,
    _next_counter,
    _page,
    _records_by_id,
)
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.write_buffer import WriteBuffer, insert_child

__all__ = ["RtdbReleaseRepository"]

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class RtdbReleaseRepository:
    """Releases at ``tenants/{t}/artifact_releases/{id}``; ids from the backend-wide counter
    ``botmox_meta/counters/release_id``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def _children(self, tenant_id: str) -> dict[str, Any]:
        parent = tenant_path(tenant_id, layout.RELEASES)
        with map_rtdb_errors("list releases"):
            stored = dict(children_of(self._buffer.ref(parent).get()))
        stored.update(self._buffer.pending_children(parent))
        return stored

    def add(self, release: Release) -> Release:
        """Allocate an id now and stage the release; :class:`DuplicateError` now or at commit
        (the commit's transaction on the tenant's releases re-checks both uniqueness rules)."""
        _check_release_fields(release)
        parent = tenant_path(release.tenant_id, layout.RELEASES)
        _check_release_unique(self._children(release.tenant_id), release)
        release_id = _next_counter(self._buffer, layout.RELEASE_ID_COUNTER, "allocate release id")
        stored = attrs.evolve(release, id=release_id)
        record = to_record(stored, f"{parent}/{release_id}")
        self._buffer.stage_conditional(
            insert_child(
                parent,
                str(release_id),
                record,
                lambda children: _check_release_unique(children, stored),
                "publish release",
            )
        )
        return stored

    def get(self, tenant_id: str, release_id: int) -> Release | None:
        """The release, or None."""
        if isinstance(release_id, bool) or not isinstance(release_id, int) or release_id <= 0:
            return None
        record = self._buffer.read(tenant_path(tenant_id, layout.RELEASES, str(release_id)))
        return None if record is None else from_record(record, Release, tenant_id=tenant_id)

    def _query(self, tenant_id: str, field: str, value: str) -> list[Release]:
        parent = tenant_path(tenant_id, layout.RELEASES)
        with map_rtdb_errors("query releases"):
            found = (
                self._buffer.ref(parent)
                .order_by_child(field)
                .equal_to(query_string_value(value))
                .get()
            )
        children = _records_by_id(found)
        for key, record in self._buffer.pending_children(parent).items():
            if isinstance(record, dict) and record.get(field) == value:
                children[key] = record
        return [
            from_record(r, Release, tenant_id=tenant_id)
            for r in children.values()
            if isinstance(r, dict)
        ]

    def find(self, tenant_id: str, scope: ReleaseScope, version: str) -> Release | None:
        """The release of that scope and version (index ``version``), or None."""
        for release in self._query(tenant_id, "version", version):
            if release.scope == scope:
                return release
        return None

    def list(self, tenant_id: str, module: str | None = None) -> Sequence[Release]:
        """The tenant's releases (index ``module`` when filtered), newest id first."""
        if module is None:
            releases = [
                from_record(r, Release, tenant_id=tenant_id)
                for r in self._children(tenant_id).values()
                if isinstance(r, dict)
            ]
        else:
            releases = self._query(tenant_id, "module", module)
        return sorted(releases, key=lambda release: release.id, reverse=True)

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> Sequence[Release]:
        """The tenant's releases after the id ``after``, by id (read whole)."""
        releases = [
            from_record(r, Release, tenant_id=tenant_id)
            for r in self._children(tenant_id).values()
            if isinstance(r, dict)
        ]
        return _page(((release.id, release) for release in releases), after, limit)

    def put(self, release: Release) -> Release:
        """Stage the release under its own id (create or replace; uniqueness re-checked at
        commit) and raise the backend-wide id counter to at least that id now."""
        if isinstance(release.id, bool) or not isinstance(release.id, int) or release.id < 1:
            raise BadRequestError(f"a release needs a positive id, got {release.id!r}")
        _check_release_fields(release)
        parent = tenant_path(release.tenant_id, layout.RELEASES)
        _check_release_unique(self._children(release.tenant_id), release)
        _follow_counter(self._buffer, layout.RELEASE_ID_COUNTER, release.id, "keep release id")
        self._buffer.stage_conditional(
            insert_child(
                parent,
                str(release.id),
                to_record(release, f"{parent}/{release.id}"),
                lambda children: _check_release_unique(children, release),
                "import release",
            )
        )
        return release


def _check_release_fields(release: Release) -> None:
    """Refuse (400) a release whose scope parts are not keys, or whose sha256 or size is
    invalid."""
    for value, what in (
        (release.module, "module"),
        (release.platform, "platform"),
        (release.channel, "channel"),
    ):
        checked_key(value, what)
    if not _SHA256_HEX.match(release.sha256):
        raise BadRequestError(
            "sha256 must be 64 lower-case hex digits", details={"field": "sha256"}
        )
    if isinstance(release.size_bytes, bool) or release.size_bytes < 1:
        raise BadRequestError("size_bytes must be at least 1", details={"field": "size_bytes"})


def _check_release_unique(children: dict[str, Any], release: Release) -> None:
    for key, record in children.items():
        if not isinstance(record, dict) or key == str(release.id):
            continue
        if record.get("object_key") == release.object_key:
            raise DuplicateError(
                "a release with this object_key exists", details={"object_key": release.object_key}
            )
        same_scope = all(
            record.get(field) == getattr(release, field)
            for field in ("module", "platform", "channel", "version")
        )
        if same_scope:
            raise DuplicateError(
                "this module, platform, channel and version is already published",
                details={"version": release.version},
            )
