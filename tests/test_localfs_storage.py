"""The ``localfs`` storage against the object-storage conformance suite, with its presigned URLs
served over real HTTP by uvicorn running the same download route the botmox server mounts; plus
the download route's HTTP behaviour (HEAD, ranges, 416, If-Range, errors, log hygiene)."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botmox_core.backends.localfs import LocalFsStorage, create_localfs_storage
from botmox_core.config import load_settings
from botmox_core.errors import BotmoxError
from botmox_core.testing import ObjectStorageConformance

if os.environ.get("CI") == "true":  # in CI a missing server stack is a failure, not a skip
    import litestar
    import uvicorn
else:
    litestar = pytest.importorskip("litestar", reason="needs the [server] extra")
    uvicorn = pytest.importorskip("uvicorn", reason="needs the [server] extra")

from botmox_server.routes.localfs_download import (
    RangeNotSatisfiableError,
    SignatureRedactingFilter,
    localfs_download_routes,
    parse_byte_range,
)


def _envelope_for(request: Any, exc: BotmoxError) -> litestar.Response[Any]:
    return litestar.Response(exc.to_envelope(), status_code=exc.status)


class DownloadServer:
    """uvicorn on a free loopback port, serving ``localfs_download_routes`` from a thread."""

    def __init__(self) -> None:
        self.app = litestar.Litestar(
            route_handlers=localfs_download_routes,
            exception_handlers={BotmoxError: _envelope_for},
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            self.app, log_config=None, access_log=True, lifespan="off", log_level="info"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()
        assert not self._thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def download_server() -> Iterator[DownloadServer]:
    access_log = logging.getLogger("uvicorn.access")
    redactor = SignatureRedactingFilter()
    access_log.addFilter(redactor)
    server = DownloadServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        access_log.removeFilter(redactor)


@pytest.fixture
def served_storage(tmp_path: Path, download_server: DownloadServer) -> Iterator[LocalFsStorage]:
    """A localfs storage built by its plugin factory, mounted on the running server."""
    settings = load_settings(environ={}, data_dir=tmp_path, public_url=download_server.base_url)
    store = create_localfs_storage(settings)
    download_server.app.state.storage = store
    try:
        yield store
    finally:
        download_server.app.state.storage = None
        store.close()


class TestLocalFsConformance(ObjectStorageConformance):
    """The shared suite, exactly as third-party storages run it."""

    @pytest.fixture
    def storage(self, served_storage: LocalFsStorage) -> Iterator[LocalFsStorage]:
        yield served_storage

    @pytest.fixture
    def raw_read(self, storage: LocalFsStorage) -> Callable[[str], bytes]:
        """Reads the documented on-disk layout directly, bypassing the storage's methods."""

        def read(key: str) -> bytes:
            digest = hashlib.sha256(key.encode()).hexdigest()
            shard = storage.root / digest[:2]
            meta = json.loads((shard / f"{digest}.meta.json").read_text())
            return (shard / f"{digest}.{meta['version']}.blob").read_bytes()

        return read

    def expired_presigned_url(self, storage: Any, key: str) -> str:
        return str(storage.presign_download(key, ttl_seconds=60, now=time.time() - 3600).url)


# -- the download route over HTTP -------------------------------------------------------------

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def stored(served_storage: LocalFsStorage) -> tuple[LocalFsStorage, str]:
    """The storage and a presigned URL of ``DATA`` stored as ``mods/tool.bin``."""
    served_storage.put("mods/tool.bin", io.BytesIO(DATA), content_type="application/x-tool")
    return served_storage, served_storage.presign_download("mods/tool.bin", ttl_seconds=120).url


def _client() -> httpx.Client:
    return httpx.Client(timeout=30, trust_env=False)


def test_get_sends_whole_object_with_headers(stored: tuple[LocalFsStorage, str]) -> None:
    _, url = stored
    with _client() as client:
        response = client.get(url)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert response.headers["content-type"] == "application/x-tool"
    assert "content-range" not in response.headers


def test_head_sends_headers_without_body(stored: tuple[LocalFsStorage, str]) -> None:
    _, url = stored
    with _client() as client:
        response = client.head(url)
        ranged = client.head(url, headers={"Range": "bytes=0-9"})
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["etag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'
    assert ranged.status_code == 206
    assert ranged.headers["content-length"] == "10"
    assert ranged.headers["content-range"] == f"bytes 0-9/{len(DATA)}"


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=100-", 100, len(DATA) - 1),
        ("bytes=-1", len(DATA) - 1, len(DATA) - 1),
        ("bytes=-100000", 0, len(DATA) - 1),
        ("bytes=10000-999999", 10000, len(DATA) - 1),
        ("Bytes = 5 - 9", 5, 9),
    ],
)
def test_single_ranges_give_206(
    stored: tuple[LocalFsStorage, str], header: str, first: int, last: int
) -> None:
    _, url = stored
    with _client() as client:
        response = client.get(url, headers={"Range": header})
    assert response.status_code == 206
    assert response.content == DATA[first : last + 1]
    assert response.headers["content-range"] == f"bytes {first}-{last}/{len(DATA)}"
    assert response.headers["content-length"] == str(last - first + 1)


@pytest.mark.parametrize("header", [f"bytes={len(DATA)}-", "bytes=99999-100000", "bytes=-0"])
def test_unsatisfiable_range_gives_416(stored: tuple[LocalFsStorage, str], header: str) -> None:
    _, url = stored
    with _client() as client:
        response = client.get(url, headers={"Range": header})
    assert response.status_code == 416
    assert response.headers["content-range"] == f"bytes */{len(DATA)}"
    assert response.json()["error"]["code"] == "RANGE_NOT_SATISFIABLE"


def test_any_range_of_empty_object_is_unsatisfiable(served_storage: LocalFsStorage) -> None:
    served_storage.put("empty.bin", io.BytesIO(b""))
    url = served_storage.presign_download("empty.bin", ttl_seconds=60).url
    with _client() as client:
        whole = client.get(url)
        ranged = client.get(url, headers={"Range": "bytes=-5"})
    assert whole.status_code == 200 and whole.content == b""
    assert ranged.status_code == 416
    assert ranged.headers["content-range"] == "bytes */0"


@pytest.mark.parametrize("header", ["bytes=0-1,5-6", "bytes=9-3", "items=0-1", "bytes=x-y"])
def test_unsupported_or_malformed_range_sends_whole_object(
    stored: tuple[LocalFsStorage, str], header: str
) -> None:
    _, url = stored
    with _client() as client:
        response = client.get(url, headers={"Range": header})
    assert response.status_code == 200
    assert response.content == DATA


def test_if_range_with_current_etag_gives_range(stored: tuple[LocalFsStorage, str]) -> None:
    _, url = stored
    etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    with _client() as client:
        response = client.get(url, headers={"Range": "bytes=10-19", "If-Range": etag})
    assert response.status_code == 206
    assert response.content == DATA[10:20]


@pytest.mark.parametrize("if_range", ['"0123abcd"', "Wed, 21 Oct 2015 07:28:00 GMT", 'W/"x"'])
def test_if_range_not_matching_sends_whole_object(
    stored: tuple[LocalFsStorage, str], if_range: str
) -> None:
    _, url = stored
    with _client() as client:
        response = client.get(url, headers={"Range": "bytes=10-19", "If-Range": if_range})
    assert response.status_code == 200
    assert response.content == DATA


def test_resumed_download_after_replacement_gets_new_object(
    stored: tuple[LocalFsStorage, str],
) -> None:
    storage, url = stored
    old_etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    storage.put("mods/tool.bin", io.BytesIO(b"new build"))
    with _client() as client:
        response = client.get(url, headers={"Range": "bytes=5-", "If-Range": old_etag})
    assert response.status_code == 200
    assert response.content == b"new build"


def test_expired_url_is_403_with_its_own_code(served_storage: LocalFsStorage) -> None:
    served_storage.put("a.bin", io.BytesIO(b"abc"))
    url = served_storage.presign_download("a.bin", ttl_seconds=5, now=time.time() - 60).url
    with _client() as client:
        response = client.get(url)
    assert response.status_code == 403
    assert response.json() == {
        "success": False,
        "error": {"code": "DOWNLOAD_URL_EXPIRED", "message": "download URL has expired"},
    }


@pytest.mark.parametrize(
    "mangle",
    [
        lambda url: url.split("?")[0],
        lambda url: url.replace("signature=", "sig="),
        lambda url: url.replace("expires=", "expires=1"),
        lambda url: url + "0",
        lambda url: url.replace("/a.bin?", "/b.bin?"),
    ],
    ids=["no-query", "no-signature", "expires-changed", "signature-longer", "other-key"],
)
def test_forged_url_is_403(served_storage: LocalFsStorage, mangle: Callable[[str], str]) -> None:
    served_storage.put("a.bin", io.BytesIO(b"abc"))
    served_storage.put("b.bin", io.BytesIO(b"secret"))
    url = served_storage.presign_download("a.bin", ttl_seconds=60).url
    with _client() as client:
        response = client.get(mangle(url))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "DOWNLOAD_URL_INVALID"


def test_deleted_object_is_404(served_storage: LocalFsStorage) -> None:
    served_storage.put("gone.bin", io.BytesIO(b"abc"))
    url = served_storage.presign_download("gone.bin", ttl_seconds=60).url
    served_storage.delete("gone.bin")
    with _client() as client:
        response = client.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "ARTIFACT_OBJECT_NOT_FOUND"


def test_other_storage_answers_404(
    served_storage: LocalFsStorage, download_server: DownloadServer
) -> None:
    url = served_storage.presign_download("a.bin", ttl_seconds=60).url

    class NotLocalFs:
        name = "other"

    download_server.app.state.storage = NotLocalFs()
    with _client() as client:
        response = client.get(url)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_signatures_never_reach_the_logs(
    served_storage: LocalFsStorage, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    served_storage.put("logged.bin", io.BytesIO(b"abc"))
    presigned = served_storage.presign_download("logged.bin", ttl_seconds=60)
    signature = presigned.url.rsplit("signature=", 1)[1]
    with _client() as client:
        assert client.get(presigned.url).status_code == 200
        assert client.get(presigned.url.replace("expires=", "expires=9")).status_code == 403
    deadline = time.monotonic() + 5
    while "logged.bin" not in caplog.text and time.monotonic() < deadline:
        time.sleep(0.05)  # uvicorn logs the access line from its own thread
    # httpx itself logs request URLs at INFO on the client side; this test is about the server
    server_side = "\n".join(
        record.getMessage()
        for record in caplog.records
        if not record.name.startswith(("httpx", "httpcore"))
    )
    assert "/api/v1/storage/localfs/logged.bin" in server_side, "access log was not captured"
    assert signature not in server_side
    assert signature not in repr(presigned)
    assert "signature=[redacted]" in server_side


def test_large_download_streams_correctly(served_storage: LocalFsStorage) -> None:
    blob = os.urandom(5 * 1024 * 1024 + 3)
    served_storage.put("big.bin", io.BytesIO(blob))
    url = served_storage.presign_download("big.bin", ttl_seconds=60).url
    digest = hashlib.sha256()
    with _client() as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(blob).hexdigest()


def test_head_of_forged_url_is_403_without_body(stored: tuple[LocalFsStorage, str]) -> None:
    _, url = stored
    with _client() as client:
        response = client.head(url.replace("signature=", "signature=0"))
        after = client.get(url)  # the connection is still usable: no stray body was sent
    assert response.status_code == 403
    assert response.content == b""
    assert after.status_code == 200 and after.content == DATA


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-4", 10, (0, 4)),
        ("bytes=4-", 10, (4, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=8-100", 10, (8, 9)),
        ("bytes=9-9", 10, (9, 9)),
        ("BYTES=1-2", 10, (1, 2)),
        ("bytes=1-2,4-5", 10, None),
        ("bytes=5-1", 10, None),
        ("bytes=-", 10, None),
        ("bytes=", 10, None),
        ("bytes 1-2", 10, None),
        ("pages=1-2", 10, None),
        ("bytes=1-2-3", 10, None),
        ("bytes=" + "9" * 30 + "-", 10, None),
    ],
)
def test_parse_byte_range(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_byte_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=-1", 0)]
)
def test_parse_byte_range_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiableError):
        parse_byte_range(header, size)
