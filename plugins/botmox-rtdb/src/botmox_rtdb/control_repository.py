"""The control entries on RTDB, at ``botmox_meta/control/{key}``, and the tenant list.

An entry is stored as ``{"json": "<the object as JSON text>", "updated_at": <epoch ms>}``, so
it reads back exactly (RTDB would drop nulls and empty containers and turn integer-keyed
objects into arrays); a deleted entry is ``{"json": "null"}``. ``modify`` is one ETag
compare-and-set transaction applied at once (not buffered to the unit's commit), so two tools
racing for the migration lock never both win.

The tenants are the keys of ``tenants/`` (one shallow read) plus the configured legacy tenant,
whose domain data lives at the root (:class:`~botmox_rtdb.domain_repositories.DomainLayout`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from botmox_core.errors import BadRequestError, DatabaseError
from botmox_core.ports.control import CONTROL_KEY_PATTERN
from botmox_rtdb import layout
from botmox_rtdb.sdk_errors import map_rtdb_errors
from botmox_rtdb.transactions import UNCHANGED, run_transaction
from botmox_rtdb.write_buffer import WriteBuffer

__all__ = ["CONTROL", "RtdbControlRepository"]

CONTROL = f"{layout.META}/control"


def _key(key: object) -> str:
    if not isinstance(key, str) or not CONTROL_KEY_PATTERN.fullmatch(key):
        raise BadRequestError("a control key is 1-64 of a-z 0-9 _ -", details={"field": "key"})
    return key


def _decode(stored: Any) -> dict[str, Any] | None:
    if stored is None:
        return None
    if not isinstance(stored, dict) or not isinstance(stored.get("json"), str):
        raise DatabaseError("stored control entry is malformed")
    value = json.loads(stored["json"])
    if value is not None and not isinstance(value, dict):
        raise DatabaseError("stored control entry is not an object")
    return value


class RtdbControlRepository:
    """:class:`~botmox_core.ports.control.ControlRepository` on RTDB."""

    def __init__(self, buffer: WriteBuffer, legacy_tenant: str | None) -> None:
        self._buffer = buffer
        self._legacy_tenant = legacy_tenant

    def get(self, key: str) -> Mapping[str, Any] | None:
        with map_rtdb_errors("read control entry"):
            return _decode(self._buffer.ref(f"{CONTROL}/{_key(key)}").get())

    def modify(
        self, key: str, change: Callable[[Mapping[str, Any] | None], Mapping[str, Any] | None]
    ) -> Mapping[str, Any] | None:
        result: list[dict[str, Any] | None] = []

        def update(stored: Any) -> Any:
            result.clear()
            current = _decode(stored)
            changed = change(current)
            if changed is not None and not isinstance(changed, Mapping):
                raise BadRequestError("a control entry is a JSON object", details={"field": key})
            value = None if changed is None else dict(changed)
            result.append(value)
            if value == current:
                return UNCHANGED
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
            return {"json": text, "updated_at": int(time.time() * 1000)}

        run_transaction(self._buffer.ref(f"{CONTROL}/{_key(key)}"), update, "modify control entry")
        return result[0] if result else None

    def tenants(self, *, after: str | None = None, limit: int = 1000) -> Sequence[str]:
        if limit <= 0:
            return []
        with map_rtdb_errors("list tenants"):
            found = self._buffer.ref(layout.TENANTS).get(shallow=True)
        names = set(found) if isinstance(found, dict) else set()
        if self._legacy_tenant:
            names.add(self._legacy_tenant)
        ordered = sorted(name for name in names if after is None or name > after)
        return ordered[:limit]
