"""``botmox parity``: are two backends' copies equal, record by record?

Per tenant and stream (:mod:`botmox_core.migration.streams`), each side is read once in the
stream's order and every record's canonical hash (:func:`~botmox_core.migration.canonical.digest`
of its logical JSON) is folded into one of ``buckets`` buckets chosen by its key: a bucket holds
the count and the XOR of ``sha256(key) || hash`` digests of its records. Equal buckets on both
sides are done with; only the records of differing buckets are read again and compared one by
one (missing at the target, extra at the target, different, with a field-level diff of the
first ``diff_limit``). So memory is the bucket table plus the records of differing buckets, and
a green parity reads each side exactly once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
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
    return int.from_bytes(hashlib.sha256(repr(item.key).encode()).digest()[:4], "big") % buckets


def _fold(
    backend: DataBackend, stream: Stream, tenant: str, buckets: int, page_size: int
) -> tuple[int, list[int], list[bytes]]:
    counts = [0] * buckets
    sums = [0] * buckets
    total = 0
    for item in read_stream(backend, stream, tenant, None, page_size):
        index = _bucket(item, buckets)
        counts[index] += 1
        mixed = hashlib.sha256(repr(item.key).encode() + b"\x00" + item.hash).digest()
        sums[index] ^= int.from_bytes(mixed, "big")
        total += 1
    return total, counts, [value.to_bytes(32, "big") for value in sums]


def _gather(
    backend: DataBackend,
    stream: Stream,
    tenant: str,
    wanted: set[int],
    buckets: int,
    page_size: int,
) -> dict[Any, Item]:
    return {
        item.key: item
        for item in read_stream(backend, stream, tenant, None, page_size)
        if _bucket(item, buckets) in wanted
    }


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
    if on_source:
        result.source, source_counts, source_sums = _fold(
            source, stream, tenant, buckets, page_size
        )
    else:
        source_counts, source_sums = [0] * buckets, [bytes(32)] * buckets
    if on_target:
        result.target, target_counts, target_sums = _fold(
            target, stream, tenant, buckets, page_size
        )
    else:
        target_counts, target_sums = [0] * buckets, [bytes(32)] * buckets
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
