"""Artifact assignments on RTDB:
``tenants/{t}/artifact_assignments/{module}/{platform}/{channel}/`` ``default`` or
``users/{user_id}``."""

from __future__ import annotations

from collections.abc import Sequence

from botmox_core.models import Assignment, ReleaseScope
from botmox_rtdb import layout
from botmox_rtdb.layout import checked_key, tenant_path
from botmox_rtdb.records import children_of, from_record, to_record
from botmox_rtdb.repositories._support import _page
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.write_buffer import WriteBuffer

__all__ = ["RtdbAssignmentRepository"]


class RtdbAssignmentRepository:
    """Assignments at ``tenants/{t}/artifact_assignments/{module}/{platform}/{channel}/``
    ``default`` or ``users/{user_id}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    @staticmethod
    def _path(tenant_id: str, user_id: str | None, scope: ReleaseScope) -> str:
        parts = [
            checked_key(scope.module, "module"),
            checked_key(scope.platform, "platform"),
            checked_key(scope.channel, "channel"),
        ]
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
                    holders += [
                        user
                        for user, record in children_of(children_of(node).get("users")).items()
                        if isinstance(record, dict)
                    ]
                    for user_id in holders:
                        assignment = self.get(tenant_id, user_id, scope)
                        if assignment is not None:
                            found.append((_assignment_key(user_id, scope), assignment))
        cursor = (
            None
            if after is None
            else _assignment_key(after[0], ReleaseScope(after[1], after[2], after[3]))
        )
        return _page(found, cursor, limit)


def _assignment_key(user_id: str | None, scope: ReleaseScope) -> tuple[int, str, str, str, str]:
    return (0 if user_id is None else 1, user_id or "", scope.module, scope.platform, scope.channel)
