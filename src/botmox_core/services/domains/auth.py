"""``GET /auth/verify`` and ``GET /auth/whoami``: what the server makes of the caller's token."""

from __future__ import annotations

from typing import Any

from botmox_core.services.principal import Principal

__all__ = ["verify", "whoami"]


def verify(principal: Principal) -> dict[str, bool]:
    """``{valid: true}`` (an invalid token never gets here: it is a 401)."""
    return {"valid": True}


def whoami(principal: Principal) -> dict[str, Any]:
    """The caller: ``tenant_id``, ``role`` (and ``roles``, as the seed answered), ``user_id``
    (also as ``uid``) and the token ``subject`` (never the secret)."""
    return {
        "tenant_id": principal.tenant_id,
        "role": principal.role.value,
        "roles": [principal.role.value],
        "user_id": principal.user_id,
        "uid": principal.user_id,
        "subject": principal.subject,
    }
