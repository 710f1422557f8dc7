"""The shared object-storage conformance suite, against a real SeaweedFS S3 server."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from botmox_s3.plugin import build_s3_storage
from botmox_s3.storage import S3Storage
from botmox_s3.testing import SeaweedFS

from botmox_core.config import load_settings
from botmox_core.testing import ObjectStorageConformance


class TestS3Conformance(ObjectStorageConformance):
    large_object_bytes = 40 * 1024 * 1024  # above the 16 MiB multipart threshold: 3 parts

    @pytest.fixture
    def storage(self, s3_env: dict[str, str]) -> Iterator[S3Storage]:
        store = build_s3_storage(load_settings(environ=s3_env))
        yield store
        store.close()

    @pytest.fixture
    def raw_read(self, seaweedfs: SeaweedFS, bucket: str) -> Iterator[Callable[[str], bytes]]:
        client = seaweedfs.client()

        def read(key: str) -> bytes:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()

        yield read
        client.close()
