"""Shared fixtures: one emulator per test session, a fresh namespace (database) per backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from botmox_rtdb import RtdbBackend, build_backend
from botmox_rtdb.rules import rules_document
from botmox_rtdb.testing import RtdbEmulator

from botmox_core.config import load_settings


@pytest.fixture(scope="session")
def emulator() -> Iterator[RtdbEmulator]:
    """A running emulator loaded with the plugin's rules; stopped at the end of the session."""
    server = RtdbEmulator(rules=rules_document())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def namespace() -> str:
    """A fresh, empty database in the emulator."""
    return f"botmox-test-{uuid.uuid4().hex[:12]}"


def backend_for(emulator: RtdbEmulator, namespace: str, **extra: str) -> RtdbBackend:
    """A backend built by the plugin factory from settings, as the server builds it."""
    environ = {
        "BOTMOX_RTDB_DATABASE_URL": f"https://{namespace}.firebaseio.com",
        "FIREBASE_DATABASE_EMULATOR_HOST": emulator.host_port,
        **extra,
    }
    return build_backend(load_settings(environ))


@pytest.fixture
def rtdb(emulator: RtdbEmulator, namespace: str) -> Iterator[RtdbBackend]:
    """An RTDB backend on a fresh namespace of the shared emulator."""
    backend = backend_for(emulator, namespace)
    yield backend
    backend.close()
