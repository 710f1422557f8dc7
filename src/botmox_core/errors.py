"""The botmox error tree.

Every failure a caller can act on is a :class:`BotmoxError` carrying a stable machine ``code``
(the Bot-Mox v1 contract's codes), the HTTP ``status`` the server answers with, and whether a
retry can help. Backends map their SDK errors into this tree in one place each; the server turns
any ``BotmoxError`` into the contract's error envelope; the runner client raises the subclass
registered for the code it receives.

::

    BotmoxError
    ├── BadRequestError            400 BAD_REQUEST, INVALID_KEY
    │   └── PlaintextSecretRefusedError (a secret settings field written in plaintext)
    ├── UnauthorizedError          401 UNAUTHORIZED
    ├── ForbiddenError             403 FORBIDDEN and the 403 gating codes
    │   ├── VmInactiveError, VmOwnerMismatchError, LicenseInactiveError,
    │   ├── EntitlementRequiredError, ModuleNotAllowedError, LeaseOwnerMismatchError,
    │   ├── VmUuidMismatchError, ModuleMismatchError
    │   └── DownloadUrlInvalidError (tampered download URL)
    │       └── DownloadUrlExpiredError (download URL past its expiry)
    ├── NotFoundError              404 NOT_FOUND and the 404 lookup codes
    │   ├── VmNotRegisteredError, LeaseNotFoundError, ArtifactAssignmentNotFoundError,
    │   ├── ArtifactReleaseNotFoundError, ArtifactObjectNotFoundError
    │   ├── AgentNotFoundError, PairingNotFoundError, CommandNotFoundError
    │   └── SecretNotFoundError
    ├── ConflictError              409 CONFLICT and the 409 state codes
    │   ├── LeaseInactiveError, LeaseExpiredError, ArtifactScopeMismatchError,
    │   ├── ArtifactReleaseNotActiveError, ArtifactIntegrityError, DuplicateError
    │   ├── AgentRevokedError, AgentNotActiveError, AlreadyRevokedError, AgentOfflineError
    │   ├── InvalidCommandTransitionError, IdempotencyKeyReusedError
    │   └── SecretVersionConflictError
    ├── GoneError                  410 GONE
    │   └── PairingExpiredError
    ├── PayloadTooLargeError       413 PAYLOAD_TOO_LARGE
    │   └── CommandOutputLimitError
    ├── RateLimitedError           429 RATE_LIMITED (retryable, honours Retry-After)
    ├── UpstreamError              502 STORAGE_ERROR / DATABASE_ERROR (retryable)
    ├── NotSupportedError          501 NOT_SUPPORTED
    │   ├── AgentsNotSupportedError (the data backend has no agent/command repositories)
    │   ├── DomainsNotSupportedError (the data backend has no domain data repositories)
    │   └── VaultNotSupportedError (the data backend has no vault repositories)
    └── ServiceUnavailableError    503 SERVICE_UNAVAILABLE (retryable)
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AgentNotActiveError",
    "AgentNotFoundError",
    "AgentOfflineError",
    "AgentRevokedError",
    "AgentsNotSupportedError",
    "AlreadyRevokedError",
    "CommandNotFoundError",
    "CommandOutputLimitError",
    "GoneError",
    "IdempotencyKeyReusedError",
    "InvalidCommandTransitionError",
    "NotSupportedError",
    "PairingExpiredError",
    "PairingNotFoundError",
    "ArtifactAssignmentNotFoundError",
    "ArtifactIntegrityError",
    "ArtifactObjectNotFoundError",
    "ArtifactReleaseNotActiveError",
    "ArtifactReleaseNotFoundError",
    "ArtifactScopeMismatchError",
    "BadRequestError",
    "BotmoxError",
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "DownloadUrlExpiredError",
    "DomainsNotSupportedError",
    "DownloadUrlInvalidError",
    "DuplicateError",
    "EntitlementRequiredError",
    "ForbiddenError",
    "LeaseExpiredError",
    "LeaseInactiveError",
    "LeaseNotFoundError",
    "LeaseOwnerMismatchError",
    "LicenseInactiveError",
    "ModuleMismatchError",
    "ModuleNotAllowedError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitedError",
    "ServiceUnavailableError",
    "StorageError",
    "UnauthorizedError",
    "UpstreamError",
    "VmInactiveError",
    "VmNotRegisteredError",
    "VmOwnerMismatchError",
    "VmUuidMismatchError",
    "PlaintextSecretRefusedError",
    "SecretNotFoundError",
    "SecretVersionConflictError",
    "VaultNotSupportedError",
    "error_class_for_code",
]

_BY_CODE: dict[str, type[BotmoxError]] = {}


class BotmoxError(Exception):
    """Base of every botmox error.

    Attributes:
        code: stable UPPER_SNAKE machine code from the contract.
        status: HTTP status the server answers with.
        retryable: whether repeating the same call later can succeed.
        details: optional JSON-serialisable detail (validation errors, ids).
        request_id: the server's request id, when the error came over HTTP.
        retry_after: seconds to wait before retrying, when the server said so.
    """

    default_code: ClassVar[str] = "INTERNAL_ERROR"
    status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        code: str | None = None,
        details: Any = None,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.code.replace("_", " ").lower()
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self.message)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "default_code" in cls.__dict__:
            _BY_CODE.setdefault(cls.default_code, cls)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"

    def to_envelope(self) -> dict[str, Any]:
        """The contract's failure envelope for this error."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"success": False, "error": error}


class BadRequestError(BotmoxError):
    """The request is malformed or fails validation (400)."""

    default_code = "BAD_REQUEST"
    status = 400


class UnauthorizedError(BotmoxError):
    """Missing, malformed, forged or expired credentials (401)."""

    default_code = "UNAUTHORIZED"
    status = 401


class ForbiddenError(BotmoxError):
    """Authenticated, but not allowed (403)."""

    default_code = "FORBIDDEN"
    status = 403


class VmInactiveError(ForbiddenError):
    default_code = "VM_INACTIVE"


class VmOwnerMismatchError(ForbiddenError):
    default_code = "VM_OWNER_MISMATCH"


class LicenseInactiveError(ForbiddenError):
    default_code = "LICENSE_INACTIVE"


class EntitlementRequiredError(ForbiddenError):
    default_code = "ENTITLEMENT_REQUIRED"


class ModuleNotAllowedError(ForbiddenError):
    default_code = "MODULE_NOT_ALLOWED"


class LeaseOwnerMismatchError(ForbiddenError):
    default_code = "LEASE_OWNER_MISMATCH"


class VmUuidMismatchError(ForbiddenError):
    default_code = "VM_UUID_MISMATCH"


class ModuleMismatchError(ForbiddenError):
    default_code = "MODULE_MISMATCH"


class DownloadUrlInvalidError(ForbiddenError):
    """A download URL whose signature does not verify or whose expiry has passed."""

    default_code = "DOWNLOAD_URL_INVALID"


class DownloadUrlExpiredError(DownloadUrlInvalidError):
    """A download URL used after its expiry: resolve a new one."""

    default_code = "DOWNLOAD_URL_EXPIRED"


class NotFoundError(BotmoxError):
    default_code = "NOT_FOUND"
    status = 404


class VmNotRegisteredError(NotFoundError):
    default_code = "VM_NOT_REGISTERED"


class LeaseNotFoundError(NotFoundError):
    default_code = "LEASE_NOT_FOUND"


class ArtifactAssignmentNotFoundError(NotFoundError):
    default_code = "ARTIFACT_ASSIGNMENT_NOT_FOUND"


class ArtifactReleaseNotFoundError(NotFoundError):
    default_code = "ARTIFACT_RELEASE_NOT_FOUND"


class ArtifactObjectNotFoundError(NotFoundError):
    default_code = "ARTIFACT_OBJECT_NOT_FOUND"


class ConflictError(BotmoxError):
    default_code = "CONFLICT"
    status = 409


class LeaseInactiveError(ConflictError):
    default_code = "LEASE_INACTIVE"


class LeaseExpiredError(ConflictError):
    default_code = "LEASE_EXPIRED"


class ArtifactScopeMismatchError(ConflictError):
    default_code = "ARTIFACT_SCOPE_MISMATCH"


class ArtifactReleaseNotActiveError(ConflictError):
    default_code = "ARTIFACT_RELEASE_NOT_ACTIVE"


class ArtifactIntegrityError(ConflictError):
    """The stored object's sha256 or size differs from what the release declares."""

    default_code = "ARTIFACT_INTEGRITY_MISMATCH"


class DuplicateError(ConflictError):
    """A uniqueness rule was violated (same release version, same object key, ...)."""

    default_code = "DUPLICATE"


class PayloadTooLargeError(BotmoxError):
    default_code = "PAYLOAD_TOO_LARGE"
    status = 413


class RateLimitedError(BotmoxError):
    default_code = "RATE_LIMITED"
    status = 429
    retryable = True


class UpstreamError(BotmoxError):
    """A dependency (storage, database) failed; the request may succeed later (502)."""

    default_code = "UPSTREAM_ERROR"
    status = 502
    retryable = True


class StorageError(UpstreamError):
    default_code = "STORAGE_ERROR"


class DatabaseError(UpstreamError):
    default_code = "DATABASE_ERROR"


class ServiceUnavailableError(BotmoxError):
    default_code = "SERVICE_UNAVAILABLE"
    status = 503
    retryable = True


def error_class_for_code(code: str, status: int) -> type[BotmoxError]:
    """The most specific error class for a wire ``code``, falling back on the HTTP ``status``."""
    if code in _BY_CODE:
        return _BY_CODE[code]
    for cls in (
        BadRequestError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        GoneError,
        PayloadTooLargeError,
        RateLimitedError,
        UpstreamError,
        NotSupportedError,
        ServiceUnavailableError,
    ):
        if cls.status == status:
            return cls
    return BotmoxError


class ConfigurationError(BotmoxError):
    """The operator's configuration is missing, malformed or names an unknown plugin."""

    default_code = "CONFIGURATION_ERROR"
    status = 500


# -- agents and commands -------------------------------------------------------------------


class AgentNotFoundError(NotFoundError):
    default_code = "AGENT_NOT_FOUND"


class PairingNotFoundError(NotFoundError):
    """No unused pairing with that code (never issued, or already used)."""

    default_code = "PAIRING_NOT_FOUND"


class CommandNotFoundError(NotFoundError):
    default_code = "COMMAND_NOT_FOUND"


class GoneError(BotmoxError):
    default_code = "GONE"
    status = 410


class PairingExpiredError(GoneError):
    default_code = "PAIRING_EXPIRED"


class AgentRevokedError(ConflictError):
    default_code = "AGENT_REVOKED"


class AgentNotActiveError(ConflictError):
    """The agent has not registered yet (pairing still pending)."""

    default_code = "AGENT_NOT_ACTIVE"


class AlreadyRevokedError(ConflictError):
    default_code = "ALREADY_REVOKED"


class AgentOfflineError(ConflictError):
    """The agent is not active, or has no live connection and no recent heartbeat."""

    default_code = "AGENT_OFFLINE"


class InvalidCommandTransitionError(ConflictError):
    """The command cannot move from its current state to the requested one."""

    default_code = "INVALID_COMMAND_TRANSITION"


class IdempotencyKeyReusedError(ConflictError):
    """The idempotency key names a command with another type or payload."""

    default_code = "IDEMPOTENCY_KEY_REUSED"


class CommandOutputLimitError(PayloadTooLargeError):
    """The command's stored output would exceed the per-command limit."""

    default_code = "OUTPUT_LIMIT_EXCEEDED"


class NotSupportedError(BotmoxError):
    default_code = "NOT_SUPPORTED"
    status = 501


class AgentsNotSupportedError(NotSupportedError):
    """The configured data backend has no agent and command repositories."""

    default_code = "AGENTS_NOT_SUPPORTED"


class DomainsNotSupportedError(NotSupportedError):
    """The configured data backend has no domain data repositories (resources, workspace,
    bots, finance, settings)."""

    default_code = "DOMAINS_NOT_SUPPORTED"


# -- secret vault -----------------------------------------------------------------------------


class SecretNotFoundError(NotFoundError):
    """No such secret in the caller's tenant (also for a malformed or another tenant's id)."""

    default_code = "SECRET_NOT_FOUND"


class PlaintextSecretRefusedError(BadRequestError):
    """A settings field that holds a secret was written in plaintext: seal the secret to the
    agents and bind it (``POST /api/v1/secrets``, ``POST /api/v1/secrets/bindings``)."""

    default_code = "PLAINTEXT_SECRET_REFUSED"


class SecretVersionConflictError(ConflictError):
    """A rotation's ``expected_version`` is not the secret's current version."""

    default_code = "SECRET_VERSION_CONFLICT"


class VaultNotSupportedError(NotSupportedError):
    """The configured data backend has no vault repositories (secrets, bindings)."""

    default_code = "VAULT_NOT_SUPPORTED"
