"""The record codec: model values to stored records and back, one codec per backend.

Every data backend stores the attrs models of :mod:`botmox_core.models` as records: a dict from
field name to stored value (a row's columns, a document's keys). What differs between backends
is how three kinds of value are stored, so a backend gives exactly those as
:class:`RecordHooks`; everything else is the same for all of them and is built here, once per
model, on a copy of the shared cattrs converter (:func:`botmox_core.converter.get_converter`):

* **timestamps** (``datetime`` fields): naive datetimes are refused with
  :class:`~botmox_core.errors.BadRequestError` before the backend's hook sees them;
* **JSON objects** (``dict[str, Any]`` fields: metadata, payload, result);
* **string collections** (``frozenset[str]``: a set, handed to the hook sorted and without
  duplicates; ``tuple[str, ...]``: a list in order). Members that are not strings are refused.

Enums are stored as their values (a member or a valid value is accepted; anything else is a
:class:`~botmox_core.errors.BadRequestError` naming the allowed values). Other fields (text,
numbers) pass through unchanged: the database refuses what it cannot store. ``None`` in an
optional field is stored as ``None`` and never reaches a hook.

Reading is strict: a stored record that does not fit its model (a missing field, an unknown
enum value, an unreadable timestamp) is a :class:`~botmox_core.errors.DatabaseError` naming the
model, never a bare exception. Unknown extra fields are ignored.
"""

from __future__ import annotations

import enum
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import attrs
from cattrs import Converter
from cattrs.fns import identity
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from botmox_core.converter import get_converter
from botmox_core.errors import BadRequestError, DatabaseError

__all__ = ["FieldHooks", "RecordCodec", "RecordHooks", "enum_value"]

M = TypeVar("M")
E = TypeVar("E", bound=enum.Enum)


@attrs.frozen
class FieldHooks:
    """How one kind of value is stored: ``encode(value, field)`` returns the stored form (and
    raises :class:`~botmox_core.errors.BadRequestError` for a value the backend cannot store);
    ``decode(stored)`` returns the value, raising ``ValueError``/``TypeError`` for a stored form
    it cannot read."""

    encode: Callable[[Any, str], Any]
    decode: Callable[[Any], Any]


@attrs.frozen
class RecordHooks:
    """A backend's stored forms of the three kinds of value that differ between backends.

    Attributes:
        timestamp: an aware ``datetime`` (never naive, never ``None``) to its stored form.
        json_object: a ``dict`` (checked to be one) to its stored form.
        strings: a ``list[str]`` (a set's members sorted) to its stored form; ``decode`` gives
            any iterable of strings.
    """

    timestamp: FieldHooks
    json_object: FieldHooks
    strings: FieldHooks


def enum_value(kind: type[E], value: Any, *, field: str) -> Any:
    """The stored value of ``value`` (a member of ``kind`` or one of its values);
    :class:`BadRequestError` naming the allowed values otherwise (``field`` names the value in
    the message: ``agent status 'retired' is not one of pending, active, revoked``)."""
    try:
        return kind(value).value
    except ValueError:
        allowed = ", ".join(str(member.value) for member in kind)
        raise BadRequestError(f"{field} {value!r} is not one of {allowed}") from None


class RecordCodec:
    """Model values to records and back for one backend (see the module docstring).

    Build one per backend, once (it compiles a pair of functions per model on first use), and
    share it: it holds no per-call state.
    """

    def __init__(self, hooks: RecordHooks, converter: Converter | None = None) -> None:
        self.hooks = hooks
        self._base = converter
        self._copy: Converter | None = None
        self._encoders: dict[type, Callable[[Any], dict[str, Any]]] = {}
        self._decoders: dict[type, Callable[[Mapping[str, Any], Any], Any]] = {}

    def record(self, value: Any) -> dict[str, Any]:
        """The stored record of a model value: a new dict from field name to stored value."""
        model = type(value)
        encode = self._encoders.get(model)
        if encode is None:
            encode = self._encoders[model] = self._make_encoder(model)
        return encode(value)

    def value(self, record: Mapping[str, Any], model: type[M], **known: Any) -> M:
        """The model value of a stored record; ``known`` fills (or overrides) fields the
        backend knows from where the record is stored. :class:`DatabaseError` when the record
        does not fit the model."""
        decode = self._decoders.get(model)
        if decode is None:
            decode = self._decoders[model] = self._make_decoder(model)
        data = {**record, **known} if known else record
        try:
            return decode(data, model)  # type: ignore[no-any-return]
        except (ValueError, TypeError, KeyError, AttributeError, DatabaseError) as exc:
            detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
            raise DatabaseError(
                f"a stored {_words(model.__name__)} record is malformed: {detail}"
            ) from exc

    def fields(self, model: type[Any]) -> tuple[str, ...]:
        """The field names of ``model``, in declaration order (the record's keys)."""
        return tuple(field.name for field in attrs.fields(model))

    # -- building the per-model functions ---------------------------------------------------

    @property
    def _converter(self) -> Converter:
        """A copy of the shared converter, taken on first use (after plugins extended it)."""
        if self._copy is None:
            self._copy = (self._base or get_converter()).copy(detailed_validation=False)
        return self._copy

    def _make_encoder(self, model: type[Any]) -> Callable[[Any], dict[str, Any]]:
        if not attrs.has(model):
            raise TypeError(f"not a botmox model: {model!r}")
        attrs.resolve_types(model)
        what = _words(model.__name__)
        overrides = {}
        for field in attrs.fields(model):
            hook = self._encoder_for(what, field.name, field.type)
            if hook is not None:
                overrides[field.name] = override(unstruct_hook=hook)
        return _make_unstructure_fn(model, self._converter, **overrides)  # type: ignore[no-any-return]

    def _make_decoder(self, model: type[Any]) -> Callable[[Mapping[str, Any], Any], Any]:
        attrs.resolve_types(model)
        overrides = {}
        for field in attrs.fields(model):
            hook = self._decoder_for(field.type)
            if hook is not None:
                overrides[field.name] = override(struct_hook=hook)
        return _make_structure_fn(  # type: ignore[no-any-return]
            model, self._converter, _cattrs_detailed_validation=False, **overrides
        )

    def _encoder_for(self, what: str, name: str, kind: Any) -> Callable[[Any], Any] | None:
        inner, optional = _unwrap_optional(kind)
        if inner in _PLAIN:  # stored as they are: the database refuses what it cannot store
            return identity
        if inner is datetime:  # the most common kind: one function, no wrapper for None
            return _timestamp_encoder(name, self.hooks.timestamp.encode, optional)
        encode: Callable[[Any], Any] | None
        if isinstance(inner, type) and issubclass(inner, enum.Enum):
            encode = _enum_encoder(inner, f"{what} {name}")
        else:
            encode = self._base_encoder(name, inner)
        if encode is None or not optional:
            return encode
        present = encode
        return lambda value: None if value is None else present(value)

    def _base_encoder(self, name: str, kind: Any) -> Callable[[Any], Any] | None:
        hooks = self.hooks
        if _is_json_object(kind):
            encode_object = hooks.json_object.encode

            def json_object(value: Any) -> Any:
                if not isinstance(value, dict):
                    raise BadRequestError(
                        f"{name} must be a JSON object, got {type(value).__name__}"
                    )
                return encode_object(value, name)

            return json_object
        collection = _string_collection(kind)
        if collection is not None:
            encode_strings = hooks.strings.encode

            def strings(value: Any) -> Any:
                members = list(value) if isinstance(value, Iterable) else [value]
                if isinstance(value, str | bytes) or not all(isinstance(m, str) for m in members):
                    raise BadRequestError(f"{name} must be a collection of strings")
                return encode_strings(
                    sorted(set(members)) if collection is frozenset else members, name
                )

            return strings
        return None  # the shared converter's own hook (types a plugin registered ...)

    def _decoder_for(self, kind: Any) -> Callable[[Any, Any], Any] | None:
        inner, optional = _unwrap_optional(kind)
        if inner in _PLAIN:  # required ones: the converter's own (str(), int()), the fastest
            return _optional_plain_decoder(inner) if optional else None
        if inner is datetime:
            decode_timestamp = self.hooks.timestamp.decode
            if optional:
                return lambda stored, _: None if stored is None else decode_timestamp(stored)
            return lambda stored, _: decode_timestamp(stored)
        decode = self._base_decoder(inner)
        if decode is None or not optional:
            return decode
        return lambda stored, _: None if stored is None else decode(stored, _)

    def _base_decoder(self, kind: Any) -> Callable[[Any, Any], Any] | None:
        hooks = self.hooks
        if _is_json_object(kind):
            decode_object = hooks.json_object.decode

            def json_object(stored: Any, _: Any) -> Any:
                value = decode_object(stored)
                if not isinstance(value, dict):
                    raise ValueError(f"not a JSON object: {type(value).__name__}")
                return value

            return json_object
        collection = _string_collection(kind)
        if collection is not None:
            decode_strings = hooks.strings.decode
            return lambda stored, _: collection(str(m) for m in decode_strings(stored))
        return None  # the shared converter's own hook (enums by value, str, int ...)


_PLAIN = (str, int)
"""Field types stored as they are."""


def _optional_plain_decoder(kind: type[Any]) -> Callable[[Any, Any], Any]:
    """None, the value as stored when it has the field's type, else converted (``"7"`` -> 7
    for an ``int | None`` field, like the shared converter, whose union hook is slower)."""
    return lambda stored, _: stored if stored is None or stored.__class__ is kind else kind(stored)


def _enum_encoder(kind: type[enum.Enum], label: str) -> Callable[[Any], Any]:
    def member_value(value: Any) -> Any:
        if value.__class__ is kind:
            return value.value
        return enum_value(kind, value, field=label)

    return member_value


def _timestamp_encoder(
    name: str, encode: Callable[[datetime, str], Any], optional: bool
) -> Callable[[Any], Any]:
    def timestamp(value: Any) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise BadRequestError(
                f"{name}: timestamps must be timezone-aware datetimes, got {value!r}"
            )
        return encode(value, name)

    return timestamp


# cattrs types the per-field overrides (**kwargs) against its keyword options; call untyped.
_make_unstructure_fn: Callable[..., Any] = make_dict_unstructure_fn
_make_structure_fn: Callable[..., Any] = make_dict_structure_fn


def _unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, else ``(kind, False)``."""
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        members = [member for member in typing.get_args(kind) if member is not type(None)]
        if len(members) == 1:
            return members[0], True
    return kind, False


def _is_json_object(kind: Any) -> bool:
    return typing.get_origin(kind) is dict


def _string_collection(kind: Any) -> type[frozenset[str]] | type[tuple[str, ...]] | None:
    origin = typing.get_origin(kind)
    if origin is frozenset and typing.get_args(kind) == (str,):
        return frozenset
    if origin is tuple and typing.get_args(kind) == (str, ...):
        return tuple
    return None


def _words(name: str) -> str:
    """``DownloadAuditEntry`` -> ``download audit entry``."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
