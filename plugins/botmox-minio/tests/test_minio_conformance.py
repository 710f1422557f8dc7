"""The shared conformance suite for the minio plugin, presigned URLs fetched via the public host."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from botmox_minio.plugin import build_minio_storage
from botmox_minio.storage import MinioStorage
from botmox_s3.testing import SeaweedFS

from botmox_core.config import load_settings
from botmox_core.testing import ObjectStorageConformance


class TestMinioConformance(ObjectStorageConformance):
    large_object_bytes = 20 * 1024 * 1024

    @pytest.fixture
    def storage(self, minio_env: dict[str, str]) -> Iterator[MinioStorage]:
        store = build_minio_storage(load_settings(environ=minio_env))
        yield store
        store.close()

    @pytest.fixture
    def raw_read(self, seaweedfs: SeaweedFS, bucket: str) -> Iterator[Callable[[str], bytes]]:
        client = seaweedfs.client()

        def read(key: str) -> bytes:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()

        yield read
        client.close()
