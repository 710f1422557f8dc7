"""The core's repository conformance suite, unchanged, against the RTDB backend: real
firebase-admin over HTTP to the shipped emulator."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from botmox_rtdb import RtdbBackend
from botmox_rtdb.testing import RtdbEmulator
from conftest import backend_for

from botmox_core.testing import RepositoryConformance


class TestRtdbRepositoryConformance(RepositoryConformance):
    # A commit applies conditional writes one by one, then one atomic multi-path update:
    # not atomic as a whole (docs/rtdb.md, "Units of work").
    supports_multi_record_transactions = False
    # Timestamps are stored as the shared converter writes them: ISO 8601, milliseconds.
    preserves_microseconds = False

    @pytest.fixture
    def backend(self, emulator: RtdbEmulator, namespace: str) -> Iterator[RtdbBackend]:
        backend = backend_for(emulator, namespace)
        yield backend
        backend.close()

    @pytest.fixture
    def second_backend(
        self, backend: RtdbBackend, emulator: RtdbEmulator, namespace: str
    ) -> Iterator[RtdbBackend]:
        other = backend_for(emulator, namespace)
        yield other
        other.close()
