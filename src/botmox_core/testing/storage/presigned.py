"""Object-storage conformance: download URLs, fetched over real HTTP.

A storage that declares ``capabilities.presign`` is tested through its own
``presign_download``; one that declares it cannot presign is wrapped in
:class:`~botmox_core.backends.signed_urls.ServerSignedStorage` and served by the botmox server's
signed-download route on a real uvicorn
(:class:`~botmox_core.testing.storage.server.SignedDownloadServer`), as production delivers it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from botmox_core.backends.signed_urls import ServesSignedDownloads
from botmox_core.ports.storage import (
    ObjectStorage,
    PresigningStorage,
    StorageCapabilities,
    presigning,
)
from botmox_core.testing.storage._base import ObjectStorageConformanceBase
from botmox_core.testing.storage._support import MIB, _random_bytes
from botmox_core.testing.storage.server import SignedDownloadServer

__all__ = ["PresignedUrlConformance"]


class PresignedUrlConformance(ObjectStorageConformanceBase):
    """Pytest mixin: download URLs deliver exactly the object (ranges too), expire, and refuse a
    tampered signature or another key.

    Hooks a backend may override: :meth:`fetch_presigned` (how a URL is fetched),
    :meth:`expired_presigned_url` (a URL that has already expired) and
    :meth:`tamper_presigned_url` (the URL with a corrupted signature).
    """

    # -- fixtures and hooks ---------------------------------------------------------------------

    @pytest.fixture(scope="class")
    @classmethod
    def signed_download_server(cls) -> Iterator[SignedDownloadServer]:
        """The server-side route for storages that cannot presign (started only for them)."""
        with SignedDownloadServer() as server:
            yield server

    @pytest.fixture
    def presigning_storage(
        self, storage: ObjectStorage, request: pytest.FixtureRequest
    ) -> Iterator[PresigningStorage]:
        """``storage`` as production hands out its download URLs: itself when it declares
        ``capabilities.presign``, else served by the botmox server's signed-download route."""
        declared = getattr(storage, "capabilities", None)
        if not isinstance(declared, StorageCapabilities):
            pytest.fail(
                f"{type(storage).__name__} declares no capabilities: give the class "
                "`capabilities = StorageCapabilities(presign=...)` (botmox_core.ports)"
            )
        if declared.presign:
            yield presigning(storage)
            return
        server: SignedDownloadServer = request.getfixturevalue("signed_download_server")
        served = server.serve(storage)
        try:
            yield served
        finally:
            server.app.state.storage = None

    def fetch_presigned(self, url: str, headers: Mapping[str, str] | None = None) -> httpx.Response:
        """GET a presigned URL over real HTTP. Override to add TLS settings or a proxy."""
        with httpx.Client(timeout=30.0, follow_redirects=False, trust_env=False) as client:
            return client.get(url, headers=dict(headers or {}))

    def expired_presigned_url(self, storage: PresigningStorage, key: str) -> str:
        """A presigned URL for ``key`` whose expiry has passed.

        Server-signed URLs (``localfs``, storages that cannot presign) are signed an hour in the
        past. Otherwise the default presigns with a one-second TTL and sleeps until
        ``expires_at`` plus :attr:`expiry_grace_seconds`. Override when the backend can sign
        with a past expiry.
        """
        if isinstance(storage, ServesSignedDownloads):
            past = time.time() - 3600
            return storage.url_signer.sign(storage.name, key, ttl_seconds=60, now=past).url
        presigned = storage.presign_download(key, ttl_seconds=1)
        wait = presigned.expires_at.timestamp() - time.time() + self.expiry_grace_seconds
        time.sleep(max(0.0, wait))
        return presigned.url

    def tamper_presigned_url(self, url: str) -> str:
        """``url`` with one character of its signature query parameter changed."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        for index, (name, value) in enumerate(query):
            if "signature" in name.lower() and value:
                middle = len(value) // 2
                replacement = "a" if value[middle] != "a" else "b"
                query[index] = (name, value[:middle] + replacement + value[middle + 1 :])
                return urlunsplit(parts._replace(query=urlencode(query)))
        pytest.fail(
            "the presigned URL has no query parameter named like 'signature'; "
            "override tamper_presigned_url for this backend"
        )

    # -- tests ----------------------------------------------------------------------------------

    def test_presigned_url_downloads_exact_bytes(
        self, presigning_storage: PresigningStorage, key_prefix: str
    ) -> None:
        self._require("supports_presigned_urls")
        storage = presigning_storage
        data = _random_bytes(MIB + 12_345, seed=17)
        key = f"{key_prefix}download/module-1.2.3.zip"
        self._put_bytes(storage, key, data, content_type="application/zip")
        before = time.time()
        presigned = storage.presign_download(key, ttl_seconds=self.presign_ttl_seconds)
        assert isinstance(presigned.expires_at, datetime)
        assert presigned.expires_at.tzinfo is not None, "expires_at must be timezone-aware"
        expected_expiry = before + self.presign_ttl_seconds
        assert abs(presigned.expires_at.timestamp() - expected_expiry) <= 5
        assert presigned.url.startswith(("http://", "https://"))
        assert presigned.url not in repr(presigned), "the URL is a secret: keep it out of repr"
        response = self.fetch_presigned(presigned.url)
        assert response.status_code == 200, response.text[:500]
        assert response.content == data

    def test_presigned_url_honours_range(
        self, presigning_storage: PresigningStorage, key_prefix: str
    ) -> None:
        self._require("supports_presigned_urls")
        storage = presigning_storage
        self._require("supports_presigned_range")
        data = _random_bytes(100_000, seed=18)
        key = f"{key_prefix}ranged.bin"
        self._put_bytes(storage, key, data)
        url = storage.presign_download(key, ttl_seconds=self.presign_ttl_seconds).url
        response = self.fetch_presigned(url, {"Range": "bytes=1000-1999"})
        assert response.status_code == 206, response.text[:500]
        assert response.content == data[1000:2000]
        assert response.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
        tail = self.fetch_presigned(url, {"Range": "bytes=-10"})
        assert tail.status_code == 206
        assert tail.content == data[-10:]

    def test_tampered_presigned_url_is_refused(
        self, presigning_storage: PresigningStorage, key_prefix: str
    ) -> None:
        self._require("supports_presigned_urls")
        storage = presigning_storage
        key = f"{key_prefix}guarded.bin"
        self._put_bytes(storage, key, b"guarded bytes")
        url = storage.presign_download(key, ttl_seconds=self.presign_ttl_seconds).url
        response = self.fetch_presigned(self.tamper_presigned_url(url))
        assert response.status_code == 403
        assert b"guarded bytes" not in response.content

    def test_presigned_url_is_bound_to_its_key(
        self, presigning_storage: PresigningStorage, key_prefix: str
    ) -> None:
        self._require("supports_presigned_urls")
        storage = presigning_storage
        allowed, other = f"{key_prefix}allowed.bin", f"{key_prefix}secret1.bin"
        self._put_bytes(storage, allowed, b"allowed bytes")
        self._put_bytes(storage, other, b"other secret bytes")
        allowed_url = urlsplit(
            storage.presign_download(allowed, ttl_seconds=self.presign_ttl_seconds).url
        )
        other_url = urlsplit(
            storage.presign_download(other, ttl_seconds=self.presign_ttl_seconds).url
        )
        swapped = urlunsplit(allowed_url._replace(path=other_url.path))
        response = self.fetch_presigned(swapped)
        assert response.status_code == 403
        assert b"other secret bytes" not in response.content

    def test_expired_presigned_url_is_refused(
        self, presigning_storage: PresigningStorage, key_prefix: str
    ) -> None:
        self._require("supports_presigned_urls")
        storage = presigning_storage
        self._require("supports_presign_expiry")
        key = f"{key_prefix}expiring.bin"
        self._put_bytes(storage, key, b"expiring bytes")
        response = self.fetch_presigned(self.expired_presigned_url(storage, key))
        assert response.status_code == 403
        assert b"expiring bytes" not in response.content
