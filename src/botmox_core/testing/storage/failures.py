"""Object-storage conformance: a failed upload (the source stream breaks part-way) leaves no
object, or the previous one untouched."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from botmox_core.errors import ArtifactObjectNotFoundError, BotmoxError
from botmox_core.ports.storage import ObjectStorage
from botmox_core.testing.storage._base import ObjectStorageConformanceBase
from botmox_core.testing.storage._support import (
    MIB,
    SourceStreamFailure,
    _random_blocks,
    _random_bytes,
    _read_all,
    generated_stream,
)

__all__ = ["FailedUploadConformance"]


class FailedUploadConformance(ObjectStorageConformanceBase):
    """Pytest mixin: uploads are all or nothing."""

    def test_failing_source_leaves_no_object(self, storage: ObjectStorage, key_prefix: str) -> None:
        key = f"{key_prefix}broken.bin"
        blocks = _random_blocks(3 * MIB, seed=14, hasher=hashlib.sha256())
        with pytest.raises((SourceStreamFailure, BotmoxError)):
            storage.put(key, generated_stream(blocks, fail_after=MIB + MIB // 2))
        assert storage.head(key) is None
        with pytest.raises(ArtifactObjectNotFoundError):
            storage.open(key)

    def test_failing_source_keeps_previous_object(
        self,
        storage: ObjectStorage,
        raw_read: Callable[[str], bytes] | None,
        key_prefix: str,
    ) -> None:
        key = f"{key_prefix}kept.bin"
        original = _random_bytes(5000, seed=15)
        self._put_bytes(storage, key, original)
        blocks = _random_blocks(3 * MIB, seed=16, hasher=hashlib.sha256())
        with pytest.raises((SourceStreamFailure, BotmoxError)):
            storage.put(key, generated_stream(blocks, fail_after=2 * MIB))
        head = storage.head(key)
        assert head is not None and head.size_bytes == len(original)
        if self.records_sha256:
            assert head.sha256 == hashlib.sha256(original).hexdigest()
        assert _read_all(storage.open(key)) == original
        if raw_read is not None:
            assert raw_read(key) == original
