"""botmox_s3.testing: a missing ``weed`` skips the tests, except under CI=true where it fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from botmox_s3.testing import SeaweedFSNotInstalled, find_weed_binary

USES_SERVER = """
from botmox_s3.testing import seaweedfs_or_skip

def test_needs_s3():
    with seaweedfs_or_skip():
        pass
"""


def _run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_kit_probe.py").write_text(USES_SERVER, encoding="utf-8")
    env = {**os.environ, "CI": ci, "BOTMOX_WEED_BINARY": str(tmp_path / "no-weed-here")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_missing_binary_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTMOX_WEED_BINARY", "/nonexistent/weed")
    with pytest.raises(SeaweedFSNotInstalled, match="not executable"):
        find_weed_binary()


def test_missing_binary_skips_outside_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, ci="")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout


def test_missing_binary_fails_under_ci(tmp_path: Path) -> None:
    done = _run(tmp_path, ci="true")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "CI=true and no real S3 server" in done.stdout
