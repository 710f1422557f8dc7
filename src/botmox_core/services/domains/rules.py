"""Field rules of domain entities and settings: a small schema language.

A :data:`Rule` takes a value and the name of the field it sits in, and answers the value to
store (strings trimmed, numbers given as numeric strings turned into numbers, as the Bot-Mox
contract's schemas do) or raises a 400 ``BAD_REQUEST`` naming the field (nested fields as
``character.level``, array items as ``tags[2]``). Objects pass unknown fields through unchanged.

:func:`clean_json` checks a whole JSON value the way every backend can store it (keys by
:func:`~botmox_core.domain.patching.key_error`, depth, no NUL, integers within 2**53) and is
applied to every body before any rule.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from botmox_core.domain.patching import key_error
from botmox_core.errors import BadRequestError
from botmox_core.services import validation as check

__all__ = [
    "MAX_SAFE_INTEGER",
    "Rule",
    "anything",
    "array",
    "boolean",
    "choice",
    "clean_json",
    "encoded_size",
    "integer",
    "invalid",
    "nullable",
    "number",
    "obj",
    "one_of",
    "record_of",
    "text",
    "timestamp",
]

Rule = Callable[[Any, str], Any]
"""Checks ``value`` found in ``field``; answers the value to store or raises a 400."""

#: Integers beyond this lose precision on RTDB (JSON numbers are doubles there): refused.
MAX_SAFE_INTEGER = 2**53 - 1


def invalid(field: str, message: str) -> BadRequestError:
    """A 400 naming ``field`` (see :func:`botmox_core.services.validation.invalid`)."""
    return check.invalid(field, message)


def child(field: str, key: str) -> str:
    return f"{field}.{key}" if field else key


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def text(
    *,
    min_len: int = 0,
    max_len: int | None = None,
    trim: bool = True,
    pattern: re.Pattern[str] | None = None,
    pattern_message: str = "has the wrong format",
) -> Rule:
    """A string (trimmed unless ``trim=False``) of ``min_len``-``max_len`` characters, matching
    ``pattern`` (whole) when given."""

    def rule(value: Any, field: str) -> Any:
        if not isinstance(value, str):
            raise invalid(field, f"must be a string, not {_type_name(value)}")
        result = value.strip() if trim else value
        if len(result) < min_len:
            raise invalid(
                field, "must not be empty" if min_len == 1 else f"needs {min_len}+ characters"
            )
        if max_len is not None and len(result) > max_len:
            raise invalid(field, f"must be at most {max_len} characters")
        if pattern is not None and not pattern.fullmatch(result):
            raise invalid(field, pattern_message)
        return result

    return rule


def choice(*allowed: str) -> Rule:
    """One of ``allowed`` (exactly, no trimming)."""
    options = frozenset(allowed)

    def rule(value: Any, field: str) -> Any:
        if not isinstance(value, str) or value not in options:
            raise invalid(field, "must be one of " + "|".join(allowed))
        return value

    return rule


def _as_number(value: Any, field: str) -> float | int:
    """A JSON number, or a string holding one (the contract's schemas coerce)."""
    if isinstance(value, bool) or value is None:
        raise invalid(field, f"must be a number, not {_type_name(value)}")
    if isinstance(value, int | float):
        number: float | int = value
    elif isinstance(value, str) and value.strip():
        try:
            number = int(value.strip())
        except ValueError:
            try:
                number = float(value.strip())
            except ValueError:
                raise invalid(field, "must be a number") from None
    else:
        raise invalid(field, f"must be a number, not {_type_name(value)}")
    if isinstance(number, float):
        if not math.isfinite(number):
            raise invalid(field, "must be a finite number")
        if number.is_integer() and abs(number) <= MAX_SAFE_INTEGER:
            number = int(number)
    if isinstance(number, int) and abs(number) > MAX_SAFE_INTEGER:
        raise invalid(field, f"must be within +-{MAX_SAFE_INTEGER}")
    return number


def integer(minimum: int | None = None, maximum: int | None = None) -> Rule:
    """An integer in ``[minimum, maximum]`` (numeric strings accepted)."""

    def rule(value: Any, field: str) -> Any:
        number = _as_number(value, field)
        if not isinstance(number, int):
            raise invalid(field, "must be an integer")
        if minimum is not None and number < minimum:
            raise invalid(field, f"must be at least {minimum}")
        if maximum is not None and number > maximum:
            raise invalid(field, f"must be at most {maximum}")
        return number

    return rule


def number(
    minimum: float | None = None, maximum: float | None = None, *, positive: bool = False
) -> Rule:
    """A finite number (numeric strings accepted), ``> 0`` when ``positive``."""

    def rule(value: Any, field: str) -> Any:
        result = _as_number(value, field)
        if positive and result <= 0:
            raise invalid(field, "must be greater than 0")
        if minimum is not None and result < minimum:
            raise invalid(field, f"must be at least {minimum}")
        if maximum is not None and result > maximum:
            raise invalid(field, f"must be at most {maximum}")
        return result

    return rule


def timestamp() -> Rule:
    """Epoch milliseconds: a non-negative integer."""
    return integer(0)


def boolean() -> Rule:
    def rule(value: Any, field: str) -> Any:
        if not isinstance(value, bool):
            raise invalid(field, f"must be true or false, not {_type_name(value)}")
        return value

    return rule


def anything() -> Rule:
    """Any JSON value (already checked by :func:`clean_json`)."""
    return lambda value, field: value


def nullable(inner: Rule) -> Rule:
    """``null`` or what ``inner`` accepts."""
    return lambda value, field: None if value is None else inner(value, field)


def one_of(*rules: Rule, message: str) -> Rule:
    """The first of ``rules`` that accepts the value; else a 400 with ``message``."""

    def rule(value: Any, field: str) -> Any:
        for candidate in rules:
            try:
                return candidate(value, field)
            except BadRequestError:
                continue
        raise invalid(field, message)

    return rule


def array(item: Rule, *, max_items: int | None = None) -> Rule:
    """A JSON array whose items ``item`` accepts."""

    def rule(value: Any, field: str) -> Any:
        if not isinstance(value, list):
            raise invalid(field, f"must be an array, not {_type_name(value)}")
        if max_items is not None and len(value) > max_items:
            raise invalid(field, f"must have at most {max_items} items")
        return [item(entry, f"{field}[{index}]") for index, entry in enumerate(value)]

    return rule


def obj(
    fields: Mapping[str, Rule],
    *,
    required: Iterable[str] = (),
    empty_message: str | None = None,
) -> Rule:
    """A JSON object: ``fields`` checked when present, ``required`` ones present, unknown
    fields passed through; non-empty when ``empty_message`` is given."""
    needed = tuple(required)

    def rule(value: Any, field: str) -> Any:
        if empty_message is not None and (value is None or value == {}):
            raise invalid(field or "body", empty_message)
        if not isinstance(value, dict):
            raise invalid(field or "body", f"must be a JSON object, not {_type_name(value)}")
        for name in needed:
            if value.get(name) is None:
                raise invalid(child(field, name), "is required")
        result = dict(value)
        for name, inner in fields.items():
            if name in result:
                result[name] = inner(result[name], child(field, name))
        return result

    return rule


def record_of(entry: Rule, *, empty_message: str | None = None) -> Rule:
    """A JSON object whose every value ``entry`` accepts (keys are free)."""

    def rule(value: Any, field: str) -> Any:
        if not isinstance(value, dict):
            raise invalid(field or "body", f"must be a JSON object, not {_type_name(value)}")
        if empty_message is not None and not value:
            raise invalid(field or "body", empty_message)
        return {key: entry(item, child(field, key)) for key, item in value.items()}

    return rule


def clean_json(value: Any, field: str, *, max_depth: int = check.MAX_JSON_DEPTH) -> Any:
    """``value`` checked as JSON every backend stores alike, with integral floats made integers
    (``2.0`` is ``2``: RTDB cannot tell them apart). Refused (400 naming the field): object keys
    failing :func:`key_error`, nesting deeper than ``max_depth`` (``value`` itself is level 1),
    NUL characters and lone surrogates in strings (PostgreSQL ``jsonb`` refuses them), numbers
    that are not finite or beyond +-2**53. Iterative: no recursion limit to hit."""
    root: list[Any] = [None]
    stack: list[tuple[Any, list[Any] | dict[str, Any], Any, str, int]] = [
        (value, root, 0, field, 1)
    ]
    while stack:
        item, parent, slot, where, depth = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise invalid(where or "body", f"must nest at most {max_depth} levels deep")
            copy: dict[str, Any] = {}
            for key, inner in item.items():
                problem = key_error(key)
                if problem is not None:
                    raise invalid(where or "body", problem)
                copy[key] = None
                stack.append((inner, copy, key, child(where, key), depth + 1))
            parent[slot] = copy
        elif isinstance(item, list):
            if depth > max_depth:
                raise invalid(where or "body", f"must nest at most {max_depth} levels deep")
            items: list[Any] = [None] * len(item)
            for index, inner in enumerate(item):
                stack.append((inner, items, index, f"{where}[{index}]", depth + 1))
            parent[slot] = items
        elif isinstance(item, str):
            if "\x00" in item:
                raise invalid(where or "body", "must not contain NUL characters")
            if not _encodable(item):
                raise invalid(where or "body", "must be valid Unicode text (no lone surrogates)")
            parent[slot] = item
        elif isinstance(item, bool) or item is None:
            parent[slot] = item
        elif isinstance(item, int | float):
            parent[slot] = _as_number(item, where or "body")
        else:
            raise invalid(where or "body", "must hold only JSON values")
    return root[0]


def _encodable(text_value: str) -> bool:
    try:
        text_value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encoded_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
