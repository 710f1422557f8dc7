"""Records as they are stored in RTDB, built with botmox's shared converter.

Fields are the models' names in snake case, timestamps ISO 8601 UTC strings, enums their
values. ``None`` fields are not stored (RTDB deletes nulls), so absent means ``None``.
Entitlement modules are stored as ``{module: true}`` and read from that map or from a list,
as existing Bot-Mox data has both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from botmox_core.converter import get_converter, parse_timestamp
from botmox_core.errors import DatabaseError
from botmox_core.models import Entitlement
from botmox_rtdb.layout import checked_key

__all__ = ["checked_json", "children_of", "entitlement_from_record", "entitlement_to_record",
           "from_record", "to_record"]

T = TypeVar("T")


def checked_json(value: Any, what: str) -> Any:
    """``value`` if every object key inside it is a legal RTDB key (else ``INVALID_KEY``)."""
    if isinstance(value, Mapping):
        for key, member in value.items():
            checked_key(key, f"{what} key")
            checked_json(member, what)
    elif isinstance(value, list | tuple):
        for member in value:
            checked_json(member, what)
    return value


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def to_record(value: Any) -> dict[str, Any]:
    """The stored form of a model value (``None`` fields dropped)."""
    record = get_converter().unstructure(value)
    assert isinstance(record, dict)
    return {k: _without_nulls(v) for k, v in record.items() if v is not None}


def from_record(record: Any, model: type[T], **known: Any) -> T:
    """A model value from a stored record; ``known`` fills fields implied by the path.

    A record that does not fit the model is reported as :class:`DatabaseError` (corrupt or
    foreign data), never as a bare exception.
    """
    if not isinstance(record, dict):
        raise DatabaseError(f"stored {model.__name__} record is not an object")
    data = {**record, **known}
    try:
        return get_converter().structure(data, model)
    except Exception as exc:  # cattrs raises several types; all mean "not this model"
        raise DatabaseError(
            f"stored {model.__name__} record does not match the model ({type(exc).__name__})"
        ) from None


def entitlement_to_record(entitlement: Entitlement) -> dict[str, Any]:
    """``{"modules": {module: true}, "updated_at": ...}`` (module names checked as keys)."""
    modules = {checked_key(module, "module"): True for module in sorted(entitlement.modules)}
    record = to_record(entitlement)
    record["modules"] = modules
    return record


def entitlement_from_record(record: Any, tenant_id: str, user_id: str) -> Entitlement:
    """An entitlement from a record whose ``modules`` is a list or a ``{module: truthy}`` map."""
    if not isinstance(record, dict):
        raise DatabaseError("stored Entitlement record is not an object")
    raw = record.get("modules")
    if isinstance(raw, dict):
        modules = frozenset(name for name, allowed in raw.items() if allowed)
    elif isinstance(raw, list):
        modules = frozenset(str(name) for name in raw if name is not None)
    else:
        modules = frozenset()
    try:
        updated_at = parse_timestamp(record["updated_at"])
    except (KeyError, TypeError, ValueError):
        raise DatabaseError("stored Entitlement record has no valid updated_at") from None
    return Entitlement(tenant_id=tenant_id, user_id=user_id, modules=modules,
                       updated_at=updated_at)


def children_of(value: Any) -> dict[str, Any]:
    """The children of a node as a dict, whether RTDB answered an object or (for dense integer
    keys) an array with ``null`` gaps."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(index): child for index, child in enumerate(value) if child is not None}
    return {}
