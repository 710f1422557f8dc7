"""Input rules shared by the services: every field a caller sends is checked here before it
reaches a repository, so a bad value is a 400 ``BAD_REQUEST`` naming the field."""

from __future__ import annotations

import json
import re
from typing import Any

from botmox_core.errors import BadRequestError

VM_UUID_RE = re.compile(r"^[A-Za-z0-9:_-]{8,128}$")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
MAX_TEXT = 256
MAX_METADATA_BYTES = 16 * 1024


def invalid(field: str, message: str) -> BadRequestError:
    """A 400 ``BAD_REQUEST`` naming ``field`` (in the message and in ``details``)."""
    return BadRequestError(f"{field}: {message}", details=[{"field": field, "message": message}])


def vm_uuid(value: Any, field: str = "vm_uuid") -> str:
    """A VM id: 8–128 of ``[A-Za-z0-9:_-]``, returned lower-cased."""
    if not isinstance(value, str) or not VM_UUID_RE.match(value):
        raise invalid(field, "must be 8-128 characters of A-Z a-z 0-9 : _ -")
    return value.lower()


def name(value: Any, field: str) -> str:
    """A module, platform, channel or version name."""
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise invalid(field, "must be 1-128 characters of A-Z a-z 0-9 . _ - starting alphanumeric")
    return value


def identifier(value: Any, field: str) -> str:
    """A tenant or user id."""
    if not isinstance(value, str) or not ID_RE.match(value):
        raise invalid(
            field, "must be 1-128 characters of A-Z a-z 0-9 . _ : @ - starting alphanumeric"
        )
    return value


def optional_identifier(value: Any, field: str) -> str | None:
    return None if value is None else identifier(value, field)


def optional_text(value: Any, field: str, limit: int = MAX_TEXT) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise invalid(field, f"must be a string of at most {limit} characters")
    if any(ord(ch) < 32 for ch in value):
        raise invalid(field, "must not contain control characters")
    return value


def sha256_hex(value: Any, field: str = "sha256") -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value.lower()):
        raise invalid(field, "must be 64 hexadecimal characters")
    return value.lower()


def positive_int(value: Any, field: str, maximum: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise invalid(field, "must be a positive integer")
    return value


def metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, "must be a JSON object")
    try:
        encoded = json.dumps(value)
    except (TypeError, ValueError):
        raise invalid(field, "must be JSON-serialisable") from None
    if len(encoded) > MAX_METADATA_BYTES:
        raise invalid(field, f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return value


def choice(value: Any, field: str, enum_type: Any, default: Any = None) -> Any:
    if value is None and default is not None:
        return default
    try:
        return enum_type(value)
    except ValueError:
        allowed = "|".join(member.value for member in enum_type)
        raise invalid(field, f"must be one of {allowed}") from None
