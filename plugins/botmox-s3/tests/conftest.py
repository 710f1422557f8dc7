"""Fixtures: one real SeaweedFS S3 server per test session, a fresh bucket per test."""

from __future__ import annotations

from collections.abc import Iterator

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
def s3_env(seaweedfs: SeaweedFS, bucket: str) -> dict[str, str]:
    """Environment selecting the s3 plugin on ``bucket`` of the test server."""
    return {"BOTMOX_STORAGE": "s3", **seaweedfs.storage_env(bucket)}
