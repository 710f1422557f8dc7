"""Shared fixtures of the core's tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from botmox_core.bootstrap import App, bootstrap
from botmox_core.config import load_settings


class FakeClock:
    """A settable clock for services (time is an input, not a side effect)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def core(tmp_path: Path, clock: FakeClock) -> Iterator[App]:
    """The embedded default (SQLite file + localfs) with every service, on a fake clock."""
    settings = load_settings({"BOTMOX_DATA_DIR": str(tmp_path / "data"), "BOTMOX_PLUGINS": "none"})
    app = bootstrap(settings, clock=clock)
    try:
        yield app
    finally:
        app.close()
