"""The ``modify`` invariant of every repository port, enforced in one place.

``modify(tenant_id, id, change)`` on a repository (leases, agents, commands) replaces a record with
``change(current)``. Every backend keeps the same rules, through these helpers:

* ``change`` must return a value of the same model as ``current``;
* it must keep the record's identity (``id`` and ``tenant_id``);
* a value equal to ``current`` is not written (``modify`` returns ``current``).

Breaking a rule is a :class:`~botmox_core.errors.BadRequestError` and nothing is written. A
backend reads ``current`` under its own lock or compare-and-set and calls :func:`checked_change`
(or :func:`modify_record`, which also skips the write of an unchanged value).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from botmox_core.errors import BadRequestError

__all__ = ["checked_change", "modify_record"]

M = TypeVar("M")

IDENTITY_FIELDS = ("id", "tenant_id")
"""The fields a change must keep."""


def checked_change(current: M, change: Callable[[M], M]) -> M:
    """``change(current)``, checked: :class:`BadRequestError` when it is not a value of
    ``current``'s model or alters its id or tenant. Exceptions of ``change`` propagate."""
    updated = change(current)
    model = type(current)
    noun = _noun(model.__name__)
    if not isinstance(updated, model):
        raise BadRequestError(
            f"{_a(noun)} change must return {_a(model.__name__)}, got {updated!r}"
        )
    if any(getattr(updated, name) != getattr(current, name) for name in IDENTITY_FIELDS):
        raise BadRequestError(f"{_a(noun)} change must not alter the {noun}'s id or tenant")
    return updated


def modify_record(current: M | None, change: Callable[[M], M], write: Callable[[M], M]) -> M | None:
    """The whole of ``modify`` once ``current`` is read (and locked): None when there is no
    record, ``current`` when the change leaves it equal (nothing written), else what
    ``write(updated)`` returns (the stored value)."""
    if current is None:
        return None
    updated = checked_change(current, change)
    if updated == current:
        return current
    return write(updated)


def _noun(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()


def _a(word: str) -> str:
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"
