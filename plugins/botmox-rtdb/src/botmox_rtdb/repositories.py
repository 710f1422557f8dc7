"""The botmox repositories on Firebase Realtime Database (layout: :mod:`botmox_rtdb.layout`).

Each repository stages its writes in the :class:`~botmox_rtdb.write_buffer.WriteBuffer` of its
unit of work (:mod:`botmox_rtdb.unit_of_work`), which applies them at commit; see those modules
for exactly what is atomic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import attrs

from botmox_core.converter import format_timestamp
from botmox_core.errors import BadRequestError, DatabaseError, DuplicateError
from botmox_core.models import (
    ApiToken,
    Assignment,
    DownloadAuditEntry,
    Entitlement,
    Lease,
    Licence,
    Release,
    ReleaseScope,
    Vm,
)
from botmox_core.ports.modify import checked_change, modify_record
from botmox_rtdb import layout
from botmox_rtdb.layout import checked_key, tenant_path
from botmox_rtdb.records import (
    children_of,
    entitlement_from_record,
    from_record,
    to_record,
)
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.transactions import UNCHANGED, run_transaction
from botmox_rtdb.write_buffer import ConditionalWrite, WriteBuffer, create_if_absent, insert_child

__all__ = [
    "RtdbApiTokenRepository",
    "RtdbAssignmentRepository",
    "RtdbDownloadAuditRepository",
    "RtdbLeaseRepository",
    "RtdbLicenceRepository",
    "RtdbReleaseRepository",
    "RtdbVmRepository",
    "query_string_value",
]


K = TypeVar("K", str, int, tuple[int, str, str, str, str])
T = TypeVar("T")

_SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def query_string_value(value: str) -> str:
    """The argument to give ``Query.equal_to`` so the server receives exactly ``value``.

    firebase-admin JSON-encodes query values but does not URL-encode them, so ``&``, ``+``,
    ``%``, ``#`` or ``=`` in a value would corrupt the query string. Passing the JSON-escaped
    body of the string already percent-encoded (which JSON encoding leaves alone) makes the
    server decode it back to the intended JSON string.
    """
    return quote(json.dumps(value)[1:-1], safe="")


def _records_by_id(found: Any) -> dict[str, Any]:
    """Query results keyed by the records' ``id``: firebase-admin returns an ordered dict, or a
    plain list of values when the server answered an array (dense integer keys)."""
    values = found.values() if isinstance(found, dict) else found if isinstance(found, list) else []
    return {str(record.get("id")): record for record in values if isinstance(record, dict)}


def _tenant_children(buffer: WriteBuffer, parent: str) -> dict[str, Any]:
    """Every child of ``parent`` (stored, then this unit's pending writes), by key."""
    with map_rtdb_errors("scan records"):
        stored = dict(children_of(buffer.ref(parent).get()))
    stored.update(buffer.pending_children(parent))
    return {key: value for key, value in stored.items() if isinstance(value, dict)}


def _page(values: Iterable[tuple[K, T]], after: K | None, limit: int) -> list[T]:
    """The values whose key is after ``after``, in key order, at most ``limit``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise BadRequestError(f"limit must be a non-negative integer, got {limit!r}")
    ordered = sorted(values, key=lambda pair: pair[0])
    return [value for key, value in ordered if after is None or key > after][:limit]


def _follow_counter(buffer: WriteBuffer, path: str, used: int, operation: str) -> None:
    """Raise the counter at ``path`` to at least ``used`` (never down)."""

    def follow(current: Any) -> Any:
        value = current if isinstance(current, int) and not isinstance(current, bool) else 0
        return UNCHANGED if value >= used else used

    run_transaction(buffer.ref(path), follow, operation)


def _next_counter(buffer: WriteBuffer, path: str, operation: str) -> int:
    def increment(current: Any) -> Any:
        return (current if isinstance(current, int) and not isinstance(current, bool) else 0) + 1

    _, value = run_transaction(buffer.ref(path), increment, operation)
    return int(value)


class RtdbApiTokenRepository:
    """API tokens at ``tenants/{t}/api_tokens/{id}``; hash lookup via
    ``botmox_meta/api_token_hashes/{hash}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def add(self, token: ApiToken) -> None:
        """Stage the token; :class:`DuplicateError` now, or at commit if a racing writer took
        the id or hash first."""
        record_path = tenant_path(token.tenant_id, layout.API_TOKENS,
                                  checked_key(token.id, "token id"))
        hash_path = f"{layout.TOKEN_HASHES}/{checked_key(token.token_hash, 'token_hash')}"
        if self._buffer.read(hash_path) is not None:
            raise DuplicateError("an API token with this hash exists")
        if self._buffer.read(record_path) is not None:
            raise DuplicateError(f"API token {token.id!r} exists")
        pointer = {"tenant_id": token.tenant_id, "token_id": token.id}
        self._buffer.stage_conditional(create_if_absent(
            hash_path, pointer, lambda: DuplicateError("an API token with this hash exists"),
            "add api token"))
        self._buffer.stage_conditional(create_if_absent(
            record_path, to_record(token, record_path),
            lambda: DuplicateError(f"API token {token.id!r} exists"),
            "add api token"))

    def get_by_hash(self, token_hash: str) -> ApiToken | None:
        """The token with this hash, in any tenant, or None."""
        try:
            hash_path = f"{layout.TOKEN_HASHES}/{checked_key(token_hash, 'token_hash')}"
        except BadRequestError:
            return None  # not a hash we could have stored
        pointer = self._buffer.read(hash_path)
        if not isinstance(pointer, dict):
            return None
        tenant_id, token_id = pointer.get("tenant_id"), pointer.get("token_id")
        try:
            record_path = tenant_path(str(tenant_id or ""), layout.API_TOKENS,
                                      checked_key(token_id, "id"))
        except BadRequestError:
            raise DatabaseError("stored API token pointer is malformed") from None
        record = self._buffer.read(record_path)
        if record is None:
            return None
        token = from_record(record, ApiToken)
        return token if token.token_hash == token_hash else None

    def revoke(self, tenant_id: str, token_id: str, at: datetime) -> bool:
        """Stage the revocation; False when the tenant has no such token."""
        path = tenant_path(tenant_id, layout.API_TOKENS, checked_key(token_id, "token id"))
        pending = self._buffer.pending_conditional(path)
        if pending is not None:
            pending.pending_value = {**pending.pending_value,
                                     "revoked_at": format_timestamp(at)}
            return True
        current = self._buffer.read(path)
        if current is None:
            return False
        if not isinstance(current, dict):
            raise DatabaseError("stored ApiToken record is not an object")
        stamp = format_timestamp(at)

        def apply(current: Any) -> Any:
            if not isinstance(current, dict) or current.get("revoked_at"):
                return UNCHANGED
            return {**current, "revoked_at": stamp}

        def undo(current: Any) -> Any:
            if isinstance(current, dict) and current.get("revoked_at") == stamp:
                return {k: v for k, v in current.items() if k != "revoked_at"}
            return UNCHANGED

        self._buffer.stage_conditional(ConditionalWrite(
            path, apply, undo, path, {**current, "revoked_at": stamp},
            "revoke api token"))
        return True


    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[ApiToken]:
        """The tenant's tokens after ``after``, by id (the tenant's tokens are read whole)."""
        children = _tenant_children(self._buffer, tenant_path(tenant_id, layout.API_TOKENS))
        return _page(((key, from_record(record, ApiToken, tenant_id=tenant_id))
                      for key, record in children.items()), after, limit)


class RtdbVmRepository:
    """VMs at ``tenants/{t}/vm_registry/{vm_uuid}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def upsert(self, vm: Vm) -> Vm:
        """Stage the record, keeping ``created_at`` of an existing one."""
        path = tenant_path(vm.tenant_id, layout.VM_REGISTRY, checked_key(vm.vm_uuid, "vm_uuid"))
        checked_key(vm.user_id, "user_id")
        existing = self._buffer.read(path)
        if existing is not None:
            vm = attrs.evolve(vm, created_at=from_record(existing, Vm).created_at)
        self._buffer.stage_write(path, to_record(vm, path))
        return vm

    def get(self, tenant_id: str, vm_uuid: str) -> Vm | None:
        """The VM, or None."""
        record = self._buffer.read(tenant_path(tenant_id, layout.VM_REGISTRY,
                                            checked_key(vm_uuid, "vm_uuid")))
        return None if record is None else from_record(record, Vm, tenant_id=tenant_id)

    def scan(self, tenant_id: str, *, after: str | None = None, limit: int = 500) -> Sequence[Vm]:
        """The tenant's VMs after ``after``, by ``vm_uuid`` (read whole)."""
        children = _tenant_children(self._buffer, tenant_path(tenant_id, layout.VM_REGISTRY))
        return _page(((key, from_record(record, Vm, tenant_id=tenant_id, vm_uuid=key))
                      for key, record in children.items()), after, limit)


class RtdbLicenceRepository:
    """The licence at ``tenants/{t}/licenses/current``; entitlements at
    ``tenants/{t}/entitlements/{user_id}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def put_licence(self, licence: Licence) -> None:
        """Stage the tenant's licence."""
        path = tenant_path(licence.tenant_id, layout.LICENCES, layout.CURRENT_LICENCE)
        self._buffer.stage_write(path, to_record(licence, path))

    def get_licence(self, tenant_id: str) -> Licence | None:
        """The tenant's licence, or None."""
        record = self._buffer.read(tenant_path(tenant_id, layout.LICENCES, layout.CURRENT_LICENCE))
        return None if record is None else from_record(record, Licence, tenant_id=tenant_id)

    def put_entitlement(self, entitlement: Entitlement) -> None:
        """Stage a user's entitlement (module names must be valid keys)."""
        path = tenant_path(entitlement.tenant_id, layout.ENTITLEMENTS,
                           checked_key(entitlement.user_id, "user_id"))
        self._buffer.stage_write(path, to_record(entitlement, path))

    def get_entitlement(self, tenant_id: str, user_id: str) -> Entitlement | None:
        """The user's entitlement, or None."""
        record = self._buffer.read(tenant_path(tenant_id, layout.ENTITLEMENTS,
                                            checked_key(user_id, "user_id")))
        if record is None:
            return None
        return entitlement_from_record(record, tenant_id, user_id)

    def scan_entitlements(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Entitlement]:
        """The tenant's entitlements after the user id ``after``, by user id (read whole)."""
        children = _tenant_children(self._buffer, tenant_path(tenant_id, layout.ENTITLEMENTS))
        return _page(((key, entitlement_from_record(record, tenant_id, key))
                      for key, record in children.items()), after, limit)


class RtdbLeaseRepository:
    """Leases at ``tenants/{t}/execution_leases/{lease_id}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def _path(self, tenant_id: str, lease_id: str) -> str:
        return tenant_path(tenant_id, layout.LEASES, checked_key(lease_id, "lease_id"))

    def add(self, lease: Lease) -> None:
        """Stage a new lease; :class:`DuplicateError` now or, if raced, at commit."""
        path = self._path(lease.tenant_id, lease.id)
        for value, what in ((lease.user_id, "user_id"), (lease.vm_uuid, "vm_uuid"),
                            (lease.module, "module")):
            checked_key(value, what)
        if self._buffer.read(path) is not None:
            raise DuplicateError(f"lease {lease.id!r} exists")
        self._buffer.stage_conditional(create_if_absent(
            path, to_record(lease, path), lambda: DuplicateError(f"lease {lease.id!r} exists"),
            "add lease"))

    def get(self, tenant_id: str, lease_id: str) -> Lease | None:
        """The lease, or None."""
        record = self._buffer.read(self._path(tenant_id, lease_id))
        return None if record is None else from_record(record, Lease, tenant_id=tenant_id)

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[Lease]:
        """The tenant's leases after ``after``, by id (read whole)."""
        children = _tenant_children(self._buffer, tenant_path(tenant_id, layout.LEASES))
        return _page(((key, from_record(record, Lease, tenant_id=tenant_id))
                      for key, record in children.items()), after, limit)

    def modify(
        self, tenant_id: str, lease_id: str, change: Callable[[Lease], Lease]
    ) -> Lease | None:
        """Compare-and-set ``change(current)`` on the lease now (retried on conflict), checked
        by :mod:`botmox_core.ports.modify` (an unchanged lease is not written)."""
        path = self._path(tenant_id, lease_id)
        pending = self._buffer.pending_conditional(path)
        if pending is not None:  # created in this unit, not yet committed

            def restage(changed: Lease) -> Lease:
                pending.pending_value = to_record(changed, path)
                return changed

            current = from_record(pending.pending_value, Lease, tenant_id=tenant_id)
            return modify_record(current, change, restage)
        result: list[Lease] = []

        def update(stored: Any) -> Any:
            result.clear()
            if stored is None:
                return UNCHANGED
            current = from_record(stored, Lease, tenant_id=tenant_id)
            changed = checked_change(current, change)
            result.append(changed)
            return UNCHANGED if changed == current else to_record(changed, path)

        run_transaction(self._buffer.ref(path), update, "modify lease")
        return result[0] if result else None


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
        for value, what in ((release.module, "module"), (release.platform, "platform"),
                            (release.channel, "channel")):
            checked_key(value, what)
        if not _SHA256_HEX.match(release.sha256):
            raise BadRequestError("sha256 must be 64 lower-case hex digits",
                                  details={"field": "sha256"})
        if isinstance(release.size_bytes, bool) or release.size_bytes < 1:
            raise BadRequestError("size_bytes must be at least 1", details={"field": "size_bytes"})
        parent = tenant_path(release.tenant_id, layout.RELEASES)
        _check_release_unique(self._children(release.tenant_id), release)
        release_id = _next_counter(self._buffer, layout.RELEASE_ID_COUNTER, "allocate release id")
        stored = attrs.evolve(release, id=release_id)
        record = to_record(stored, f"{parent}/{release_id}")
        self._buffer.stage_conditional(insert_child(
            parent, str(release_id), record,
            lambda children: _check_release_unique(children, stored), "publish release"))
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
            found = self._buffer.ref(parent).order_by_child(field).equal_to(
                query_string_value(value)).get()
        children = _records_by_id(found)
        for key, record in self._buffer.pending_children(parent).items():
            if isinstance(record, dict) and record.get(field) == value:
                children[key] = record
        return [from_record(r, Release, tenant_id=tenant_id) for r in children.values()
                if isinstance(r, dict)]

    def find(self, tenant_id: str, scope: ReleaseScope, version: str) -> Release | None:
        """The release of that scope and version (index ``version``), or None."""
        for release in self._query(tenant_id, "version", version):
            if release.scope == scope:
                return release
        return None

    def list(self, tenant_id: str, module: str | None = None) -> Sequence[Release]:
        """The tenant's releases (index ``module`` when filtered), newest id first."""
        if module is None:
            releases = [from_record(r, Release, tenant_id=tenant_id)
                        for r in self._children(tenant_id).values() if isinstance(r, dict)]
        else:
            releases = self._query(tenant_id, "module", module)
        return sorted(releases, key=lambda release: release.id, reverse=True)

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> Sequence[Release]:
        """The tenant's releases after the id ``after``, by id (read whole)."""
        releases = [from_record(r, Release, tenant_id=tenant_id)
                    for r in self._children(tenant_id).values() if isinstance(r, dict)]
        return _page(((release.id, release) for release in releases), after, limit)

    def put(self, release: Release) -> Release:
        """Stage the release under its own id (create or replace; uniqueness re-checked at
        commit) and raise the backend-wide id counter to at least that id now."""
        if isinstance(release.id, bool) or not isinstance(release.id, int) or release.id < 1:
            raise BadRequestError(f"a release needs a positive id, got {release.id!r}")
        for value, what in ((release.module, "module"), (release.platform, "platform"),
                            (release.channel, "channel")):
            checked_key(value, what)
        if not _SHA256_HEX.match(release.sha256):
            raise BadRequestError("sha256 must be 64 lower-case hex digits",
                                  details={"field": "sha256"})
        if isinstance(release.size_bytes, bool) or release.size_bytes < 1:
            raise BadRequestError("size_bytes must be at least 1", details={"field": "size_bytes"})
        parent = tenant_path(release.tenant_id, layout.RELEASES)
        _check_release_unique(self._children(release.tenant_id), release)
        _follow_counter(self._buffer, layout.RELEASE_ID_COUNTER, release.id, "keep release id")
        self._buffer.stage_conditional(insert_child(
            parent, str(release.id), to_record(release, f"{parent}/{release.id}"),
            lambda children: _check_release_unique(children, release), "import release"))
        return release


def _check_release_unique(children: dict[str, Any], release: Release) -> None:
    for key, record in children.items():
        if not isinstance(record, dict) or key == str(release.id):
            continue
        if record.get("object_key") == release.object_key:
            raise DuplicateError("a release with this object_key exists",
                                 details={"object_key": release.object_key})
        same_scope = all(record.get(field) == getattr(release, field)
                         for field in ("module", "platform", "channel", "version"))
        if same_scope:
            raise DuplicateError(
                "this module, platform, channel and version is already published",
                details={"version": release.version},
            )


class RtdbAssignmentRepository:
    """Assignments at ``tenants/{t}/artifact_assignments/{module}/{platform}/{channel}/``
    ``default`` or ``users/{user_id}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    @staticmethod
    def _path(tenant_id: str, user_id: str | None, scope: ReleaseScope) -> str:
        parts = [checked_key(scope.module, "module"), checked_key(scope.platform, "platform"),
                 checked_key(scope.channel, "channel")]
        parts += ["default"] if user_id is None else ["users", checked_key(user_id, "user_id")]
        return tenant_path(tenant_id, layout.ASSIGNMENTS, *parts)

    def put(self, assignment: Assignment) -> Assignment:
        """Stage the assignment for its scope, replacing any previous one."""
        scope = ReleaseScope(assignment.module, assignment.platform, assignment.channel)
        path = self._path(assignment.tenant_id, assignment.user_id, scope)
        self._buffer.stage_write(path, to_record(assignment, path))
        return assignment

    def get(self, tenant_id: str, user_id: str | None, scope: ReleaseScope) -> Assignment | None:
        """The assignment of ``user_id`` (``None``: tenant default) for the scope, or None."""
        record = self._buffer.read(self._path(tenant_id, user_id, scope))
        if record is None:
            return None
        return from_record(record, Assignment, tenant_id=tenant_id, user_id=user_id)

    def scan(
        self,
        tenant_id: str,
        *,
        after: tuple[str | None, str, str, str] | None = None,
        limit: int = 500,
    ) -> Sequence[Assignment]:
        """The tenant's assignments after ``after``: defaults first, then by user id, module,
        platform, channel (the tenant's assignment tree is read whole)."""
        root = tenant_path(tenant_id, layout.ASSIGNMENTS)
        with map_rtdb_errors("scan assignments"):
            tree = self._buffer.ref(root).get()
        found: list[tuple[tuple[int, str, str, str, str], Assignment]] = []
        for module, platforms in children_of(tree).items():
            for platform, channels in children_of(platforms).items():
                for channel, node in children_of(channels).items():
                    scope = ReleaseScope(module, platform, channel)
                    holders: list[str | None] = []
                    if isinstance(children_of(node).get("default"), dict):
                        holders.append(None)
                    holders += [user for user, record
                                in children_of(children_of(node).get("users")).items()
                                if isinstance(record, dict)]
                    for user_id in holders:
                        assignment = self.get(tenant_id, user_id, scope)
                        if assignment is not None:
                            found.append((_assignment_key(user_id, scope), assignment))
        cursor = None if after is None else _assignment_key(
            after[0], ReleaseScope(after[1], after[2], after[3]))
        return _page(found, cursor, limit)


def _assignment_key(user_id: str | None, scope: ReleaseScope) -> tuple[int, str, str, str, str]:
    return (0 if user_id is None else 1, user_id or "", scope.module, scope.platform,
            scope.channel)


class RtdbDownloadAuditRepository:
    """Audit entries at ``tenants/{t}/download_audit/{id}``; ids from the tenant's counter."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def append(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Allocate an id now (race-free counter) and stage the entry."""
        counter = tenant_path(entry.tenant_id, layout.COUNTERS, layout.AUDIT)
        entry_id = _next_counter(self._buffer, counter, "allocate audit id")
        stored = attrs.evolve(entry, id=entry_id)
        path = tenant_path(entry.tenant_id, layout.AUDIT, str(entry_id))
        self._buffer.stage_write(path, to_record(stored, path))
        return stored

    def list(
        self, tenant_id: str, *, lease_id: str | None = None, limit: int = 100
    ) -> Sequence[DownloadAuditEntry]:
        """Newest first, at most ``limit`` (indexes ``id`` and ``lease_id``)."""
        if limit <= 0:
            return []
        parent = tenant_path(tenant_id, layout.AUDIT)
        with map_rtdb_errors("list audit entries"):
            query = self._buffer.ref(parent)
            if lease_id is None:
                found = query.order_by_child("id").limit_to_last(limit).get()
            else:
                found = query.order_by_child("lease_id").equal_to(
                    query_string_value(lease_id)).get()
        children = _records_by_id(found)
        for key, record in self._buffer.pending_children(parent).items():
            matches = isinstance(record, dict) and record.get("lease_id") == lease_id
            if lease_id is None or matches:
                children[key] = record
        entries = [from_record(r, DownloadAuditEntry, tenant_id=tenant_id)
                   for r in children.values() if isinstance(r, dict)]
        entries.sort(key=lambda entry: entry.id, reverse=True)
        return entries[:limit]

    def scan(
        self, tenant_id: str, *, after: int | None = None, limit: int = 500
    ) -> Sequence[DownloadAuditEntry]:
        """The tenant's entries after the id ``after``, by id (index ``id``, a page at most)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise BadRequestError(f"limit must be a non-negative integer, got {limit!r}")
        if limit == 0:
            return []
        parent = tenant_path(tenant_id, layout.AUDIT)
        with map_rtdb_errors("scan audit entries"):
            found = self._buffer.ref(parent).order_by_child("id").start_at(
                (after or 0) + 1).limit_to_first(limit).get()
        children = _records_by_id(found)
        children.update(self._buffer.pending_children(parent))
        entries = [from_record(r, DownloadAuditEntry, tenant_id=tenant_id)
                   for r in children.values() if isinstance(r, dict)]
        return _page(((entry.id, entry) for entry in entries), after, limit)

    def import_(self, entry: DownloadAuditEntry) -> DownloadAuditEntry:
        """Stage the entry under its own id (:class:`DuplicateError` when taken) and raise the
        tenant's audit counter to at least that id now."""
        if isinstance(entry.id, bool) or not isinstance(entry.id, int) or entry.id < 1:
            raise BadRequestError(f"an imported audit entry needs a positive id, got {entry.id!r}")
        path = tenant_path(entry.tenant_id, layout.AUDIT, str(entry.id))
        if self._buffer.read(path) is not None:
            raise DuplicateError(f"audit entry {entry.id} exists")
        counter = tenant_path(entry.tenant_id, layout.COUNTERS, layout.AUDIT)
        _follow_counter(self._buffer, counter, entry.id, "keep audit id")
        self._buffer.stage_conditional(create_if_absent(
            path, to_record(entry, path), lambda: DuplicateError(f"audit entry {entry.id} exists"),
            "import audit entry"))
        return entry
