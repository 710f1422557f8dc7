"""Object-storage conformance: ranged reads (``open(key, start=, end=)``, ``end`` inclusive)."""

from __future__ import annotations

from botmox_core.ports.storage import ObjectStorage
from botmox_core.testing.storage._base import ObjectStorageConformanceBase
from botmox_core.testing.storage._support import MIB, _random_bytes, _read_all

__all__ = ["RangeReadConformance"]


class RangeReadConformance(ObjectStorageConformanceBase):
    """Pytest mixin: ``open`` with ``start``/``end`` returns exactly that slice of the object."""

    def test_open_range_from_start_offset(self, storage: ObjectStorage, key_prefix: str) -> None:
        data = _random_bytes(10_000, seed=8)
        key = f"{key_prefix}range.bin"
        self._put_bytes(storage, key, data)
        assert _read_all(storage.open(key, start=1234)) == data[1234:]

    def test_open_range_with_inclusive_end(self, storage: ObjectStorage, key_prefix: str) -> None:
        data = _random_bytes(10_000, seed=9)
        key = f"{key_prefix}range.bin"
        self._put_bytes(storage, key, data)
        assert _read_all(storage.open(key, start=100, end=199)) == data[100:200]
        assert _read_all(storage.open(key, start=0, end=0)) == data[:1]

    def test_open_range_last_byte(self, storage: ObjectStorage, key_prefix: str) -> None:
        data = _random_bytes(10_000, seed=10)
        key = f"{key_prefix}range.bin"
        self._put_bytes(storage, key, data)
        last = len(data) - 1
        assert _read_all(storage.open(key, start=last)) == data[-1:]
        assert _read_all(storage.open(key, start=last, end=last)) == data[-1:]

    def test_open_range_across_chunk_boundary(
        self, storage: ObjectStorage, key_prefix: str
    ) -> None:
        data = _random_bytes(2 * MIB + 100, seed=11)
        key = f"{key_prefix}range-big.bin"
        self._put_bytes(storage, key, data)
        start, end = MIB - 50, MIB + 49
        assert _read_all(storage.open(key, start=start, end=end)) == data[start : end + 1]
