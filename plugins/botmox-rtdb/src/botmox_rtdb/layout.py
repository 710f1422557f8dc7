"""Where every record lives in the RTDB tree, and the key rules applied to user input.

::

    tenants/{tenant_id}/
        vm_registry/{vm_uuid}                  Vm
        licenses/current                       Licence (the tenant's one licence)
        entitlements/{user_id}                 Entitlement (modules: {module: true})
        execution_leases/{lease_id}            Lease
        api_tokens/{token_id}                  ApiToken (hash only)
        artifact_releases/{release_id}         Release
        artifact_assignments/{module}/{platform}/{channel}/default          Assignment
        artifact_assignments/{module}/{platform}/{channel}/users/{user_id}  Assignment
        download_audit/{entry_id}              DownloadAuditEntry
        counters/download_audit                last audit entry id of the tenant
    botmox_meta/
        counters/release_id                    last release id (ids are unique backend-wide)
        api_token_hashes/{token_hash}          {tenant_id, token_id}: lookup by hash

Every value that becomes a path segment is checked with :func:`checked_key` first, so user input
can never address another location (``/``) or be refused half-way by the database.
"""

from __future__ import annotations

from botmox_core.errors import BadRequestError

__all__ = [
    "FORBIDDEN_KEY_CHARACTERS",
    "META",
    "TENANTS",
    "checked_key",
    "tenant_path",
]

FORBIDDEN_KEY_CHARACTERS = frozenset(".#$[]/")
MAX_KEY_BYTES = 768

TENANTS = "tenants"
META = "botmox_meta"

VM_REGISTRY = "vm_registry"
LICENCES = "licenses"
CURRENT_LICENCE = "current"
ENTITLEMENTS = "entitlements"
LEASES = "execution_leases"
API_TOKENS = "api_tokens"
RELEASES = "artifact_releases"
ASSIGNMENTS = "artifact_assignments"
AUDIT = "download_audit"
COUNTERS = "counters"
RELEASE_ID_COUNTER = f"{META}/counters/release_id"
TOKEN_HASHES = f"{META}/api_token_hashes"


def checked_key(value: object, what: str) -> str:
    """``value`` if it is usable as one RTDB key, else :class:`BadRequestError` ``INVALID_KEY``.

    A key is a non-empty string of at most 768 UTF-8 bytes without ``. # $ [ ] /`` or ASCII
    control characters.
    """
    if not isinstance(value, str) or value == "":
        raise BadRequestError(f"{what} must be a non-empty string", code="INVALID_KEY",
                              details={"field": what})
    bad = sorted({c for c in value if c in FORBIDDEN_KEY_CHARACTERS})
    if bad or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise BadRequestError(
            f"{what} must not contain '.', '#', '$', '[', ']', '/' or control characters",
            code="INVALID_KEY",
            details={"field": what, "forbidden": bad},
        )
    if len(value.encode("utf-8")) > MAX_KEY_BYTES:
        raise BadRequestError(f"{what} is longer than {MAX_KEY_BYTES} bytes", code="INVALID_KEY",
                              details={"field": what})
    return value


def tenant_path(tenant_id: str, *parts: str) -> str:
    """``tenants/{tenant_id}/{parts...}`` with ``tenant_id`` checked (the parts must be too)."""
    return "/".join((TENANTS, checked_key(tenant_id, "tenant_id"), *parts))
