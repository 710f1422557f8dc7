"""Fixtures: one real SeaweedFS S3 server per session standing in for MinIO, a bucket per test."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from botmox_s3.testing import SeaweedFS, seaweedfs_or_skip


@pytest.fixture(scope="session")
def seaweedfs() -> Iterator[SeaweedFS]:
    with seaweedfs_or_skip() as server:
        yield server


@pytest.fixture
def bucket(seaweedfs: SeaweedFS) -> Iterator[str]:
    name = seaweedfs.create_bucket()
    yield name
    seaweedfs.delete_bucket(name)


@pytest.fixture
def public_endpoint(seaweedfs: SeaweedFS) -> str:
    """The same S3 port under another loopback host name: the 'public' view VMs use."""
    return f"http://localhost:{urlsplit(seaweedfs.endpoint_url).port}"


@pytest.fixture
def minio_env(seaweedfs: SeaweedFS, bucket: str, public_endpoint: str) -> dict[str, str]:
    """Environment selecting the minio plugin with separate internal and public endpoints."""
    return seaweedfs.minio_env(bucket, public_endpoint=public_endpoint)
