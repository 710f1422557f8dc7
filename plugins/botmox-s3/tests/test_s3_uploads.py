"""Uploads against SeaweedFS: multipart, abort on failure, sha256 metadata, SSE-S3."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import pytest
from botmox_s3.plugin import build_s3_storage
from botmox_s3.storage import S3Storage
from botmox_s3.testing import SeaweedFS

from botmox_core.config import load_settings
from botmox_core.errors import BadRequestError

MIB = 1024 * 1024


@pytest.fixture
def storage(s3_env: dict[str, str]) -> Iterator[S3Storage]:
    # 5 MiB parts from 5 MiB on, so a 12 MiB object is a 3-part multipart upload.
    env = {
        **s3_env,
        "BOTMOX_S3_MULTIPART_THRESHOLD_MB": "5",
        "BOTMOX_S3_MULTIPART_CHUNKSIZE_MB": "5",
        "BOTMOX_S3_MAX_CONCURRENCY": "2",
    }
    store = build_s3_storage(load_settings(environ=env))
    yield store
    store.close()


class _Boom(Exception):
    pass


class _FailsOnSecondPass(io.BytesIO):
    """Seekable: hashed fine on the first pass, breaks while the upload reads it again."""

    def __init__(self, data: bytes, fail_at: int) -> None:
        super().__init__(data)
        self.fail_at = fail_at
        self.rewound = False

    def seek(self, offset: int, whence: int = 0) -> int:
        if whence == 0 and self.tell() > 0:
            self.rewound = True
        return super().seek(offset, whence)

    def read(self, size: int | None = -1) -> bytes:
        if self.rewound and self.tell() >= self.fail_at:
            raise _Boom("source failed during the upload")
        return super().read(size)


def _pending_uploads(seaweedfs: SeaweedFS, bucket: str) -> list[dict[str, str]]:
    client = seaweedfs.client()
    try:
        return list(client.list_multipart_uploads(Bucket=bucket).get("Uploads", []))
    finally:
        client.close()


def test_large_object_is_a_multipart_upload_with_sha256_metadata(
    storage: S3Storage, seaweedfs: SeaweedFS, bucket: str
) -> None:
    data = hashlib.sha256(b"seed").digest() * (12 * MIB // 32)
    info = storage.put("big.bin", io.BytesIO(data))
    assert info.etag is not None and info.etag.endswith("-3"), "expected a 3-part upload"
    client = seaweedfs.client()
    try:
        head = client.head_object(Bucket=bucket, Key="big.bin")
    finally:
        client.close()
    assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
    assert head["ContentLength"] == len(data)


def test_failure_during_multipart_upload_aborts_it(
    storage: S3Storage, seaweedfs: SeaweedFS, bucket: str
) -> None:
    data = b"x" * (12 * MIB)
    with pytest.raises(_Boom):
        storage.put("broken.bin", _FailsOnSecondPass(data, fail_at=6 * MIB))
    assert storage.head("broken.bin") is None
    assert _pending_uploads(seaweedfs, bucket) == []


def test_failing_progress_callback_aborts_the_upload(
    storage: S3Storage, seaweedfs: SeaweedFS, bucket: str
) -> None:
    seen: list[int] = []

    def progress(amount: int) -> None:
        seen.append(amount)
        if sum(seen) > 5 * MIB:
            raise _Boom("caller cancelled")

    with pytest.raises(_Boom):
        storage.put("cancelled.bin", io.BytesIO(b"y" * (12 * MIB)), progress=progress)
    assert storage.head("cancelled.bin") is None
    assert _pending_uploads(seaweedfs, bucket) == []


def test_declared_size_mismatch_stores_nothing(storage: S3Storage) -> None:
    with pytest.raises(BadRequestError, match="declared size"):
        storage.put("sized.bin", io.BytesIO(b"12345"), size=6)
    assert storage.head("sized.bin") is None


def test_seekable_stream_is_uploaded_from_its_current_position(storage: S3Storage) -> None:
    stream = io.BytesIO(b"HEADERpayload")
    stream.seek(6)
    info = storage.put("positioned.bin", stream)
    assert info.sha256 == hashlib.sha256(b"payload").hexdigest()
    with storage.open("positioned.bin") as body:
        assert body.read() == b"payload"


@pytest.mark.parametrize("key", ["", "bad\nkey", "k" * 1025, "../escape", "/abs", "a//b"])
def test_invalid_keys_are_refused(storage: S3Storage, key: str) -> None:
    with pytest.raises(BadRequestError) as caught:
        storage.put(key, io.BytesIO(b"x"))
    assert caught.value.code == "INVALID_KEY"


def test_range_past_the_end_is_a_bad_request(storage: S3Storage) -> None:
    storage.put("short.bin", io.BytesIO(b"abc"))
    with pytest.raises(BadRequestError):
        storage.open("short.bin", start=10)
    with pytest.raises(BadRequestError):
        storage.open("short.bin", start=2, end=1)


def test_sse_s3_encrypts_new_objects(
    s3_env: dict[str, str], seaweedfs: SeaweedFS, bucket: str
) -> None:
    store = build_s3_storage(load_settings(environ={**s3_env, "BOTMOX_S3_SSE": "AES256"}))
    try:
        store.put("secret.bin", io.BytesIO(b"encrypted at rest"))
        with store.open("secret.bin") as body:
            assert body.read() == b"encrypted at rest"
        client = seaweedfs.client()
        try:
            head = client.head_object(Bucket=bucket, Key="secret.bin")
        finally:
            client.close()
        assert head["ServerSideEncryption"] == "AES256"
    finally:
        store.close()


def test_one_client_serves_every_call(storage: S3Storage) -> None:
    client = storage.client
    storage.put("a.bin", io.BytesIO(b"a"))
    storage.head("a.bin")
    storage.presign_download("a.bin", ttl_seconds=60)
    storage.open("a.bin").close()
    storage.delete("a.bin")
    assert storage.client is client
    # without a separate public endpoint, presigning uses that same client
    assert storage._presign_client is client
