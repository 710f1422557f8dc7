"""The on-disk rules of a resumable download (``PartialDownload``), answer by answer."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from botmox_core.client import PartialDownload, ServerError
from botmox_core.errors import ArtifactIntegrityError, BadRequestError

DATA = bytes(range(256)) * 40
SHA = hashlib.sha256(DATA).hexdigest()
ETAG = '"v1"'


def interrupted(tmp_path: Path, have: int = 1000) -> PartialDownload:
    """A download that received ``have`` bytes of a 200 answer and then broke off."""
    partial = PartialDownload(tmp_path / "f.bin", SHA, len(DATA))
    partial.prepare()
    partial.begin(200, {"etag": ETAG, "content-length": str(len(DATA))})
    partial.write(DATA[:have])
    partial.suspend()
    again = PartialDownload(tmp_path / "f.bin", SHA, len(DATA))
    again.prepare()
    return again


def test_resume_headers_and_append(tmp_path: Path) -> None:
    partial = interrupted(tmp_path)
    assert partial.have == 1000
    assert partial.request_headers() == {
        "Accept-Encoding": "identity",
        "Range": "bytes=1000-",
        "If-Range": ETAG,
    }
    partial.begin(206, {"content-range": f"bytes 1000-{len(DATA) - 1}/{len(DATA)}", "etag": ETAG})
    partial.write(DATA[1000:])
    result = partial.finish()
    assert result.resumed_from == 1000
    assert (tmp_path / "f.bin").read_bytes() == DATA


def test_wrong_content_range_start_restarts(tmp_path: Path) -> None:
    partial = interrupted(tmp_path)
    with pytest.raises(ServerError) as caught:
        partial.begin(206, {"content-range": f"bytes 0-{len(DATA) - 1}/{len(DATA)}"})
    assert caught.value.retryable
    assert not partial.part_path.exists() and partial.have == 0


def test_other_total_size_is_an_integrity_error(tmp_path: Path) -> None:
    partial = interrupted(tmp_path)
    with pytest.raises(ArtifactIntegrityError):
        partial.begin(206, {"content-range": "bytes 1000-1999/2000"})
    assert not partial.part_path.exists() and not partial.sidecar_path.exists()


def test_changed_etag_restarts(tmp_path: Path) -> None:
    partial = interrupted(tmp_path)
    with pytest.raises(ServerError):
        partial.begin(
            206, {"content-range": f"bytes 1000-{len(DATA) - 1}/{len(DATA)}", "etag": '"v2"'}
        )
    assert not partial.part_path.exists()


def test_weak_etag_is_not_used_for_if_range(tmp_path: Path) -> None:
    partial = PartialDownload(tmp_path / "f.bin", SHA, len(DATA))
    partial.prepare()
    partial.begin(200, {"etag": 'W/"weak"', "last-modified": "Tue, 24 Nov 2026 20:00:00 GMT"})
    partial.write(DATA[:10])
    partial.suspend()
    again = PartialDownload(tmp_path / "f.bin", SHA, len(DATA))
    again.prepare()
    assert again.request_headers()["If-Range"] == "Tue, 24 Nov 2026 20:00:00 GMT"


def test_overflow_is_cut_off(tmp_path: Path) -> None:
    partial = PartialDownload(tmp_path / "f.bin", SHA, len(DATA))
    partial.prepare()
    partial.begin(200, {})
    with pytest.raises(ArtifactIntegrityError):
        partial.write(DATA + b"extra")
    assert not partial.part_path.exists()


def test_tampered_part_on_disk_fails_verification(tmp_path: Path) -> None:
    partial = interrupted(tmp_path)
    partial.close()
    part = bytearray(partial.part_path.read_bytes())
    part[10] ^= 1  # the bytes on disk rotted between runs
    partial.part_path.write_bytes(bytes(part))
    again = PartialDownload(tmp_path / "f.bin", SHA, len(DATA))
    again.prepare()  # re-hashes what is on disk, so the final hash covers the whole file
    again.begin(206, {"content-range": f"bytes 1000-{len(DATA) - 1}/{len(DATA)}"})
    again.write(DATA[1000:])
    with pytest.raises(ArtifactIntegrityError):
        again.finish()
    assert not (tmp_path / "f.bin").exists() and not again.part_path.exists()


def test_bad_expectations_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(BadRequestError):
        PartialDownload(tmp_path / "f", "not-hex", 1)
    with pytest.raises(BadRequestError):
        PartialDownload(tmp_path / "f", SHA, -1)
