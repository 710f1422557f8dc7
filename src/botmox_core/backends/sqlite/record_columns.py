"""The stored columns of a SQLite domain record and the SQL that writes them.

Records live in one table ``domain_records`` keyed by (tenant, collection, id) with the entity's
fields as JSON text (``data``) and two derived columns written with every record
(:func:`encode_record`):

* ``search``: :func:`~botmox_core.domain.listing.search_text` of the record, so ``q`` is one
  substring test (``LIKE '%q%'`` with ``q``'s wildcards escaped, :func:`like_pattern`: both
  sides are ASCII-lower-cased already, so SQLite's ASCII-only case folding changes nothing, and
  it scans faster than ``instr``), or an FTS5 trigram phrase (:func:`fts_phrase`);
* ``sort_keys``: for each top-level value that is not null, a text key whose byte order
  (``BINARY``) is the listing order (:func:`value_sort_key`): the rank of the JSON type as its
  first character (``1`` false, ``2`` true, ``3`` numbers, ``4`` strings, ``5`` objects and
  arrays), then for strings their UTF-8 bytes (code point order) and for numbers
  :func:`number_sort_key`. SQLite reads JSON numbers as 64-bit integers or doubles, so integers
  beyond 2**63 (and their order against nearby doubles) would compare wrongly; the keys compare
  exactly as Python compares ``int`` and ``float``.

The listing order of a field is ``json_extract(sort_keys, '$."field"')`` (:func:`sort_key_sql`;
``NULL`` for null or missing, which SQLite sorts first ascending and last descending), ties by
id: that is :func:`~botmox_core.domain.listing.sort_key` exactly.

Each (tenant, collection) is a *partition* (``domain_partitions``: a number and its record
count, kept by triggers); a record's integer key ``seq`` is ``partition << 32 | n``, so the
partition is one ``seq`` range (:func:`partition_range`). Writers insert through
:data:`INSERT_RECORD` or :data:`PUT_RECORD`, which pick the next ``seq`` of the partition;
the schema's triggers keep the FTS index and the partition counts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from botmox_core.backends.sqlite.columns import encode_json_object
from botmox_core.domain.listing import SORT_FIELD_PATTERN, search_text
from botmox_core.errors import BadRequestError

__all__ = [
    "INSERT_PARTITION",
    "INSERT_RECORD",
    "PUT_RECORD",
    "TRIGRAM",
    "EncodedRecord",
    "encode_record",
    "fts_phrase",
    "like_pattern",
    "number_sort_key",
    "partition_range",
    "sort_key_sql",
    "value_sort_key",
]

_EXPONENT_BIAS = 1_000_000


def number_sort_key(value: int | float) -> str:
    """A text whose byte order among these keys is the exact numeric order (equal numbers, such
    as ``1`` and ``1.0`` or ``0.0`` and ``-0.0``, get equal keys), prefixed ``3`` (the rank of
    numbers in the listing order).

    A number ``±m × 2**e`` (``1 <= m < 2``) is written as a sign class (``a`` negative, ``b``
    zero, ``c`` positive), the binary exponent (biased, seven digits) and the hex digits of
    ``m``'s fraction without trailing zeros; negatives complement exponent and digits and end
    with ``~`` so that a longer (larger) magnitude sorts first.
    """
    if value == 0:
        return "3b"
    numerator, denominator = abs(value).as_integer_ratio()  # denominator: a power of two
    exponent = numerator.bit_length() - denominator.bit_length()
    bits = bin(numerator)[3:].rstrip("0")  # the fraction after the leading 1
    bits += "0" * (-len(bits) % 4)
    digits = format(int(bits, 2), f"0{len(bits) // 4}x").rstrip("0") if bits else ""
    if value > 0:
        return f"3c{exponent + _EXPONENT_BIAS:07d}{digits}"
    complement = digits.translate(_COMPLEMENT)
    return f"3a{_EXPONENT_BIAS - exponent:07d}{complement}~"


_COMPLEMENT = str.maketrans("0123456789abcdef", "fedcba9876543210")


def value_sort_key(value: Any) -> str | None:
    """The ``sort_keys`` entry of one top-level value (``None`` for null)."""
    if value is None:
        return None
    if value is True:
        return "2"
    if value is False:
        return "1"
    if isinstance(value, int | float):
        return number_sort_key(value)
    if isinstance(value, str):
        return "4" + value
    return "5"


def like_pattern(q: str) -> str:
    """``%q%`` with ``q``'s ``%``, ``_`` and ``\\`` escaped by ``\\``."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


#: Characters a ``q`` needs for the trigram index (shorter filters scan).
TRIGRAM = 3
_PARTITION_BITS = 32


def partition_range(partition: int) -> tuple[int, int]:
    """The first and last ``seq`` of a partition's records."""
    first = partition << _PARTITION_BITS
    return first, first + (1 << _PARTITION_BITS) - 1


def fts_phrase(q: str) -> str:
    """``q`` as one FTS5 phrase (in double quotes, its own ``"`` doubled): with the trigram
    tokenizer, the records whose search text contains ``q`` (``q`` of at least 3 characters)."""
    return '"' + q.replace('"', '""') + '"'


_INSERT_ROW = """
    INSERT INTO domain_records (seq, tenant_id, collection, id, search, sort_keys, data)
    SELECT coalesce(
               (SELECT max(seq) FROM domain_records
                WHERE seq BETWEEN p.id << 32 AND (p.id << 32) + 4294967295),
               p.id << 32
           ) + 1,
           p.tenant_id, p.collection, :id, :search, :sort_keys, :data
    FROM domain_partitions AS p
    WHERE p.tenant_id = :tenant_id AND p.collection = :collection
"""

#: Insert one record (named parameters ``tenant_id, collection, id, search, sort_keys, data``)
#: with the next ``seq`` of its partition, which must exist (:data:`INSERT_PARTITION` first);
#: nothing when the id exists. Bulk loaders use it too.
INSERT_RECORD = _INSERT_ROW + "    ON CONFLICT DO NOTHING\n"

#: Insert or replace one record (the parameters of :data:`INSERT_RECORD`): a new id gets the
#: next ``seq`` of its partition (which must exist), an existing one keeps its ``seq`` and gets
#: the new columns, unless its ``data`` is the same text (then nothing is written). The
#: schema's triggers keep the trigram index (an ``UPDATE`` of ``search``) and the partition's
#: count (an ``INSERT``) exactly as for an add or a modify.
PUT_RECORD = (
    _INSERT_ROW
    + """    ON CONFLICT (tenant_id, collection, id) DO UPDATE
    SET search = excluded.search, sort_keys = excluded.sort_keys, data = excluded.data
    WHERE domain_records.data IS NOT excluded.data
"""
)

#: Create the partition of a (tenant, collection) if it has none yet.
INSERT_PARTITION = (
    "INSERT INTO domain_partitions (tenant_id, collection) VALUES (?, ?) ON CONFLICT DO NOTHING"
)


@attrs.frozen
class EncodedRecord:
    """The stored columns of a record.

    Attributes:
        data: the fields as JSON object text.
        search: the search text (:func:`~botmox_core.domain.listing.search_text`).
        sort_keys: JSON object text of each non-null field's :func:`value_sort_key`.
    """

    data: str
    search: str
    sort_keys: str


def encode_record(record_id: str, data: Mapping[str, Any]) -> EncodedRecord:
    """The columns ``data``, ``search`` and ``sort_keys`` of a record (also used by bulk
    loaders such as the bench)."""
    text = encode_json_object(dict(data), "record data")
    keys = {key: value_sort_key(value) for key, value in data.items() if value is not None}
    return EncodedRecord(
        data=text,
        search=search_text(record_id, data),
        sort_keys=json.dumps(keys, ensure_ascii=False, separators=(",", ":")),
    )


def sort_key_sql(field: str) -> str:
    """The SQL expression of the listing order's key of top-level ``field`` (see the module
    doc). ``field`` must match :data:`SORT_FIELD_PATTERN` (it is written into the SQL, so the
    expression is the same text for every query on that field)."""
    if not SORT_FIELD_PATTERN.fullmatch(field):
        raise BadRequestError(f"cannot sort by {field[:80]!r}")
    return f"json_extract(sort_keys, '$.\"{field}\"')"
