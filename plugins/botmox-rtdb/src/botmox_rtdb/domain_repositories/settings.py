"""The settings tree on RTDB: one node, ``settings``, below the tenant's base."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from botmox_core.errors import BadRequestError
from botmox_rtdb.domain_codec import decode, encode
from botmox_rtdb.domain_repositories.paths import SETTINGS
from botmox_rtdb.domain_repositories.writes import DomainWrites, same_json
from botmox_rtdb.transactions import UNCHANGED

__all__ = ["RtdbSettingsRepository"]


class RtdbSettingsRepository:
    """The settings tree at ``settings``, modified by compare-and-set on that node."""

    def __init__(self, writes: DomainWrites) -> None:
        self._writes = writes

    def get(self, tenant_id: str) -> Mapping[str, Any] | None:
        """The whole tree, or ``None``."""
        raw = self._writes.read(self._writes.layout.path(tenant_id, SETTINGS))
        return None if raw is None else decode(raw)

    def modify(
        self, tenant_id: str, change: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        """Stage ``change(current)`` (``{}`` when absent), applied at commit by
        compare-and-set on the settings node; returns the new tree."""
        path = self._writes.layout.path(tenant_id, SETTINGS)
        result: list[dict[str, Any]] = []

        def step(raw: Any) -> Any:
            current = {} if raw is None else decode(raw)
            new = change(current)
            if not isinstance(new, Mapping):
                raise BadRequestError("a settings change must return an object")
            result[:] = [dict(new)]
            if raw is not None and same_json(dict(new), current):
                return UNCHANGED
            return encode(new, "settings")

        self._writes.modify(path, step, "settings")
        return result[0]
