"""Conformance tests every :class:`~botmox_core.ports.ObjectStorage` backend passes.

Subclass :class:`ObjectStorageConformance` in a test module and provide the ``storage`` fixture;
everything else has defaults::

    import pytest
    from botmox_core.testing import ObjectStorageConformance

    class TestMyStore(ObjectStorageConformance):
        @pytest.fixture
        def storage(self, tmp_path):
            store = MyStore(tmp_path)
            yield store
            store.close()

        @pytest.fixture
        def raw_read(self, tmp_path):  # optional: read objects around the storage's own API
            return lambda key: (tmp_path / key).read_bytes()

Presigned URLs are fetched over real HTTP with httpx, so the URLs must reach a running server
(an S3 endpoint, or the botmox server for ``localfs``). A storage that declares it cannot presign
(``capabilities = StorageCapabilities(presign=False)``) is delivered by the botmox server in
production, so the suite does the same: it wraps the storage in
:class:`~botmox_core.backends.signed_urls.ServerSignedStorage` and serves it with the server's
own download route on a real uvicorn (:class:`SignedDownloadServer`; this needs
``botmox[server]``), and every presigned-URL test runs against that. Hooks a backend may
override:

* fixture ``raw_read`` — ``key -> bytes`` without the storage's methods (default: none, and the
  out-of-band tests skip);
* :meth:`~PresignedUrlConformance.fetch_presigned` — how a presigned URL is fetched;
* :meth:`~PresignedUrlConformance.expired_presigned_url` — a URL that has already expired
  (default: server-signed URLs are signed in the past; others are presigned with a one-second
  TTL and waited out);
* :meth:`~PresignedUrlConformance.tamper_presigned_url` — the URL with a corrupted signature.

What the storage declares (``storage.capabilities``) decides how presigned URLs are tested;
capability flags (class attributes) switch optional behaviour off with a skip reason.

The suite is split by concern, one mixin each, all on
:class:`~botmox_core.testing.storage._base.ObjectStorageConformanceBase` (fixtures, flags,
helpers and the declaration check): :class:`PutGetConformance` (upload, head, read back,
integrity), :class:`RangeReadConformance` (ranged reads), :class:`KeyAndDeleteConformance`
(keys, missing objects, deletion), :class:`FailedUploadConformance` (all-or-nothing uploads),
:class:`PresignedUrlConformance` (download URLs over HTTP) and :class:`HealthConformance`
(health check, close). :class:`ObjectStorageConformance` composes them; a storage that offers
only part of the port can run only those mixins::

    class TestMyReadOnlyStore(PutGetConformance, RangeReadConformance):
        ...
"""

from __future__ import annotations

from botmox_core.testing.storage._base import ObjectStorageConformanceBase
from botmox_core.testing.storage._support import (
    MIB,
    GeneratedStream,
    SourceStreamFailure,
    generated_stream,
)
from botmox_core.testing.storage.failures import FailedUploadConformance
from botmox_core.testing.storage.health import HealthConformance
from botmox_core.testing.storage.keys import KeyAndDeleteConformance
from botmox_core.testing.storage.presigned import PresignedUrlConformance
from botmox_core.testing.storage.put_get import PutGetConformance
from botmox_core.testing.storage.ranges import RangeReadConformance
from botmox_core.testing.storage.server import SignedDownloadServer

__all__ = [
    "MIB",
    "FailedUploadConformance",
    "GeneratedStream",
    "HealthConformance",
    "KeyAndDeleteConformance",
    "ObjectStorageConformance",
    "ObjectStorageConformanceBase",
    "PresignedUrlConformance",
    "PutGetConformance",
    "RangeReadConformance",
    "SignedDownloadServer",
    "SourceStreamFailure",
    "generated_stream",
]


class ObjectStorageConformance(
    PutGetConformance,
    RangeReadConformance,
    KeyAndDeleteConformance,
    FailedUploadConformance,
    PresignedUrlConformance,
    HealthConformance,
):
    """Pytest mixin: the behaviour every object storage must show (every concern's mixin).
    Fixtures, capability flags and tunables: see
    :class:`~botmox_core.testing.storage._base.ObjectStorageConformanceBase`; presigned-URL
    hooks: see :class:`PresignedUrlConformance`."""
