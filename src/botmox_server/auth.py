"""Bearer authentication: operator API tokens (``bmx_...``, looked up by hash), agent tokens
(``bma_...``, role ``agent``, looked up by hash; refused once the agent is revoked) and JWTs signed
with a configured HS256 secret or a JWKS (Supabase Auth claims: ``sub`` is the user, the tenant is
``tenant_id`` or ``app_metadata.tenant_id``, the botmox role ``app_metadata.botmox_role`` or
``botmox_role``, default ``api``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import jwt

from botmox_core.config import Settings
from botmox_core.errors import UnauthorizedError
from botmox_core.models import Role
from botmox_core.ports import AgentTransport
from botmox_core.services import Principal, TokenService
from botmox_core.services.agents import AGENT_TOKEN_PREFIX, AgentService
from botmox_core.services.tokens import REVOCATION_CHANNEL

log = logging.getLogger(__name__)

MAX_HEADER = 8192


@contextlib.asynccontextmanager
async def hearing_revocations(
    transport: AgentTransport, tokens: TokenService
) -> AsyncIterator[None]:
    """While the block runs, a revocation announced by any replica or ``botmox admin token
    revoke`` on the agent transport (:data:`REVOCATION_CHANNEL`) empties this process's token
    cache at once. The transport must be started."""

    async def listen() -> None:
        async for message in transport.subscribe(REVOCATION_CHANNEL):
            log.info(
                "API token %s of tenant %s revoked elsewhere: token cache emptied",
                message.get("token_id"),
                message.get("tenant_id"),
            )
            tokens.forget_cached()

    task = asyncio.create_task(listen(), name="botmox-token-revocations")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` or raises ``UNAUTHORIZED``."""

    def __init__(
        self, settings: Settings, tokens: TokenService, agents: AgentService | None = None
    ) -> None:
        self._tokens = tokens
        self._agents = agents
        self._secret = settings.jwt_secret
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._jwks = jwt.PyJWKClient(settings.jwks_url) if settings.jwks_url else None

    def cached(self, header: str | None) -> Principal | None:
        """The principal of an API token verified within the revocation bound
        (:meth:`TokenService.cached`), without I/O: safe on the event loop. ``None`` means
        "call :meth:`authenticate`" (in a worker thread), never "refused"."""
        if not header or len(header) > MAX_HEADER:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer":
            return None
        return self._tokens.cached(token.strip())

    def authenticate(self, header: str | None) -> Principal:
        if not header:
            raise UnauthorizedError("missing bearer token")
        if len(header) > MAX_HEADER:
            raise UnauthorizedError("authorization header too long")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise UnauthorizedError("expected 'Authorization: Bearer <token>'")
        if token.startswith("bmx_"):
            return self._tokens.authenticate(token)
        if token.startswith(AGENT_TOKEN_PREFIX) and self._agents is not None:
            return self._agents.authenticate(token)
        if token.count(".") == 2 and (self._secret or self._jwks):
            return self._from_jwt(token)
        raise UnauthorizedError("invalid token")

    def _from_jwt(self, token: str) -> Principal:
        options = {"require": ["exp", "sub"], "verify_aud": self._audience is not None}
        try:
            if self._jwks is not None and not self._is_hs256(token):
                key: Any = self._jwks.get_signing_key_from_jwt(token).key
                algorithms = ["RS256", "ES256", "EdDSA"]
            elif self._secret:
                key, algorithms = self._secret, ["HS256"]
            else:
                raise UnauthorizedError("invalid token")
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options=options,  # type: ignore[arg-type]
            )
        except jwt.ExpiredSignatureError:
            raise UnauthorizedError("token expired") from None
        except (jwt.PyJWTError, ValueError):
            raise UnauthorizedError("invalid token") from None
        app_metadata = claims.get("app_metadata") or {}
        if not isinstance(app_metadata, dict):
            app_metadata = {}
        tenant = claims.get("tenant_id") or app_metadata.get("tenant_id")
        if not isinstance(tenant, str) or not tenant:
            raise UnauthorizedError("token has no tenant_id claim")
        role_name = app_metadata.get("botmox_role") or claims.get("botmox_role") or "api"
        try:
            role = Role(role_name)
        except ValueError:
            raise UnauthorizedError("token carries an unknown role") from None
        return Principal(tenant_id=tenant, role=role, user_id=str(claims["sub"]), subject="jwt")

    @staticmethod
    def _is_hs256(token: str) -> bool:
        try:
            return jwt.get_unverified_header(token).get("alg") == "HS256"
        except jwt.PyJWTError:
            return False
