"""``botmox parity``: are two backends' copies equal, record by record?

Per tenant and stream (:mod:`botmox_core.migration.streams`), each side is read once in the
stream's order and every record is folded into one of ``buckets`` buckets chosen by its key (a
CRC-32 of the key's text): a bucket holds the count and the XOR of the records'
``sha256(key || canonical text)`` digests (:func:`~botmox_core.migration.canonical.canonical_text`
of the logical JSON, so a record's key and content both count). Equal buckets on both sides are
done with; only the records of differing buckets are read again and compared one by one
(missing at the target, extra at the target, different, with a field-level diff of the first
``diff_limit``). So memory is the bucket table plus the records of differing buckets, and a
green parity reads each side exactly once. The two sides are read at the same time (the target
in a thread of its own), each one page ahead.
"""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

import attrs

from botmox_core.migration.canonical import field_diff
from botmox_core.migration.catalog import STREAMS
from botmox_core.migration.engine import list_tenants, read_stream
from botmox_core.migration.streams import Item, Stream
from botmox_core.ports import DataBackend

__all__ = ["ParityReport", "StreamParity", "parity"]

#: Buckets per stream and tenant.
BUCKETS = 1024
#: Ids listed per kind (missing, extra, different) and stream; all are counted.
MAX_LISTED_IDS = 100


@attrs.define
class StreamParity:
    """One stream of one tenant on both sides."""

    tenant: str
    stream: str
    source: int = 0
    target: int = 0
    buckets: int = BUCKETS
    differing_buckets: int = 0
    missing: int = 0
    extra: int = 0
    different: int = 0
    missing_ids: list[str] = attrs.field(factory=list)
    extra_ids: list[str] = attrs.field(factory=list)
    different_ids: list[str] = attrs.field(factory=list)
    diffs: list[dict[str, Any]] = attrs.field(factory=list)
    skipped: str | None = None

    @property
    def ok(self) -> bool:
        return self.missing == 0 and self.extra == 0 and self.different == 0


@attrs.define
class ParityReport:
    source: str
    target: str
    tenants: list[str] = attrs.field(factory=list)
    streams: list[StreamParity] = attrs.field(factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.streams)

    @property
    def records(self) -> int:
        return sum(s.source for s in self.streams)


def _bucket(item: Item, buckets: int) -> int:
    return zlib.crc32(repr(item.key).encode()) % buckets


_Fold = tuple[int, list[int], list[bytes]]


def _fold(backend: DataBackend, stream: Stream, tenant: str, buckets: int, page_size: int) -> _Fold:
    counts = [0] * buckets
    sums = [0] * buckets
    total = 0
    sha256 = hashlib.sha256
    with closing(read_stream(backend, stream, tenant, None, page_size)) as items:  # see engine
        for item in items:
            key = repr(item.key).encode()
            index = zlib.crc32(key) % buckets
            counts[index] += 1
            mixed = sha256(key + b"\x00" + item.text.encode("utf-8", "surrogatepass")).digest()
            sums[index] ^= int.from_bytes(mixed, "big")
            total += 1
    return total, counts, [value.to_bytes(32, "big") for value in sums]


def _empty(buckets: int) -> _Fold:
    return 0, [0] * buckets, [bytes(32)] * buckets


def _gather(
    backend: DataBackend,
    stream: Stream,
    tenant: str,
    wanted: set[int],
    buckets: int,
    page_size: int,
) -> dict[Any, Item]:
    with closing(read_stream(backend, stream, tenant, None, page_size)) as items:  # see engine
        return {item.key: item for item in items if _bucket(item, buckets) in wanted}


def _compare(
    source: DataBackend,
    target: DataBackend,
    stream: Stream,
    tenant: str,
    *,
    buckets: int,
    diff_limit: int,
    page_size: int,
) -> StreamParity:
    result = StreamParity(tenant, stream.name, buckets=buckets)
    on_source, on_target = stream.available(source), stream.available(target)
    if not on_source and not on_target:
        result.skipped = "neither backend stores it"
        return result
    with ThreadPoolExecutor(1, thread_name_prefix="parity-target") as other:
        on_the_target = (
            other.submit(_fold, target, stream, tenant, buckets, page_size) if on_target else None
        )
        folded = _fold(source, stream, tenant, buckets, page_size) if on_source else None
        result.source, source_counts, source_sums = folded or _empty(buckets)
        result.target, target_counts, target_sums = (
            on_the_target.result() if on_the_target is not None else _empty(buckets)
        )
    differing = {
        index
        for index in range(buckets)
        if source_counts[index] != target_counts[index] or source_sums[index] != target_sums[index]
    }
    result.differing_buckets = len(differing)
    if not differing:
        return result
    left = _gather(source, stream, tenant, differing, buckets, page_size) if on_source else {}
    right = _gather(target, stream, tenant, differing, buckets, page_size) if on_target else {}
    for key in sorted(set(left) | set(right)):
        mine, theirs = left.get(key), right.get(key)
        if theirs is None:
            assert mine is not None
            result.missing += 1
            if len(result.missing_ids) < MAX_LISTED_IDS:
                result.missing_ids.append(mine.label)
        elif mine is None:
            result.extra += 1
            if len(result.extra_ids) < MAX_LISTED_IDS:
                result.extra_ids.append(theirs.label)
        elif mine.hash != theirs.hash:
            result.different += 1
            if len(result.different_ids) < MAX_LISTED_IDS:
                result.different_ids.append(mine.label)
            if len(result.diffs) < diff_limit:
                result.diffs.append({"id": mine.label, "fields": field_diff(mine.doc, theirs.doc)})
    return result


def parity(
    source: DataBackend,
    target: DataBackend,
    *,
    tenants: Sequence[str] | None = None,
    streams: Sequence[str] | None = None,
    buckets: int = BUCKETS,
    diff_limit: int = 10,
    page_size: int = 500,
    source_id: str = "",
    target_id: str = "",
) -> ParityReport:
    """Compare every selected stream of every selected tenant (``None``: the tenants of both
    sides)."""
    started = time.perf_counter()
    if buckets < 1 or buckets > 1 << 20:
        raise ValueError("buckets must be 1 to 1048576")
    selected = [s for s in STREAMS if streams is None or s.name in set(streams)]
    if tenants is None:
        names = sorted(set(list_tenants(source, "source")) | set(list_tenants(target, "target")))
    else:
        names = sorted(set(tenants))
    report = ParityReport(source_id, target_id, names)
    for tenant in names:
        for stream in selected:
            report.streams.append(
                _compare(
                    source,
                    target,
                    stream,
                    tenant,
                    buckets=buckets,
                    diff_limit=diff_limit,
                    page_size=page_size,
                )
            )
    report.seconds = time.perf_counter() - started
    return report
