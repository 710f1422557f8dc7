"""Test helpers of botmox-s3: a real SeaweedFS S3 server (see :mod:`.seaweedfs`).

:func:`seaweedfs_or_skip` is the pytest-facing entry: it yields a running server, skips the
test when ``weed`` is missing, and fails it instead when ``CI=true``, so CI never goes green
without having talked to a real S3 server.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from botmox_s3.testing.seaweedfs import (
    SeaweedFS,
    SeaweedFSNotInstalled,
    find_weed_binary,
    running_seaweedfs,
)

__all__ = [
    "SeaweedFS",
    "SeaweedFSNotInstalled",
    "find_weed_binary",
    "running_seaweedfs",
    "seaweedfs_or_skip",
]


@contextlib.contextmanager
def seaweedfs_or_skip() -> Iterator[SeaweedFS]:
    """:func:`running_seaweedfs` for pytest: skip without ``weed``, but fail under ``CI=true``."""
    import pytest

    try:
        find_weed_binary()
    except SeaweedFSNotInstalled as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and no real S3 server: {exc}")
        pytest.skip(str(exc))
    with running_seaweedfs() as server:
        yield server
