"""Input rules shared by the services: every field a caller sends is checked here before it
reaches a repository, so a bad value is a 400 ``BAD_REQUEST`` naming the field.

Identifier rules match the *whole* value (``fullmatch``): a trailing newline, a NUL or a
Unicode look-alike never passes. JSON values (metadata, command payloads, results) are bounded in
depth as well as size, checked without recursion, so nothing a writer accepted can later crash a
reader (or exceed the 32-level depth of Firebase RTDB).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from botmox_core.errors import BadRequestError

VM_UUID_RE = re.compile(r"[A-Za-z0-9:_-]{8,128}", re.ASCII)
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", re.ASCII)
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}", re.ASCII)
SHA256_RE = re.compile(r"[0-9a-f]{64}", re.ASCII)
MAX_TEXT = 256
MAX_METADATA_BYTES = 16 * 1024
#: How deep a stored JSON value may nest (an object or array is one level). Firebase RTDB allows
#: 32 levels from its root; record paths use at most 6 of them, so 16 leaves room everywhere.
MAX_JSON_DEPTH = 16


def invalid(field: str, message: str) -> BadRequestError:
    """A 400 ``BAD_REQUEST`` naming ``field`` (in the message and in ``details``)."""
    return BadRequestError(f"{field}: {message}", details=[{"field": field, "message": message}])


def vm_uuid(value: Any, field: str = "vm_uuid") -> str:
    """A VM id: 8–128 of ``[A-Za-z0-9:_-]``, returned lower-cased."""
    if not isinstance(value, str) or not VM_UUID_RE.fullmatch(value):
        raise invalid(field, "must be 8-128 characters of A-Z a-z 0-9 : _ -")
    return value.lower()


def name(value: Any, field: str) -> str:
    """A module, platform, channel or version name."""
    if not isinstance(value, str) or not NAME_RE.fullmatch(value):
        raise invalid(field, "must be 1-128 characters of A-Z a-z 0-9 . _ - starting alphanumeric")
    return value


def identifier(value: Any, field: str) -> str:
    """A tenant or user id."""
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
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
    if any(ord(ch) < 32 or ord(ch) == 0x7F for ch in value):
        raise invalid(field, "must not contain control characters")
    if not _encodable(value):
        raise invalid(field, "must be valid Unicode text (no lone surrogates)")
    return value


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def sha256_hex(value: Any, field: str = "sha256") -> str:
    if not isinstance(value, str) or not SHA256_RE.fullmatch(value.lower()):
        raise invalid(field, "must be 64 hexadecimal characters")
    return value.lower()


def positive_int(value: Any, field: str, maximum: int = 2**63 - 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise invalid(field, "must be a positive integer")
    return value


def json_depth_error(value: Any, max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why ``value`` is not a plain JSON value at most ``max_depth`` levels deep, or ``None``.

    Iterative, so a value nested far past the interpreter's recursion limit is measured safely.
    Object keys must be strings; numbers must be finite.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > max_depth:
                return f"must nest at most {max_depth} levels deep"
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        return "object keys must be strings"
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, float) and not math.isfinite(item):
            return "numbers must be finite"
        elif not (item is None or isinstance(item, str | int | float | bool)):
            return "must hold only JSON values"
    return None


def json_object(
    value: Any, field: str, max_bytes: int, *, max_depth: int = MAX_JSON_DEPTH
) -> dict[str, Any]:
    """A JSON object (``None`` is ``{}``) of at most ``max_bytes`` encoded bytes and
    ``max_depth`` levels; anything else is a 400 naming ``field``."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise invalid(field, "must be a JSON object")
    problem = json_depth_error(value, max_depth)
    if problem is not None:
        raise invalid(field, problem)
    encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    if not _encodable(encoded):  # PostgreSQL's jsonb and RTDB refuse lone surrogates
        raise invalid(field, "must be valid Unicode text (no lone surrogates)")
    if len(encoded.encode()) > max_bytes:
        raise invalid(field, f"must be at most {max_bytes} bytes of JSON")
    return value


def metadata(value: Any, field: str = "metadata") -> dict[str, Any]:
    """VM (and similar) metadata: a JSON object of at most 16 KiB and 16 levels."""
    return json_object(value, field, MAX_METADATA_BYTES)


def choice(value: Any, field: str, enum_type: Any, default: Any = None) -> Any:
    if value is None and default is not None:
        return default
    try:
        return enum_type(value)
    except ValueError:
        allowed = "|".join(member.value for member in enum_type)
        raise invalid(field, f"must be one of {allowed}") from None
