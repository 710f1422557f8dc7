"""Shared pieces of the object-storage conformance kit: generated (non-seekable, optionally
failing) upload streams and reproducible test data."""

from __future__ import annotations

import io
import random
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, cast

__all__ = ["MIB", "GeneratedStream", "SourceStreamFailure", "generated_stream"]

MIB = 1024 * 1024


class SourceStreamFailure(Exception):
    """Raised by a test's source stream to simulate a broken upload."""


class GeneratedStream(io.RawIOBase):
    """A read-only, non-seekable stream over an iterable of byte blocks.

    It holds one block at a time, so tests can upload large objects without keeping them in
    memory. With ``fail_after`` it raises :class:`SourceStreamFailure` once that many bytes have
    been delivered.
    """

    def __init__(self, blocks: Iterable[bytes], *, fail_after: int | None = None) -> None:
        super().__init__()
        self._blocks = iter(blocks)
        self._pending = memoryview(b"")
        self._delivered = 0
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._fail_after is not None and self._delivered >= self._fail_after:
            raise SourceStreamFailure(f"source stream broke after {self._delivered} bytes")
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = memoryview(block)
        target = memoryview(buffer).cast("B")
        count = min(len(target), len(self._pending))
        if self._fail_after is not None:
            count = min(count, max(1, self._fail_after - self._delivered))
        target[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        self._delivered += count
        return count


def generated_stream(blocks: Iterable[bytes], *, fail_after: int | None = None) -> BinaryIO:
    """A buffered, non-seekable :class:`GeneratedStream`: ``read(n)`` returns ``n`` bytes until
    EOF, as SDKs expect of the ``BinaryIO`` that ``ObjectStorage.put`` takes."""
    raw = GeneratedStream(blocks, fail_after=fail_after)
    return cast(BinaryIO, io.BufferedReader(raw, buffer_size=64 * 1024))


def _random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)  # noqa: S311 - reproducible test data


def _random_blocks(total: int, seed: int, hasher: Any, block_size: int = MIB) -> Iterator[bytes]:
    """Deterministic pseudo-random blocks adding up to ``total``; each is fed to ``hasher``."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test data
    remaining = total
    while remaining > 0:
        block = rng.randbytes(min(block_size, remaining))
        hasher.update(block)
        remaining -= len(block)
        yield block


def _read_all(stream: BinaryIO) -> bytes:
    try:
        return stream.read()
    finally:
        stream.close()
