"""What a command request may hold: limits, names, action lists, and the checked request.

Every check answers 400 ``BAD_REQUEST`` naming the field (``details[].field``).
"""

from __future__ import annotations

import re
from typing import Any

import attrs

from botmox_core.errors import BadRequestError, IdempotencyKeyReusedError
from botmox_core.models import Command

__all__ = [
    "ACTIONS",
    "COMMAND_TYPE_RE",
    "IDEMPOTENCY_KEY_RE",
    "MAX_CHUNK_BYTES",
    "MAX_OUTPUT_BYTES",
    "MAX_PAYLOAD_BYTES",
    "MAX_RESULT_BYTES",
    "PROXMOX_ACTIONS",
    "SYNCTHING_ACTIONS",
    "CommandRequest",
    "field_error",
]

#: Stored output per command (UTF-8 bytes of all chunks).
MAX_OUTPUT_BYTES = 16 * 1024 * 1024
#: One output chunk.
MAX_CHUNK_BYTES = 256 * 1024
MAX_PAYLOAD_BYTES = 64 * 1024
MAX_RESULT_BYTES = 256 * 1024
EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT = 10, 3600, 300
EXECUTION_TIMEOUT_MAX, EXECUTION_TIMEOUT_DEFAULT = 86400, 3600
COMMAND_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}(\.[a-z0-9][a-z0-9_-]{0,62}){0,4}$")
IDEMPOTENCY_KEY_RE = re.compile(r"^[A-Za-z0-9._:@/+=-]{1,128}$")

#: Proxmox actions the agents know (``POST /api/v1/vm-ops/proxmox/{action}``).
PROXMOX_ACTIONS = frozenset(
    {
        "start",
        "stop",
        "shutdown",
        "reset",
        "suspend",
        "resume",
        "clone",
        "delete",
        "list",
        "status",
        "config-get",
        "config-update",
        "resize-disk",
        "task-status",
        "wait-task",
    }
)
#: Syncthing actions (``POST /api/v1/vm-ops/syncthing/{action}``).
SYNCTHING_ACTIONS = frozenset(
    {
        "status",
        "config-get",
        "config-update",
        "scan",
        "pause",
        "resume",
        "restart",
        "add-device",
        "remove-device",
        "add-folder",
        "remove-folder",
    }
)


#: The action families with their own routes (``POST /api/v1/vm-ops/{family}/{action}``).
ACTIONS: dict[str, frozenset[str]] = {"proxmox": PROXMOX_ACTIONS, "syncthing": SYNCTHING_ACTIONS}


def field_error(field: str, message: str) -> BadRequestError:
    """400 naming ``field``."""
    return BadRequestError(f"{field}: {message}", details=[{"field": field, "message": message}])


def _bounded_int(value: Any, field: str, low: int, high: int, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise field_error(field, f"must be an integer from {low} to {high}")
    return value


@attrs.frozen
class CommandRequest:
    """A checked request to queue a command.

    Attributes:
        agent_id: the agent (1–64 characters; whether it exists is the service's question).
        command_type: dotted lower-case names (:data:`COMMAND_TYPE_RE`).
        payload: the JSON object payload (already bounded by the caller).
        expires_in_seconds: delivery timeout, 10–3600 (300).
        execution_timeout_seconds: 1–86400 (3600).
        idempotency_key: :data:`IDEMPOTENCY_KEY_RE`, or ``None``.
    """

    agent_id: str
    command_type: str
    payload: dict[str, Any]
    expires_in_seconds: int
    execution_timeout_seconds: int
    idempotency_key: str | None

    @classmethod
    def parse(
        cls,
        *,
        agent_id: Any,
        command_type: Any,
        payload: dict[str, Any],
        expires_in_seconds: Any,
        execution_timeout_seconds: Any,
        idempotency_key: Any,
    ) -> CommandRequest:
        """The request, checked field by field in this order; 400 for the first bad one."""
        if not isinstance(agent_id, str) or not agent_id or len(agent_id) > 64:
            raise field_error("agent_id", "required")
        if not isinstance(command_type, str) or not COMMAND_TYPE_RE.fullmatch(command_type):
            raise field_error(
                "command_type", "must be dotted lower-case names, e.g. proxmox.start (≤ 5 parts)"
            )
        expires_in = _bounded_int(
            expires_in_seconds, "expires_in_seconds", EXPIRES_MIN, EXPIRES_MAX, EXPIRES_DEFAULT
        )
        run_limit = _bounded_int(
            execution_timeout_seconds,
            "execution_timeout_seconds",
            1,
            EXECUTION_TIMEOUT_MAX,
            EXECUTION_TIMEOUT_DEFAULT,
        )
        if idempotency_key is not None and (
            not isinstance(idempotency_key, str)
            or not IDEMPOTENCY_KEY_RE.fullmatch(idempotency_key)
        ):
            raise field_error("idempotency_key", "must be 1-128 of A-Z a-z 0-9 . _ : @ / + = -")
        return cls(agent_id, command_type, payload, expires_in, run_limit, idempotency_key)

    def same_as(self, existing: Command) -> Command:
        """``existing`` (found by this request's idempotency key) if it has the same type and
        payload; 409 ``IDEMPOTENCY_KEY_REUSED`` otherwise."""
        if existing.command_type != self.command_type or existing.payload != self.payload:
            raise IdempotencyKeyReusedError(
                "this idempotency key was used for a command with another type or payload",
                details={"command_id": existing.id},
            )
        return existing
