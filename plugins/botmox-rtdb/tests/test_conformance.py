"""The core's repository conformance suite, unchanged, against the RTDB backend: real
firebase-admin over HTTP to the shipped emulator."""

from __future__ import annotations

from typing import Any

import pytest
from botmox_rtdb import RtdbBackend

from botmox_core.testing import RepositoryConformance


class TestRtdbRepositoryConformance(RepositoryConformance):
    # A commit applies conditional writes one by one, then one atomic multi-path update:
    # not atomic as a whole (docs/rtdb.md, "Units of work").
    supports_multi_record_transactions = False
    # Timestamps are stored as the shared converter writes them: ISO 8601, milliseconds.
    preserves_microseconds = False

    @pytest.fixture
    def backend(self, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]

    @pytest.fixture
    def second_backend(self, backend: RtdbBackend, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]
