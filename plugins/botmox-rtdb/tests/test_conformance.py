"""The core's repository conformance suite, unchanged, against the RTDB backend: real
firebase-admin over HTTP to the shipped emulator."""

from __future__ import annotations

from typing import Any

import pytest
from botmox_rtdb import RtdbBackend

from botmox_core.testing import RepositoryConformance


class TestRtdbRepositoryConformance(RepositoryConformance):
    # No capability flags: the suite reads RtdbBackend.capabilities (no multi-record
    # transactions, millisecond timestamps; docs/rtdb.md, "Units of work") and runs the tests of
    # everything it claims.

    @pytest.fixture
    def backend(self, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]

    @pytest.fixture
    def second_backend(self, backend: RtdbBackend, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]
