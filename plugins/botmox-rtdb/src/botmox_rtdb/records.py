"""Records as they are stored in RTDB: the shared record codec (:mod:`botmox_core.records`)
with RTDB's hooks (:data:`CODEC`), plus what RTDB itself demands.

Fields are the models' names in snake case, timestamps ISO 8601 UTC strings (milliseconds),
enums their values. ``None`` fields are not stored (RTDB deletes nulls), so absent means ``None``.
Every record is built for its location (:func:`to_record` takes the path), so free-form
metadata that would nest past RTDB's 32 levels there is stored as JSON text instead, and a
record that would still be too deep is refused before anything is sent.
Entitlement modules are stored as ``{module: true}`` and read from that map or from a list,
as existing Bot-Mox data has both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, TypeVar

from botmox_core.converter import format_timestamp, get_converter, parse_timestamp
from botmox_core.errors import BadRequestError, DatabaseError
from botmox_core.models import Entitlement
from botmox_core.records import FieldHooks, RecordCodec, RecordHooks
from botmox_rtdb.layout import MAX_DEPTH, check_depth, checked_key, path_depth, value_depth

__all__ = ["CODEC", "children_of", "decode_metadata", "encode_metadata",
           "entitlement_from_record", "from_record", "to_record"]

T = TypeVar("T")


_ARRAY_INDEX = re.compile(r"^(0|[1-9][0-9]{0,9})$")
MAX_METADATA_DEPTH = 128
"""Deeper metadata is refused outright (400): far beyond what the core accepts (16) or RTDB
stores as objects (32), and shallow enough for the recursive converter and ``json.dumps``."""
_EXACT_INT_LIMIT = 2**53


def _survives_rtdb(value: Any) -> bool:
    """Whether RTDB gives ``value`` back unchanged: no nulls, no empty objects or arrays, no
    illegal keys, no object that would come back as an array, no integer beyond 2**53, no
    string that is not valid Unicode (lone surrogates)."""
    if value is None:
        return False
    if isinstance(value, bool):
        return True
    if isinstance(value, str):
        return _is_unicode(value)
    if isinstance(value, int):
        return abs(value) <= _EXACT_INT_LIMIT
    if isinstance(value, float):
        return value == value and value not in (float("inf"), float("-inf"))
    if isinstance(value, list | tuple):
        return bool(value) and all(_survives_rtdb(member) for member in value)
    if isinstance(value, Mapping):
        if not value or all(isinstance(k, str) and _ARRAY_INDEX.match(k) for k in value):
            return False
        for key, member in value.items():
            try:
                checked_key(key, "key")
            except BadRequestError:
                return False
            if not _survives_rtdb(member):
                return False
        return True
    return False


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def encode_metadata(metadata: Mapping[str, Any], max_depth: int = MAX_DEPTH) -> Any:
    """The stored form of a free-form JSON object: the object itself when RTDB keeps it
    exactly and it nests at most ``max_depth`` levels (what is left of RTDB's 32 below the
    place it is stored), else its JSON text (nulls, empty objects, arbitrary keys and any depth
    survive that way; escaped to ASCII if it holds lone surrogates, so the text sent is valid
    UTF-8)."""
    if not metadata:
        return None
    if value_depth(metadata) <= max_depth and _survives_rtdb(metadata):
        return dict(metadata)
    text = json.dumps(metadata, separators=(",", ":"), ensure_ascii=False)
    if not _is_unicode(text):
        text = json.dumps(metadata, separators=(",", ":"))
    return text


def decode_metadata(stored: Any) -> dict[str, Any]:
    """A metadata object from its stored form (object, or JSON text)."""
    if stored is None:
        return {}
    if isinstance(stored, str):
        try:
            decoded = json.loads(stored)
        except ValueError:
            raise DatabaseError("stored metadata is not valid JSON") from None
        stored = decoded
    if not isinstance(stored, dict):
        raise DatabaseError("stored metadata is not an object")
    return stored


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value


def _module_map(names: list[str], field: str) -> dict[str, bool]:
    """A string set as ``{name: true}`` (each name checked as a key)."""
    return {checked_key(name, field): True for name in names}


def _names(stored: Any) -> list[str]:
    """The names of a ``{name: truthy}`` map or a list (both exist in Bot-Mox data); none for
    anything else, or nothing stored (RTDB drops an empty map)."""
    if isinstance(stored, dict):
        return [name for name, allowed in stored.items() if allowed]
    if isinstance(stored, list):
        return [str(name) for name in stored if name is not None]
    return []


CODEC = RecordCodec(
    RecordHooks(
        timestamp=FieldHooks(lambda value, field: format_timestamp(value), parse_timestamp),
        # Free-form objects as the shared converter gives them; to_record then fits them to
        # the depth left at their path (encode_metadata).
        json_object=FieldHooks(lambda value, field: get_converter().unstructure(value),
                               decode_metadata),
        strings=FieldHooks(_module_map, _names),
    )
)
"""The RTDB backend's record codec."""


def to_record(value: Any, path: str) -> dict[str, Any]:
    """The stored form of a model value written at ``path`` (``None`` fields dropped,
    ``metadata`` encoded with :func:`encode_metadata` for the depth left below
    ``path/metadata``). :class:`BadRequestError` if the metadata nests more than
    :data:`MAX_METADATA_DEPTH` levels, or the record would still nest deeper than RTDB allows
    there (see :func:`~botmox_rtdb.layout.check_depth`)."""
    metadata_depth = value_depth(getattr(value, "metadata", None))
    if metadata_depth > MAX_METADATA_DEPTH:  # before the recursive converter and json.dumps
        raise BadRequestError(
            f"metadata nests {metadata_depth} levels; the RTDB backend stores at most "
            f"{MAX_METADATA_DEPTH}", details={"field": "metadata", "depth": metadata_depth,
                                              "max_depth": MAX_METADATA_DEPTH})
    record = CODEC.record(value)
    if "metadata" in record:
        room = MAX_DEPTH - path_depth(path) - 1
        record["metadata"] = encode_metadata(record["metadata"], room)
    stored = {k: _without_nulls(v) for k, v in record.items() if v is not None}
    check_depth(path, stored, type(value).__name__)
    return stored


def from_record(record: Any, model: type[T], **known: Any) -> T:
    """A model value from a stored record; ``known`` fills fields implied by the path.

    A record that does not fit the model is reported as :class:`DatabaseError` (corrupt or
    foreign data), never as a bare exception.
    """
    if not isinstance(record, dict):
        raise DatabaseError(f"stored {model.__name__} record is not an object")
    return CODEC.value(record, model, **known)


def entitlement_from_record(record: Any, tenant_id: str, user_id: str) -> Entitlement:
    """An entitlement from a record whose ``modules`` is a list, a ``{module: truthy}`` map or
    absent (no modules)."""
    modules = record.get("modules") if isinstance(record, dict) else None
    return from_record(record, Entitlement, tenant_id=tenant_id, user_id=user_id,
                       modules=modules)


def children_of(value: Any) -> dict[str, Any]:
    """The children of a node as a dict, whether RTDB answered an object or (for dense integer
    keys) an array with ``null`` gaps."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list):
        return {str(index): child for index, child in enumerate(value) if child is not None}
    return {}
