"""The base every object-storage conformance mixin shares: the ``storage`` fixture and its
optional out-of-band reader, the capability flags and tunables, the helpers, and the check of
what the storage declares."""

from __future__ import annotations

import io
import random
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pytest

from botmox_core.ports.storage import ObjectStorage, PresigningStorage, StorageCapabilities
from botmox_core.testing.storage._support import MIB

__all__ = ["ObjectStorageConformanceBase"]


class ObjectStorageConformanceBase:
    """Pytest mixin base: fixtures, flags and helpers of the object-storage conformance mixins.

    Fixtures to provide:
        storage: yields a fresh, empty :class:`~botmox_core.ports.ObjectStorage` and closes it
            afterwards (required).
        raw_read: ``key -> bytes`` reading an object without the storage's own methods
            (optional; the default ``None`` skips the out-of-band checks).

    Capability flags (class attributes; a flag set to ``False`` skips its tests with the
    reason):
        supports_presigned_urls: presigned URLs can be fetched over HTTP from the test process.
        supports_presigned_range: presigned URLs honour a ``Range`` header with 206.
        supports_presign_expiry: presigned URLs stop working after their TTL.
        records_sha256: ``head`` reports the sha256 computed at upload.
        records_content_type: ``head`` reports the content type given at upload.
        supports_key_and_prefix_coexistence: keys ``a`` and ``a/b`` can exist at once.

    Whether the storage presigns itself or is served by the botmox server is not a flag: it is
    read from the storage's declaration, ``storage.capabilities`` (a
    :class:`~botmox_core.ports.StorageCapabilities`), checked by
    :meth:`test_declares_its_capabilities`.

    Tunables:
        presign_ttl_seconds: TTL used for URLs that must still be valid.
        expiry_grace_seconds: extra wait past ``expires_at`` in the default
            ``expired_presigned_url``, for servers that round expiry times.
        large_object_bytes: size of the multi-chunk upload test.
    """

    supports_presigned_urls: ClassVar[bool] = True
    supports_presigned_range: ClassVar[bool] = True
    supports_presign_expiry: ClassVar[bool] = True
    records_sha256: ClassVar[bool] = True
    records_content_type: ClassVar[bool] = True
    supports_key_and_prefix_coexistence: ClassVar[bool] = True

    presign_ttl_seconds: ClassVar[int] = 120
    expiry_grace_seconds: ClassVar[float] = 1.5
    large_object_bytes: ClassVar[int] = 12 * MIB

    # -- fixtures a backend provides ----------------------------------------------------------

    @pytest.fixture
    def storage(self) -> Iterator[ObjectStorage]:
        """A fresh, empty storage; close it after the test. Every backend must override this."""
        raise NotImplementedError(
            f"{type(self).__name__} must define a `storage` fixture that yields a fresh, empty "
            "ObjectStorage (and closes it afterwards); see botmox_core.testing.storage"
        )

    @pytest.fixture
    def raw_read(self, storage: ObjectStorage) -> Callable[[str], bytes] | None:
        """Optional: ``key -> bytes`` that reads an object without the storage's own methods
        (a direct file read, a separate SDK client ...). ``None`` skips the out-of-band checks."""
        return None

    @pytest.fixture
    def key_prefix(self) -> str:
        """A prefix unique to this test, so tests never see each other's objects."""
        return f"conformance/{random.getrandbits(48):012x}/"

    # -- helpers --------------------------------------------------------------------------------

    def _require(self, flag: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False")

    @staticmethod
    def _put_bytes(storage: ObjectStorage, key: str, data: bytes, **kwargs: Any) -> Any:
        return storage.put(key, io.BytesIO(data), **kwargs)

    # -- declaration ----------------------------------------------------------------------------

    def test_declares_its_capabilities(self, storage: ObjectStorage) -> None:
        declared = storage.capabilities
        assert isinstance(declared, StorageCapabilities), (
            f"{type(storage).__name__}.capabilities must be a StorageCapabilities, got {declared!r}"
        )
        if declared.presign:
            assert isinstance(storage, PresigningStorage), (
                "a storage declaring presign=True must have presign_download()"
            )
