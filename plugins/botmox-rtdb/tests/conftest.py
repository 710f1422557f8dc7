"""Shared fixtures: one emulator per test session, a fresh namespace (database) per backend."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from botmox_rtdb import RtdbBackend, build_backend
from botmox_rtdb.rules import rules_document
from botmox_rtdb.testing import RtdbEmulator, emulator_environ

from botmox_core.config import load_settings

BackendFactory = Callable[..., RtdbBackend]


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


@pytest.fixture
def make_backend(emulator: RtdbEmulator, namespace: str) -> Iterator[BackendFactory]:
    """Build backends on the test's namespace with the plugin factory, as the server does
    (``make_backend(**extra_environ)``); all are closed after the test."""
    built: list[RtdbBackend] = []

    def make(**extra: str) -> RtdbBackend:
        environ = {**emulator_environ(emulator.host_port, namespace), **extra}
        backend = build_backend(load_settings(environ))
        built.append(backend)
        return backend

    yield make
    for backend in built:
        backend.close()


@pytest.fixture
def rtdb(make_backend: BackendFactory) -> RtdbBackend:
    """An RTDB backend on a fresh namespace of the shared emulator."""
    return make_backend()
