"""Who is calling: the authenticated identity every service call carries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from botmox_core.errors import BadRequestError, ForbiddenError
from botmox_core.models import Role

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@attrs.frozen
class Principal:
    """An authenticated caller.

    Attributes:
        tenant_id: the one tenant of the request.
        role: the caller's role.
        user_id: the user the caller acts as, if any.
        subject: token id or JWT subject, for logs (never the secret).
    """

    tenant_id: str
    role: Role
    user_id: str | None = None
    subject: str | None = None

    def require(self, *roles: Role) -> None:
        """:class:`ForbiddenError` unless the caller has one of ``roles``."""
        if self.role not in roles:
            allowed = ", ".join(role.value for role in roles)
            raise ForbiddenError(f"this action needs role {allowed}")

    @property
    def is_operator(self) -> bool:
        return self.role in (Role.ADMIN, Role.INFRA)

    def acting_user(self, requested: str | None) -> str:
        """The user a request acts for: ``requested`` if the caller may act for others, else the
        caller's own user. Raises when neither is known or acting for another is not allowed.

        Operators (admin/infra) act for any user of their tenant; an ``api`` token bound to no
        user is a tenant service token and names the user it acts for; a caller bound to a
        user acts only for that user (``FORBIDDEN`` otherwise); agents act for no user.
        """
        if requested is None or requested == self.user_id:
            if self.user_id is None:
                raise BadRequestError(
                    "user_id: required when the token is not bound to a user",
                    details=[{"field": "user_id", "message": "required"}],
                )
            return self.user_id
        if self.is_operator or (self.role is Role.API and self.user_id is None):
            return requested
        raise ForbiddenError(
            "this token acts only for its own user"
            if self.user_id is not None
            else "acting for a user needs role api, admin or infra"
        )
