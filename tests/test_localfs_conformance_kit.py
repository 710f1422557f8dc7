"""The object-storage conformance kit itself: run in a separate pytest process against a backend
with no fixture, with capabilities switched off, and against deliberately broken storages, it must
error, skip and fail exactly where it should."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

PRELUDE = """
import io
import pytest
from botmox_core.backends.localfs import LocalFsStorage
from botmox_core.testing import ObjectStorageConformance

class LocalFixture:
    supports_presigned_urls = False

    @pytest.fixture
    def storage(self, tmp_path):
        store = self.storage_class(
            tmp_path / "objects", base_url="http://127.0.0.1:9", url_key=b"k" * 32
        )
        yield store
        store.close()
"""


def _run_suite(tmp_path: Path, body: str) -> dict[str, str]:
    """Outcome (``passed``/``failed``/``skipped``/``error``) per ``Class::test`` of a generated
    test module."""
    module = tmp_path / "test_generated_storage.py"
    module.write_text(PRELUDE + textwrap.dedent(body))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(module), "-v", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=240,
        check=False,
    )
    outcomes: dict[str, str] = {}
    pattern = re.compile(r"::(\w+)::(\w+) (PASSED|FAILED|SKIPPED|ERROR)\b")
    for line in result.stdout.splitlines():
        match = pattern.search(line)
        if match:
            outcomes[f"{match[1]}::{match[2]}"] = match[3].lower()
    assert outcomes, result.stdout + result.stderr
    return outcomes


def test_missing_storage_fixture_errors_with_guidance(tmp_path: Path) -> None:
    module = tmp_path / "test_no_fixture.py"
    module.write_text(
        "from botmox_core.testing import ObjectStorageConformance\n"
        "class TestNothing(ObjectStorageConformance):\n"
        "    pass\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(module), "-q", "-p", "no:cacheprovider", "-x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "must define a `storage` fixture" in result.stdout


def test_capability_flags_skip_with_reason(tmp_path: Path) -> None:
    outcomes = _run_suite(
        tmp_path,
        """
        class TestPlain(LocalFixture, ObjectStorageConformance):
            storage_class = LocalFsStorage
            supports_key_and_prefix_coexistence = False
        """,
    )
    for name in (
        "test_presigned_url_downloads_exact_bytes",
        "test_presigned_url_honours_range",
        "test_tampered_presigned_url_is_refused",
        "test_expired_presigned_url_is_refused",
        "test_key_and_longer_key_coexist",
        "test_raw_read_matches_uploaded_bytes",
    ):
        assert outcomes[f"TestPlain::{name}"] == "skipped", name
    assert outcomes["TestPlain::test_large_object_streams_in_chunks"] == "passed"
    assert outcomes["TestPlain::test_failing_source_keeps_previous_object"] == "passed"
    assert "error" not in outcomes.values() and "failed" not in outcomes.values()


def test_suite_catches_partial_uploads_and_ignored_ranges(tmp_path: Path) -> None:
    outcomes = _run_suite(
        tmp_path,
        """
        class SwallowingStream(io.RawIOBase):
            '''Turns a source failure into EOF, so the truncated upload gets committed.'''
            def __init__(self, inner):
                self.inner = inner
            def readable(self):
                return True
            def readinto(self, buffer):
                try:
                    return self.inner.readinto(buffer)
                except Exception:
                    return 0

        class CommitsPartialUploads(LocalFsStorage):
            def put(self, key, stream, **kwargs):
                return super().put(key, SwallowingStream(stream), **kwargs)

        class IgnoresRanges(LocalFsStorage):
            def open(self, key, *, start=0, end=None):
                return super().open(key)

        class TestPartial(LocalFixture, ObjectStorageConformance):
            storage_class = CommitsPartialUploads

        class TestRanges(LocalFixture, ObjectStorageConformance):
            storage_class = IgnoresRanges
        """,
    )
    assert outcomes["TestPartial::test_failing_source_leaves_no_object"] == "failed"
    assert outcomes["TestPartial::test_failing_source_keeps_previous_object"] == "failed"
    assert outcomes["TestPartial::test_put_replaces_existing_object"] == "passed"
    for name in (
        "test_open_range_from_start_offset",
        "test_open_range_with_inclusive_end",
        "test_open_range_last_byte",
        "test_open_range_across_chunk_boundary",
    ):
        assert outcomes[f"TestRanges::{name}"] == "failed", name
    assert outcomes["TestRanges::test_open_returns_stored_bytes"] == "passed"
