"""What a VM sees of the bucket: only presigned GETs work, and only as signed, for their TTL.

Real HTTP against SeaweedFS with credentials configured, so the server enforces signatures.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from botmox_s3.plugin import build_s3_storage
from botmox_s3.storage import S3Storage
from botmox_s3.testing import SeaweedFS

from botmox_core.config import load_settings

PAYLOAD = b"licensed bot module bytes " * 400


@pytest.fixture
def storage(s3_env: dict[str, str]) -> Iterator[S3Storage]:
    store = build_s3_storage(load_settings(environ=s3_env))
    store.put("modules/bot-1.0.zip", io.BytesIO(PAYLOAD), content_type="application/zip")
    yield store
    store.close()


def _get(url: str, **headers: str) -> httpx.Response:
    with httpx.Client(trust_env=False, timeout=10) as client:
        return client.get(url, headers=headers)


def test_anonymous_get_of_an_object_is_denied(
    storage: S3Storage, seaweedfs: SeaweedFS, bucket: str
) -> None:
    response = _get(f"{seaweedfs.endpoint_url}/{bucket}/modules/bot-1.0.zip")
    assert response.status_code == 403
    assert PAYLOAD[:20] not in response.content


def test_anonymous_listing_is_denied(storage: S3Storage, seaweedfs: SeaweedFS, bucket: str) -> None:
    response = _get(f"{seaweedfs.endpoint_url}/{bucket}?list-type=2")
    assert response.status_code == 403
    assert b"bot-1.0.zip" not in response.content


def test_presigned_url_downloads_and_carries_expiry(storage: S3Storage) -> None:
    before = time.time()
    presigned = storage.presign_download("modules/bot-1.0.zip", ttl_seconds=60)
    response = _get(presigned.url)
    assert response.status_code == 200
    assert response.content == PAYLOAD
    assert before - 1 <= presigned.expires_at.timestamp() - 60 <= time.time()
    assert "X-Amz-Signature" in presigned.url
    assert presigned.url not in repr(presigned)


def test_range_request_gets_206(storage: S3Storage) -> None:
    url = storage.presign_download("modules/bot-1.0.zip", ttl_seconds=60).url
    response = _get(url, Range="bytes=10-29")
    assert response.status_code == 206
    assert response.content == PAYLOAD[10:30]
    assert response.headers["content-range"] == f"bytes 10-29/{len(PAYLOAD)}"


def test_tampered_signature_is_denied(storage: S3Storage) -> None:
    url = storage.presign_download("modules/bot-1.0.zip", ttl_seconds=60).url
    head, signature = url.rsplit("X-Amz-Signature=", 1)
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    response = _get(f"{head}X-Amz-Signature={flipped}")
    assert response.status_code == 403
    assert PAYLOAD[:20] not in response.content


def test_stretched_expiry_is_denied(storage: S3Storage) -> None:
    url = storage.presign_download("modules/bot-1.0.zip", ttl_seconds=60).url
    response = _get(url.replace("X-Amz-Expires=60", "X-Amz-Expires=3600"))
    assert response.status_code == 403


def test_url_used_after_its_ttl_is_denied(storage: S3Storage) -> None:
    # a few seconds of life, so a loaded machine still reaches it before expiry
    presigned = storage.presign_download("modules/bot-1.0.zip", ttl_seconds=4)
    assert _get(presigned.url).status_code == 200
    time.sleep(max(0.0, presigned.expires_at.timestamp() - time.time()) + 1.2)
    response = _get(presigned.url)
    assert response.status_code == 403
    assert PAYLOAD[:20] not in response.content


def test_public_endpoint_is_the_host_presigned_urls_carry(
    seaweedfs: SeaweedFS, s3_env: dict[str, str]
) -> None:
    # The S3 port reached through another loopback name: SigV4 signs the Host header, so the
    # URL only works when signed for the host the client really uses.
    port = urlsplit(seaweedfs.endpoint_url).port
    public = f"http://localhost:{port}"
    env = {**s3_env, "BOTMOX_S3_PUBLIC_ENDPOINT_URL": public}
    store = build_s3_storage(load_settings(environ=env))
    try:
        store.put("k.bin", io.BytesIO(b"via public host"))
        url = store.presign_download("k.bin", ttl_seconds=60).url
        assert urlsplit(url).netloc == f"localhost:{port}"
        assert _get(url).content == b"via public host"
        moved = url.replace(f"localhost:{port}", f"127.0.0.1:{port}", 1)
        assert _get(moved).status_code == 403
    finally:
        store.close()


@pytest.mark.parametrize("ttl", [0, -5, 7 * 24 * 3600 + 1])
def test_out_of_range_ttl_is_a_bad_request(storage: S3Storage, ttl: int) -> None:
    from botmox_core.errors import BadRequestError

    with pytest.raises(BadRequestError):
        storage.presign_download("modules/bot-1.0.zip", ttl_seconds=ttl)
