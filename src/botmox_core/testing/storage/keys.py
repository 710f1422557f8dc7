"""Object-storage conformance: keys (nested keys, prefixes, a key and a longer key at once),
missing objects and deletion."""

from __future__ import annotations

import pytest

from botmox_core.errors import ArtifactObjectNotFoundError
from botmox_core.ports.storage import ObjectStorage
from botmox_core.testing.storage._base import ObjectStorageConformanceBase
from botmox_core.testing.storage._support import _read_all

__all__ = ["KeyAndDeleteConformance"]


class KeyAndDeleteConformance(ObjectStorageConformanceBase):
    """Pytest mixin: every key is its own object, a missing one reads as missing, and ``delete``
    removes exactly one object and is idempotent."""

    def test_nested_keys_are_independent(self, storage: ObjectStorage, key_prefix: str) -> None:
        one, two = f"{key_prefix}mod/a.bin", f"{key_prefix}mod/b.bin"
        self._put_bytes(storage, one, b"one")
        self._put_bytes(storage, two, b"two")
        storage.delete(one)
        assert storage.head(one) is None
        assert _read_all(storage.open(two)) == b"two"

    def test_prefix_is_not_an_object(self, storage: ObjectStorage, key_prefix: str) -> None:
        self._put_bytes(storage, f"{key_prefix}folder/inner.bin", b"inner")
        assert storage.head(f"{key_prefix}folder") is None
        with pytest.raises(ArtifactObjectNotFoundError):
            storage.open(f"{key_prefix}folder")

    def test_key_and_longer_key_coexist(self, storage: ObjectStorage, key_prefix: str) -> None:
        self._require("supports_key_and_prefix_coexistence")
        outer, inner = f"{key_prefix}release", f"{key_prefix}release/inner.bin"
        self._put_bytes(storage, outer, b"outer")
        self._put_bytes(storage, inner, b"inner")
        assert _read_all(storage.open(outer)) == b"outer"
        assert _read_all(storage.open(inner)) == b"inner"

    def test_head_of_missing_object_is_none(self, storage: ObjectStorage, key_prefix: str) -> None:
        assert storage.head(f"{key_prefix}missing.bin") is None

    def test_open_of_missing_object_raises(self, storage: ObjectStorage, key_prefix: str) -> None:
        with pytest.raises(ArtifactObjectNotFoundError):
            storage.open(f"{key_prefix}missing.bin")

    def test_delete_is_idempotent(self, storage: ObjectStorage, key_prefix: str) -> None:
        key = f"{key_prefix}delete.bin"
        self._put_bytes(storage, key, b"to be deleted")
        storage.delete(key)
        assert storage.head(key) is None
        with pytest.raises(ArtifactObjectNotFoundError):
            storage.open(key)
        storage.delete(key)
        storage.delete(f"{key_prefix}never-existed.bin")

    def test_put_after_delete(self, storage: ObjectStorage, key_prefix: str) -> None:
        key = f"{key_prefix}again.bin"
        self._put_bytes(storage, key, b"first")
        storage.delete(key)
        self._put_bytes(storage, key, b"second")
        assert _read_all(storage.open(key)) == b"second"
