"""Object-storage conformance: upload, head and read back, byte for byte (sizes, sha256, content
type, progress, empty and multi-chunk objects, replacement, an out-of-band read)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from botmox_core.ports.storage import ObjectStorage
from botmox_core.testing.storage._base import ObjectStorageConformanceBase
from botmox_core.testing.storage._support import (
    MIB,
    _random_blocks,
    _random_bytes,
    _read_all,
    generated_stream,
)

__all__ = ["PutGetConformance"]


class PutGetConformance(ObjectStorageConformanceBase):
    """Pytest mixin: ``put`` stores exactly the streamed bytes and ``head``/``open`` give them
    back (integrity of what is stored)."""

    def test_put_reports_size_and_sha256_of_streamed_bytes(
        self, storage: ObjectStorage, key_prefix: str
    ) -> None:
        data = _random_bytes(300_000, seed=1)
        key = f"{key_prefix}artifact.bin"
        info = storage.put(key, generated_stream([data[:100_000], data[100_000:]]))
        assert info.key == key
        assert info.size_bytes == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()

    def test_head_describes_stored_object(self, storage: ObjectStorage, key_prefix: str) -> None:
        data = _random_bytes(4096, seed=2)
        key = f"{key_prefix}dir.v1/module_x-1.0.zip"
        self._put_bytes(storage, key, data, content_type="application/zip")
        info = storage.head(key)
        assert info is not None
        assert info.key == key
        assert info.size_bytes == len(data)
        if self.records_sha256:
            assert info.sha256 == hashlib.sha256(data).hexdigest()
        if self.records_content_type:
            assert info.content_type == "application/zip"

    def test_open_returns_stored_bytes(self, storage: ObjectStorage, key_prefix: str) -> None:
        data = _random_bytes(70_000, seed=3)
        key = f"{key_prefix}round-trip.bin"
        self._put_bytes(storage, key, data, size=len(data))
        assert _read_all(storage.open(key)) == data

    def test_raw_read_matches_uploaded_bytes(
        self,
        storage: ObjectStorage,
        raw_read: Callable[[str], bytes] | None,
        key_prefix: str,
    ) -> None:
        if raw_read is None:
            pytest.skip("no raw_read fixture: the backend offers no out-of-band read")
        data = _random_bytes(50_000, seed=4)
        key = f"{key_prefix}out-of-band.bin"
        self._put_bytes(storage, key, data)
        assert raw_read(key) == data
        replacement = _random_bytes(10, seed=5)
        self._put_bytes(storage, key, replacement)
        assert raw_read(key) == replacement

    def test_empty_object(self, storage: ObjectStorage, key_prefix: str) -> None:
        key = f"{key_prefix}empty"
        info = self._put_bytes(storage, key, b"")
        assert info.size_bytes == 0
        assert info.sha256 == hashlib.sha256(b"").hexdigest()
        head = storage.head(key)
        assert head is not None and head.size_bytes == 0
        assert _read_all(storage.open(key)) == b""

    def test_large_object_streams_in_chunks(self, storage: ObjectStorage, key_prefix: str) -> None:
        size = self.large_object_bytes
        sent = hashlib.sha256()
        calls: list[int] = []
        key = f"{key_prefix}large.bin"
        info = storage.put(
            key, generated_stream(_random_blocks(size, seed=6, hasher=sent)), progress=calls.append
        )
        assert info.size_bytes == size
        assert info.sha256 == sent.hexdigest()
        assert sum(calls) == size, "progress must report every byte exactly once"
        assert len(calls) > 1, "progress must be reported while streaming, not only at the end"
        assert all(n > 0 for n in calls)
        received = hashlib.sha256()
        read = 0
        with storage.open(key) as stream:
            while chunk := stream.read(MIB):
                received.update(chunk)
                read += len(chunk)
        assert read == size
        assert received.hexdigest() == sent.hexdigest()

    def test_progress_reports_every_byte(self, storage: ObjectStorage, key_prefix: str) -> None:
        data = _random_bytes(3 * MIB + 17, seed=7)
        calls: list[int] = []
        self._put_bytes(storage, f"{key_prefix}progress.bin", data, progress=calls.append)
        assert sum(calls) == len(data)

    def test_put_replaces_existing_object(self, storage: ObjectStorage, key_prefix: str) -> None:
        key = f"{key_prefix}replace.bin"
        first = _random_bytes(20_000, seed=12)
        second = _random_bytes(333, seed=13)
        self._put_bytes(storage, key, first, content_type="application/octet-stream")
        info = self._put_bytes(storage, key, second, content_type="application/zip")
        assert info.sha256 == hashlib.sha256(second).hexdigest()
        head = storage.head(key)
        assert head is not None and head.size_bytes == len(second)
        if self.records_sha256:
            assert head.sha256 == info.sha256
        if self.records_content_type:
            assert head.content_type == "application/zip"
        assert _read_all(storage.open(key)) == second
