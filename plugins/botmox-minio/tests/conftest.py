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
    return {
        "BOTMOX_STORAGE": "minio",
        "BOTMOX_MINIO_ENDPOINT": seaweedfs.endpoint_url,
        "BOTMOX_MINIO_PUBLIC_ENDPOINT": public_endpoint,
        "BOTMOX_MINIO_BUCKET": bucket,
        "BOTMOX_MINIO_ACCESS_KEY": seaweedfs.access_key_id,
        "BOTMOX_MINIO_SECRET_KEY": seaweedfs.secret_access_key,
    }
