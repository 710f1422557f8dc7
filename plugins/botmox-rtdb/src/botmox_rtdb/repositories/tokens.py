"""API tokens on RTDB: ``tenants/{t}/api_tokens/{id}`` and the hash lookup
``botmox_meta/api_token_hashes/{hash}``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from botmox_core.converter import format_timestamp
from botmox_core.errors import BadRequestError, DatabaseError, DuplicateError
from botmox_core.models import ApiToken
from botmox_rtdb import layout
from botmox_rtdb.layout import checked_key, tenant_path
from botmox_rtdb.records import from_record, to_record
from botmox_rtdb.repositories._support import _page, _tenant_children
from botmox_rtdb.transactions import UNCHANGED
from botmox_rtdb.write_buffer import ConditionalWrite, WriteBuffer, create_if_absent

__all__ = ["RtdbApiTokenRepository"]


class RtdbApiTokenRepository:
    """API tokens at ``tenants/{t}/api_tokens/{id}``; hash lookup via
    ``botmox_meta/api_token_hashes/{hash}``."""

    def __init__(self, buffer: WriteBuffer) -> None:
        self._buffer = buffer

    def add(self, token: ApiToken) -> None:
        """Stage the token; :class:`DuplicateError` now, or at commit if a racing writer took
        the id or hash first."""
        record_path = tenant_path(
            token.tenant_id, layout.API_TOKENS, checked_key(token.id, "token id")
        )
        hash_path = f"{layout.TOKEN_HASHES}/{checked_key(token.token_hash, 'token_hash')}"
        if self._buffer.read(hash_path) is not None:
            raise DuplicateError("an API token with this hash exists")
        if self._buffer.read(record_path) is not None:
            raise DuplicateError(f"API token {token.id!r} exists")
        pointer = {"tenant_id": token.tenant_id, "token_id": token.id}
        self._buffer.stage_conditional(
            create_if_absent(
                hash_path,
                pointer,
                lambda: DuplicateError("an API token with this hash exists"),
                "add api token",
            )
        )
        self._buffer.stage_conditional(
            create_if_absent(
                record_path,
                to_record(token, record_path),
                lambda: DuplicateError(f"API token {token.id!r} exists"),
                "add api token",
            )
        )

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
            record_path = tenant_path(
                str(tenant_id or ""), layout.API_TOKENS, checked_key(token_id, "id")
            )
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
            pending.pending_value = {**pending.pending_value, "revoked_at": format_timestamp(at)}
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

        self._buffer.stage_conditional(
            ConditionalWrite(
                path, apply, undo, path, {**current, "revoked_at": stamp}, "revoke api token"
            )
        )
        return True

    def scan(
        self, tenant_id: str, *, after: str | None = None, limit: int = 500
    ) -> Sequence[ApiToken]:
        """The tenant's tokens after ``after``, by id (the tenant's tokens are read whole)."""
        children = _tenant_children(self._buffer, tenant_path(tenant_id, layout.API_TOKENS))
        return _page(
            (
                (key, from_record(record, ApiToken, tenant_id=tenant_id))
                for key, record in children.items()
            ),
            after,
            limit,
        )
