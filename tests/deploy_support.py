"""Helpers of the deploy tests (``tests/test_deploy_*.py``): where the deploy files are, and
external tools (caddy, hadolint ...) that are required where ``nox -s deploy_lint`` installed
them and skipped elsewhere."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"

TOOLS_REQUIRED = os.environ.get("BOTMOX_DEPLOY_TOOLS") == "required"
"""Set by ``nox -s deploy_lint`` (which installs the tools): a missing tool fails the test."""


def require_tool(name: str) -> str:
    """The tool's path; skip (or fail under ``BOTMOX_DEPLOY_TOOLS=required``) without it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not on PATH (nox -s deploy_lint installs it)"
        if TOOLS_REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    return path
