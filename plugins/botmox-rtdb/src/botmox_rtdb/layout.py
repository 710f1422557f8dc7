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
can never address another location (``/``) or be refused half-way by the database. Paths are
kept as the keys themselves; :func:`url_path` percent-encodes them only where they become a
REST URL (``db.reference``), because the server percent-decodes URL paths but not the keys of a
multi-path ``update()`` body. :func:`check_depth` refuses a write deeper than RTDB's 32 levels
before anything is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from botmox_core.errors import BadRequestError

__all__ = [
    "FORBIDDEN_KEY_CHARACTERS",
    "MAX_DEPTH",
    "META",
    "TENANTS",
    "check_depth",
    "checked_key",
    "path_depth",
    "tenant_path",
    "url_path",
    "value_depth",
]

FORBIDDEN_KEY_CHARACTERS = frozenset(".#$[]/")
MAX_KEY_BYTES = 768
MAX_DEPTH = 32
"""How many keys deep, counted from the database root, RTDB stores a value (the Firebase limits
page: "Maximum depth of child nodes: 32"; the SDKs' ``MAX_PATH_DEPTH``)."""

_URL_SAFE = "!*'()"
"""Left as they are by :func:`url_path` besides letters, digits and ``-_.~``: exactly the
characters JavaScript's ``encodeURIComponent`` leaves, which the Firebase JS SDK uses for every
path segment of a REST URL."""

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
    control characters (and without lone surrogates, which have no UTF-8 form). Every other
    character (``% ? & + =``, spaces, non-ASCII...) is a legal key character and is kept exactly:
    :func:`url_path` encodes it for URLs.
    """
    if not isinstance(value, str) or value == "":
        raise BadRequestError(f"{what} must be a non-empty string", code="INVALID_KEY",
                              details={"field": what})
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequestError(f"{what} must be valid Unicode text (no lone surrogates)",
                              code="INVALID_KEY", details={"field": what}) from None
    bad = sorted({c for c in value if c in FORBIDDEN_KEY_CHARACTERS})
    if bad or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise BadRequestError(
            f"{what} must not contain '.', '#', '$', '[', ']', '/' or control characters",
            code="INVALID_KEY",
            details={"field": what, "forbidden": bad},
        )
    if len(encoded) > MAX_KEY_BYTES:
        raise BadRequestError(f"{what} is longer than {MAX_KEY_BYTES} bytes", code="INVALID_KEY",
                              details={"field": what})
    return value


def tenant_path(tenant_id: str, *parts: str) -> str:
    """``tenants/{tenant_id}/{parts...}`` with ``tenant_id`` checked (the parts must be too)."""
    return "/".join((TENANTS, checked_key(tenant_id, "tenant_id"), *parts))


def url_path(path: str) -> str:
    """``path`` as the path of a REST URL: each key percent-encoded (UTF-8) as the Firebase JS
    SDK does (``encodeURIComponent``), so the server, which percent-decodes URL paths, sees
    the keys exactly. Without this ``a%41`` would be read as ``aA``, and firebase-admin refuses
    ``?`` (and ``#``) in a path outright."""
    return "/".join(quote(segment, safe=_URL_SAFE) for segment in path.split("/") if segment)


def path_depth(path: str) -> int:
    """How many keys ``path`` has (``""`` and ``"/"`` are the root: 0)."""
    return sum(1 for segment in path.split("/") if segment)


def value_depth(value: Any) -> int:
    """How many levels ``value`` adds below its location: how many keys lead to its deepest
    stored leaf (0 for a primitive; ``null`` members and empty objects or arrays are not stored,
    so they add nothing). Computed without recursion, so any nesting is measured safely."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping):
            stack.extend((member, depth + 1) for member in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((member, depth + 1) for member in item)
        elif item is not None:
            deepest = max(deepest, depth)
    return deepest


def check_depth(path: str, value: Any, what: str) -> None:
    """Refuse (400 ``BAD_REQUEST``) to write ``value`` at ``path`` when its deepest key would be
    more than :data:`MAX_DEPTH` keys below the root, as RTDB would refuse the whole request."""
    depth = path_depth(path) + value_depth(value)
    if depth > MAX_DEPTH:
        raise BadRequestError(
            f"{what} would be stored {depth} levels deep; Firebase Realtime Database allows "
            f"at most {MAX_DEPTH} (counted from the database root)",
            details={"field": what, "depth": depth, "max_depth": MAX_DEPTH},
        )
