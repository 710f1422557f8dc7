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
own download route on a real uvicorn (this needs ``botmox[server]``), and every presigned-URL
test runs against that. Hooks a backend may override:

* fixture ``raw_read`` — ``key -> bytes`` without the storage's methods (default: none, and the
  out-of-band tests skip);
* :meth:`~ObjectStorageConformance.fetch_presigned` — how a presigned URL is fetched;
* :meth:`~ObjectStorageConformance.expired_presigned_url` — a URL that has already expired
  (default: server-signed URLs are signed in the past; others are presigned with a one-second
  TTL and waited out);
* :meth:`~ObjectStorageConformance.tamper_presigned_url` — the URL with a corrupted signature.

What the storage declares (``storage.capabilities``) decides how presigned URLs are tested;
capability flags (class attributes) switch optional behaviour off with a skip reason.
"""

from __future__ import annotations

import hashlib
import io
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any, BinaryIO, ClassVar, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from botmox_core.backends.signed_urls import (
    DownloadUrlSigner,
    ServerSignedStorage,
    ServesSignedDownloads,
)
from botmox_core.errors import ArtifactObjectNotFoundError, BotmoxError
from botmox_core.ports.storage import (
    ObjectStorage,
    PresigningStorage,
    StorageCapabilities,
    presigning,
)

__all__ = [
    "GeneratedStream",
    "ObjectStorageConformance",
    "SignedDownloadServer",
    "SourceStreamFailure",
    "generated_stream",
]

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


class SignedDownloadServer:
    """The botmox server's signed-download route on a real uvicorn, in a thread.

    Serves whatever :meth:`serve` mounts (a storage with server-signed URLs) with the server's
    own exception handlers, so answers carry the contract's envelopes. Needs ``botmox[server]``.
    Use it as a context manager; it stops the thread it started and closes its socket.
    """

    def __init__(self) -> None:
        try:
            import uvicorn
            from litestar import Litestar

            from botmox_server.errors import EXCEPTION_HANDLERS
            from botmox_server.routes.localfs_download import signed_download_routes
        except ImportError as exc:  # pragma: no cover - depends on the installed extras
            raise RuntimeError(
                "a storage that cannot presign is delivered by the botmox server, and the "
                "conformance suite checks that through it: install botmox[server]"
            ) from exc
        self.app = Litestar(
            route_handlers=signed_download_routes, exception_handlers=EXCEPTION_HANDLERS
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.base_url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(self.app, log_config=None, access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def __enter__(self) -> SignedDownloadServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._socket.close()

    def serve(self, storage: ObjectStorage) -> ServerSignedStorage:
        """Mount ``storage`` (which must declare ``presign=False``) wrapped in a
        :class:`ServerSignedStorage` whose URLs point at this server; returns the wrapper."""
        signer = DownloadUrlSigner(base_url=self.base_url, key=secrets.token_bytes(32))
        served = ServerSignedStorage(storage, signer)
        self.app.state.storage = served
        return served


class ObjectStorageConformance:
    """Pytest mixin: the behaviour every object storage must show.

    Capability flags:
        supports_presigned_urls: presigned URLs can be fetched over HTTP from the test process.
        supports_presigned_range: presigned URLs honour a ``Range`` header with 206.
        supports_presign_expiry: presigned URLs stop working after their TTL.
        records_sha256: ``head`` reports the sha256 computed at upload.
        records_content_type: ``head`` reports the content type given at upload.
        supports_key_and_prefix_coexistence: keys ``a`` and ``a/b`` can exist at once.

    Tunables:
        presign_ttl_seconds: TTL used for URLs that must still be valid.
        expiry_grace_seconds: extra wait past ``expires_at`` in the default
            :meth:`expired_presigned_url`, for servers that round expiry times.
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

    # -- fixtures and hooks a backend provides ------------------------------------------------

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

    # -- helpers --------------------------------------------------------------------------------

    def _require(self, flag: str) -> None:
        if not getattr(self, flag):
            pytest.skip(f"{type(self).__name__}.{flag} is False")

    @staticmethod
    def _put_bytes(storage: ObjectStorage, key: str, data: bytes, **kwargs: Any) -> Any:
        return storage.put(key, io.BytesIO(data), **kwargs)

    # -- upload, head, read ---------------------------------------------------------------------

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

    # -- missing objects and delete -----------------------------------------------------------

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

    # -- failed uploads -------------------------------------------------------------------------

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

    # -- presigned URLs -------------------------------------------------------------------------

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

    # -- declaration ----------------------------------------------------------------------------

    def test_declares_its_capabilities(self, storage: ObjectStorage) -> None:
        declared = storage.capabilities
        assert isinstance(declared, StorageCapabilities), (
            f"{type(storage).__name__}.capabilities must be a StorageCapabilities, "
            f"got {declared!r}"
        )
        if declared.presign:
            assert isinstance(storage, PresigningStorage), (
                "a storage declaring presign=True must have presign_download()"
            )

    # -- health and lifecycle -------------------------------------------------------------------

    def test_health_is_ok(self, storage: ObjectStorage) -> None:
        report = storage.check_health()
        assert report.ok, report.detail
        assert report.name == storage.name

    def test_close_is_idempotent(self, storage: ObjectStorage) -> None:
        storage.close()
        storage.close()
