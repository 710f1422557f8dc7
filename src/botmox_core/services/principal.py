"""Who is calling: the authenticated identity every service call carries, and who may do what
on the agent bus (the :class:`Permission` constants, checked by the services)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import attrs

from botmox_core.errors import BadRequestError, ForbiddenError
from botmox_core.models import Role

Clock = Callable[[], datetime]

_API, _ADMIN, _INFRA, _AGENT = Role.API, Role.ADMIN, Role.INFRA, Role.AGENT


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

    def authorize(self, permission: Permission) -> None:
        """:class:`ForbiddenError` (with the permission's refusal) unless the caller's role
        holds ``permission``."""
        if self.role not in permission.roles:
            raise ForbiddenError(permission.refusal)

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


@attrs.frozen
class Permission:
    """Roles allowed to do one thing, and what a refused caller is told.

    Attributes:
        roles: the roles that hold the permission.
        refusal: the 403 ``FORBIDDEN`` message for any other role.
    """

    roles: frozenset[Role]
    refusal: str = attrs.field(
        default=attrs.Factory(
            lambda self: (
                "this action needs role "
                + ", ".join(role.value for role in Role if role in self.roles)
            ),
            takes_self=True,
        )
    )


# The agent bus's role policy, in one place (docs/http-api.md lists the same per route). The
# services check these; the routes check nothing.

#: Create pairings (``POST /agents/pairings``).
PAIR_AGENTS = Permission(frozenset({_ADMIN, _INFRA}))
#: Heartbeat an agent other than oneself (``POST /agents/heartbeat``; an agent beats itself).
HEARTBEAT_OTHER_AGENTS = Permission(frozenset({_ADMIN, _INFRA}))
#: List the tenant's agents.
LIST_AGENTS = Permission(frozenset({_API, _ADMIN, _INFRA}))
#: Revoke an agent.
REVOKE_AGENTS = Permission(frozenset({_ADMIN, _INFRA}))
#: Queue a command of any type (``POST /vm-ops/commands``).
ENQUEUE_ANY_COMMAND = Permission(frozenset({_ADMIN, _INFRA}))
#: Queue a command at all (any other enqueue route narrows this further or not at all: the
#: Proxmox and Syncthing actions need only this).
ENQUEUE_COMMANDS = Permission(frozenset({_API, _ADMIN, _INFRA}), "agents cannot enqueue commands")
#: Direct infrastructure access (``POST /infra/{target}``).
USE_INFRA = Permission(
    frozenset({_ADMIN, _INFRA}), "/api/v1/infra is for admin and infra roles only"
)
#: Cancel a command.
CANCEL_COMMANDS = Permission(frozenset({_API, _ADMIN, _INFRA}))
#: Set a command's status (its own agent only; the service checks the ownership).
UPDATE_COMMAND_STATUS = Permission(
    frozenset({_AGENT}), "only the command's agent updates its status"
)
#: Long-poll for commands (``GET /commands/next``; an agent polls only for itself).
POLL_COMMANDS = Permission(frozenset({_AGENT}), "only agents poll for commands")
