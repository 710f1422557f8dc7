"""Reading an export file: each line parsed and checked (JSON, kind, ids, keys, depth, sizes) into
an item, and the whole file checked (header, items, trailer) before anything is written."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import attrs

from botmox_core.domain.patching import key_error
from botmox_core.domain.records import (
    RECORD_ID_PATTERN,
    AggregateKey,
    Collection,
)
from botmox_core.errors import (
    BadRequestError,
)
from botmox_core.services import validation as check
from botmox_core.services.domains.base import MAX_RECORD_BYTES, MAX_SETTINGS_BYTES
from botmox_core.services.domains.rules import MAX_SAFE_INTEGER, clean_json, encoded_size
from botmox_core.services.domains.transfer.format import (
    _GZIP_MAGIC,
    _RECORD_DEPTH,
    _SETTINGS_DEPTH,
    AGGREGATES,
    ARCHIVE,
    FORMAT,
    LOG,
    MAX_LINE_BYTES,
    SETTINGS,
    VERSION,
    ImportReport,
    TransferError,
    TransferProgress,
)


@attrs.frozen
class _Record:
    collection: Collection
    id: str
    data: dict[str, Any]


@attrs.frozen
class _Log:
    id: str
    bot_id: str
    type: str
    message: str
    timestamp: int
    details: dict[str, Any]


@attrs.frozen
class _Archive:
    id: str
    bot_id: str
    reason: str
    archived_at: int
    ban_details: dict[str, Any]
    snapshot: dict[str, Any]


@attrs.frozen
class _Aggregate:
    key: AggregateKey
    value: dict[str, Any]


@attrs.frozen
class _Settings:
    tree: dict[str, Any]


_Item = _Record | _Log | _Archive | _Aggregate | _Settings


class _Bad(Exception):
    """A line that cannot be imported (the message names why)."""


def _refuse_constant(name: str) -> Any:
    raise _Bad(f"{name} is not a JSON number")


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        raise _Bad("not UTF-8 text") from None
    except RecursionError:
        raise _Bad("nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise _Bad(f"not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(value, dict):
        raise _Bad("not a JSON object")
    return value


def _fields(value: Mapping[str, Any], kind: str, names: tuple[str, ...]) -> None:
    if len(value) == len(names) + 1 and value.keys() == {"kind", *names}:
        return
    unknown = sorted(set(value) - {"kind", *names})
    if unknown:
        raise _Bad(f"{kind}: unknown field {unknown[0]!r}")
    missing = [name for name in names if name not in value]
    if missing:
        raise _Bad(f"{kind}: missing field {missing[0]!r}")


def _id(value: Any, field: str) -> str:
    if not isinstance(value, str) or not RECORD_ID_PATTERN.fullmatch(value):
        raise _Bad(f"{field}: must be 1-128 characters of A-Z a-z 0-9 _ : @ -")
    return value


def _millis(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Bad(f"{field}: must be epoch milliseconds (a non-negative integer)")
    if value > 2**53 - 1:
        raise _Bad(f"{field}: must be within 2**53")
    return value


def _string(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{field}: must be a string")
    if "\x00" in value:
        raise _Bad(f"{field}: must not contain NUL characters")
    return value


#: Keys already found good by :func:`key_error` (object keys repeat from record to record),
#: at most :data:`_MAX_GOOD_KEYS` of them.
_GOOD_KEYS: set[str] = set()
_MAX_GOOD_KEYS = 1 << 16


def _plain_size(value: dict[str, Any], max_depth: int) -> int | None:
    """An upper bound of ``value``'s bytes as compact JSON when :func:`clean_json` would accept
    it and give it back unchanged; ``None`` when it must go through :func:`clean_json` (which
    then refuses it, naming the field, or makes integral floats integers). The same rules in
    one walk without copying or building field paths: the common case of an import or a
    migration costs a fraction of :func:`clean_json` and :func:`encoded_size`."""
    bound = 0
    good = _GOOD_KEYS
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return None
        members: Any
        if type(node) is dict:
            if not good.issuperset(node):
                for key in node:
                    if key not in good:
                        if type(key) is not str or key_error(key) is not None:
                            return None
                        if len(good) < _MAX_GOOD_KEYS:
                            good.add(key)
            bound += 6 * sum(map(len, node)) + 3 * len(node)
            members = node.values()
        else:
            members = node
        bound += 2 + len(node)
        for member in members:
            kind = type(member)
            if kind is str:
                if "\x00" in member or not (member.isascii() or _encodable(member)):
                    return None
                # at most 6 bytes a code point (an escape), the quotes
                bound += 6 * len(member) + 2
            elif kind is int:
                if member > MAX_SAFE_INTEGER or member < -MAX_SAFE_INTEGER:
                    return None
                bound += 24
            elif kind is float:
                if not math.isfinite(member) or (
                    member.is_integer() and abs(member) <= MAX_SAFE_INTEGER
                ):
                    return None
                bound += 24  # the longest repr of a float
            elif kind is bool or member is None:
                bound += 5
            elif kind is dict or kind is list:
                stack.append((member, depth + 1))
            else:
                return None
    return bound


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_object_sized(
    value: Any, field: str, max_depth: int = check.MAX_JSON_DEPTH
) -> tuple[dict[str, Any], int | None]:
    """The checked object (``value`` itself when it needs no change) and an upper bound of its
    compact JSON bytes (``None``: not known)."""
    if not isinstance(value, dict):
        raise _Bad(f"{field}: must be a JSON object")
    if type(value) is dict:
        bound = _plain_size(value, max_depth)
        if bound is not None:
            return value, bound
    try:
        cleaned = clean_json(value, field, max_depth=max_depth)
    except BadRequestError as exc:
        raise _Bad(exc.message) from None
    assert isinstance(cleaned, dict)
    return cleaned, None


def _json_object(value: Any, field: str, max_depth: int = check.MAX_JSON_DEPTH) -> dict[str, Any]:
    return _json_object_sized(value, field, max_depth)[0]


def _too_big(value: dict[str, Any], bound: int | None, limit: int) -> bool:
    """Whether ``value`` is more than ``limit`` bytes of compact JSON (encoded only when its
    upper bound does not settle it)."""
    return (bound is None or bound > limit) and encoded_size(value) > limit


def _item(value: Mapping[str, Any]) -> _Item:
    """The item of a parsed line, checked with the services' rules."""
    kind = value.get("kind")
    if kind == "record":
        _fields(value, "record", ("collection", "id", "data"))
        try:
            collection = Collection(value["collection"])
        except (ValueError, TypeError):
            raise _Bad(f"record: unknown collection {str(value['collection'])[:80]!r}") from None
        record_id = _id(value["id"], "id")
        data, bound = _json_object_sized(value["data"], "data", _RECORD_DEPTH)
        if "id" in data:
            raise _Bad("data: must not hold an id (it is the line's id)")
        for stamp in ("created_at", "updated_at"):
            if stamp in data:
                _millis(data[stamp], f"data.{stamp}")
        if _too_big(data, bound, MAX_RECORD_BYTES):
            raise _Bad(f"data: a record is at most {MAX_RECORD_BYTES} bytes of JSON")
        return _Record(collection, record_id, data)
    if kind == LOG:
        _fields(value, LOG, ("id", "bot_id", "type", "message", "timestamp", "details"))
        return _Log(
            _id(value["id"], "id"),
            _id(value["bot_id"], "bot_id"),
            _string(value["type"], "type"),
            _string(value["message"], "message"),
            _millis(value["timestamp"], "timestamp"),
            _json_object(value["details"], "details"),
        )
    if kind == ARCHIVE:
        _fields(
            value, ARCHIVE, ("id", "bot_id", "reason", "archived_at", "ban_details", "snapshot")
        )
        return _Archive(
            _id(value["id"], "id"),
            _id(value["bot_id"], "bot_id"),
            _string(value["reason"], "reason"),
            _millis(value["archived_at"], "archived_at"),
            _json_object(value["ban_details"], "ban_details"),
            _json_object(value["snapshot"], "snapshot"),
        )
    if kind == "aggregate":
        _fields(value, "aggregate", ("key", "value"))
        try:
            key = AggregateKey(value["key"])
        except (ValueError, TypeError):
            raise _Bad(f"aggregate: unknown key {str(value['key'])[:80]!r}") from None
        return _Aggregate(key, _json_object(value["value"], "value", _SETTINGS_DEPTH))
    if kind == "settings":
        _fields(value, "settings", ("tree",))
        tree, bound = _json_object_sized(value["tree"], "tree", _SETTINGS_DEPTH)
        if _too_big(tree, bound, MAX_SETTINGS_BYTES):
            raise _Bad(f"tree: the settings tree is at most {MAX_SETTINGS_BYTES} bytes of JSON")
        return _Settings(tree)
    if kind in ("header", "trailer"):
        raise _Bad(f"a {kind} line in the middle of the file")
    raise _Bad(f"unknown kind {str(kind)[:80]!r}")


def _label(item: _Item) -> str:
    if isinstance(item, _Record):
        return str(item.collection)
    if isinstance(item, _Log):
        return LOG
    if isinstance(item, _Archive):
        return ARCHIVE
    if isinstance(item, _Aggregate):
        return AGGREGATES
    return SETTINGS


def _lines(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """``(number, bytes, ended)`` per line; ``ended`` is False for a last line without a
    newline. A line longer than :data:`MAX_LINE_BYTES` is given cut short (and fails to
    parse) without being held whole."""
    with open(path, "rb") as raw:
        packed = raw.read(2) == _GZIP_MAGIC
        raw.seek(0)
        stream: IO[bytes] | gzip.GzipFile = gzip.GzipFile(fileobj=raw, mode="rb") if packed else raw
        try:
            number = 0
            while True:
                line = stream.readline(MAX_LINE_BYTES + 1)
                if not line:
                    return
                number += 1
                if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
                    while True:  # skip the rest of the over-long line
                        rest = stream.readline(MAX_LINE_BYTES)
                        if not rest or rest.endswith(b"\n"):
                            break
                    yield number, b"", True
                    continue
                yield number, line, line.endswith(b"\n")
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise TransferError(f"line {number + 1}: the file cannot be read: {exc}") from None
        finally:
            if packed:
                stream.close()


@attrs.define
class _Check:
    """What the checking pass found."""

    header: dict[str, Any] = attrs.field(factory=dict)
    bad_lines: set[int] = attrs.field(factory=set)
    skipped_lines: set[int] = attrs.field(factory=set)
    totals: dict[str, int] = attrs.field(factory=dict)
    last_line: int = 0


def _check_header(raw: bytes) -> dict[str, Any]:
    try:
        header = _parse(raw)
    except _Bad as exc:
        raise TransferError(f"line 1: {exc}") from None
    if header.get("kind") != "header" or header.get("format") != FORMAT:
        raise TransferError(f"line 1: not a {FORMAT} file (no header line)")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise TransferError("line 1: the header has no valid version")
    if version > VERSION:
        raise TransferError(
            f"line 1: format version {version} is newer than this botmox reads ({VERSION})"
        )
    for field in ("tenant", "source_backend"):
        if not isinstance(header.get(field), str):
            raise TransferError(f"line 1: the header's {field} must be a string")
    if not isinstance(header.get("exported_at"), int):
        raise TransferError("line 1: the header's exported_at must be epoch milliseconds")
    return header


def _check_file(
    path: Path, report: ImportReport, *, allow_partial: bool, progress: TransferProgress
) -> _Check:
    """The checking pass: every line parsed and checked, the trailer compared."""
    found = _Check()
    digest = hashlib.sha256()
    trailer: dict[str, Any] | None = None
    trailer_line = 0
    items = 0
    counts: dict[str, int] = {}
    progress.start("checking", None)
    for number, raw, ended in _lines(path):
        found.last_line = number
        progress.advance("checking")
        if number == 1:
            found.header = _check_header(raw)
            report.header = found.header
            digest.update(raw)
            continue
        if trailer is not None:
            report.add_error(number, f"a line after the trailer (line {trailer_line})")
            found.bad_lines.add(number)
            continue
        try:
            value = _parse(raw) if raw else None
            if value is None:
                raise _Bad(f"longer than {MAX_LINE_BYTES} bytes")
        except _Bad as exc:
            if not ended:
                if allow_partial:
                    report.problems.append(f"line {number}: truncated (no newline), skipped")
                    found.skipped_lines.add(number)
                    continue
                report.add_error(number, f"{exc} (truncated: the file ends without a newline)")
            else:
                report.add_error(number, str(exc))
            found.bad_lines.add(number)
            items += 1
            digest.update(raw)
            continue
        if value.get("kind") == "trailer":
            trailer, trailer_line = value, number
            continue
        digest.update(raw)
        items += 1
        try:
            item = _item(value)
        except _Bad as exc:
            report.add_error(number, str(exc))
            found.bad_lines.add(number)
            continue
        label = _label(item)
        counts[label] = counts.get(label, 0) + 1
    if found.last_line == 0:
        raise TransferError(f"{path}: the file is empty (no header line)")
    found.totals = counts
    if trailer is None:
        report.problems.append("the trailer is missing: the file is incomplete (truncated?)")
    else:
        if trailer.get("sha256") != digest.hexdigest():
            report.problems.append(
                f"line {trailer_line}: the SHA-256 of the file does not match its trailer "
                "(altered or truncated)"
            )
        if trailer.get("items") != items:
            report.problems.append(
                f"line {trailer_line}: the trailer counts {trailer.get('items')!r} items, "
                f"the file holds {items}"
            )
    report.complete = trailer is not None and not report.problems
    return found
