"""Secret vault routes (``docs/vault.md``): the seed's five, ciphertext in, metadata out.

``POST /secrets`` (201), ``GET /secrets/{id}/meta``, ``POST /secrets/{id}/rotate``,
``POST /secrets/bindings`` (201, upsert), ``GET /secrets/bindings?scope_type=&scope_id=``.
Who may call what is the vault service's rule; no answer here carries ciphertext, ``enc`` or a
nonce. Bodies are read as plain JSON so that every problem is a 400 naming the field.
"""

from __future__ import annotations

from typing import Any

from litestar import Controller, Response, get, post
from litestar.params import FromPath, FromQuery, JSONBody

from botmox_server.dependencies import Caller, Core
from botmox_server.envelope import ok

__all__ = ["SecretController"]


class SecretController(Controller):
    """``/api/v1/secrets``."""

    path = "/api/v1/secrets"
    tags = ("secrets",)

    @post("/", sync_to_thread=True)
    def create_secret(
        self, core: Core, principal: Caller, data: JSONBody[Any] = None
    ) -> Response[Any]:
        """Store a new secret (version 1): its metadata (admin/infra)."""
        return ok(core.vault.create(principal, data), 201)

    @get("/{secret_id:str}/meta", sync_to_thread=True)
    def secret_meta(self, secret_id: FromPath[str], core: Core, principal: Caller) -> Response[Any]:
        """The secret's metadata and version history (404 ``SECRET_NOT_FOUND``)."""
        return ok(core.vault.meta(principal, secret_id))

    @post("/{secret_id:str}/rotate", sync_to_thread=True, status_code=200)
    def rotate_secret(
        self, secret_id: FromPath[str], core: Core, principal: Caller, data: JSONBody[Any] = None
    ) -> Response[Any]:
        """Store the next version (check-and-set on ``expected_version``; admin/infra)."""
        return ok(core.vault.rotate(principal, secret_id, data))

    @post("/bindings", sync_to_thread=True)
    def bind_secret(
        self, core: Core, principal: Caller, data: JSONBody[Any] = None
    ) -> Response[Any]:
        """Bind a secret of the tenant to a scope's field (upsert; admin/infra)."""
        return ok(core.vault.bind(principal, data), 201)

    @get("/bindings", sync_to_thread=True)
    def list_bindings(
        self,
        core: Core,
        principal: Caller,
        scope_type: FromQuery[str | None] = None,
        scope_id: FromQuery[str | None] = None,
    ) -> Response[Any]:
        """The tenant's bindings, newest first."""
        return ok(core.vault.bindings(principal, scope_type, scope_id))
