"""Capabilities are declared on the ports and read, never probed: every shipped backend and
storage declares them, the composition root acts on the declaration (agent transport, wrapping a
storage that cannot presign) and refuses a plugin that declares nothing, and the conformance
kits run the tests of every claimed capability, so a false claim fails instead of skipping."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from botmox_core.backends.localfs import LocalFsStorage
from botmox_core.backends.signed_urls import ServerSignedStorage
from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.bootstrap import bootstrap, select_agent_transport
from botmox_core.config import load_settings
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import load_registry
from botmox_core.ports import (
    AgentDataBackend,
    BackendCapabilities,
    PresigningStorage,
    StorageCapabilities,
    presigning,
    supports_agents,
)


def test_shipped_backends_declare_what_their_suites_check() -> None:
    from botmox_rtdb import RtdbBackend
    from botmox_supabase.backend import PostgresDataBackend

    full = {"rollback": True, "multi_record_transactions": True, "microsecond_timestamps": True}
    for backend in (SqliteBackend, PostgresDataBackend):
        declared = backend.capabilities
        assert declared.agents and declared.validates_release_values
        assert {name: getattr(declared, name) for name in full} == full
    assert PostgresDataBackend.capabilities.preferred_agent_transport == "postgres"
    assert SqliteBackend.capabilities.preferred_agent_transport is None
    rtdb = RtdbBackend.capabilities
    assert (rtdb.agents, rtdb.rollback, rtdb.multi_record_transactions) == (False, True, False)
    assert rtdb.microsecond_timestamps is False


def test_shipped_storages_declare_whether_they_presign() -> None:
    from botmox_fsspec_storage import FsspecStorage
    from botmox_minio.storage import MinioStorage
    from botmox_s3.storage import S3Storage

    for storage in (S3Storage, MinioStorage):  # behind a network: resolves use a thread
        assert storage.capabilities == StorageCapabilities(presign=True), storage
    assert LocalFsStorage.capabilities == StorageCapabilities(presign=True, local_reads=True)
    assert FsspecStorage.capabilities == StorageCapabilities(presign=False)


def test_only_the_embedded_pair_claims_local_reads() -> None:
    """SQLite + localfs read only this host's files, so resolve-download may run on the event
    loop; a backend or storage behind a network must not claim it."""
    from botmox_rtdb import RtdbBackend
    from botmox_supabase.backend import PostgresDataBackend

    from botmox_core.backends.signed_urls import DownloadUrlSigner, ServerSignedStorage

    assert SqliteBackend.capabilities.local_reads is True
    assert PostgresDataBackend.capabilities.local_reads is False
    assert RtdbBackend.capabilities.local_reads is False
    assert BackendCapabilities().local_reads is False and StorageCapabilities().local_reads is False
    signer = DownloadUrlSigner(base_url="http://x.example", key=b"k" * 32)

    class Remote:  # a storage that cannot presign and reads over a network
        name = "remote"
        capabilities = StorageCapabilities(presign=False)

    class LocalDisk(Remote):
        capabilities = StorageCapabilities(presign=False, local_reads=True)

    assert ServerSignedStorage(Remote(), signer).capabilities.local_reads is False  # type: ignore[arg-type]
    assert ServerSignedStorage(LocalDisk(), signer).capabilities.local_reads is True  # type: ignore[arg-type]


def test_capabilities_are_frozen_and_claim_nothing_by_default() -> None:
    declared = BackendCapabilities()
    assert not any(
        (declared.agents, declared.rollback, declared.multi_record_transactions,
         declared.microsecond_timestamps, declared.validates_release_values)
    )  # fmt: skip
    with pytest.raises(AttributeError):
        declared.agents = True  # type: ignore[misc]
    with pytest.raises(TypeError):
        BackendCapabilities(preferred_agent_transport=5)  # type: ignore[arg-type]
    assert StorageCapabilities().presign is False


class _NoUnits:
    """A backend whose units of work must not be made: supports_agents() reads the claim."""

    name = "declared"

    def __init__(self, agents: bool) -> None:
        self.capabilities = BackendCapabilities(agents=agents)

    def unit_of_work(self) -> Any:
        raise AssertionError("supports_agents() made a unit of work")

    def check_health(self) -> Any:
        raise AssertionError("not called")

    def close(self) -> None:
        return None


def test_supports_agents_reads_the_declaration_without_a_unit() -> None:
    assert supports_agents(_NoUnits(agents=True))  # type: ignore[arg-type]
    assert not supports_agents(_NoUnits(agents=False))  # type: ignore[arg-type]
    assert isinstance(_NoUnits(agents=True), AgentDataBackend)


def test_preferred_transport_comes_from_the_declaration() -> None:
    registry = load_registry({"BOTMOX_PLUGINS": "none"})
    registry.agent_transports.register("postgres", lambda settings: None)
    backend = _NoUnits(agents=True)
    backend.capabilities = BackendCapabilities(agents=True, preferred_agent_transport="postgres")
    assert select_agent_transport({}, backend, registry) == "postgres"  # type: ignore[arg-type]


class _Undeclared:
    """A storage written before capabilities existed."""

    name = "old-style"
    closed = False

    def close(self) -> None:
        _Undeclared.closed = True


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"BOTMOX_DATA_DIR": str(tmp_path / "data"), "BOTMOX_PLUGINS": "none", **extra}


def test_bootstrap_refuses_a_storage_that_declares_nothing(tmp_path: Path) -> None:
    env = _env(tmp_path, BOTMOX_STORAGE="old-style")
    registry = load_registry(env)
    registry.storages.register("old-style", lambda settings: _Undeclared())
    with pytest.raises(ConfigurationError, match="storage 'old-style' does not declare"):
        bootstrap(load_settings(env), registry=registry)
    assert _Undeclared.closed


def test_bootstrap_refuses_a_backend_that_declares_nothing(tmp_path: Path) -> None:
    class OldBackend(SqliteBackend):
        name = "old-backend"
        capabilities = None  # type: ignore[assignment]

    env = _env(tmp_path, BOTMOX_DATA_BACKEND="old-backend")
    registry = load_registry(env)
    built: list[OldBackend] = []
    registry.data_backends.register("old-backend", lambda s: built.append(OldBackend()) or built[0])
    with pytest.raises(ConfigurationError, match="data backend 'old-backend' does not declare"):
        bootstrap(load_settings(env), registry=registry)
    assert built and built[0]._closed


def test_bootstrap_serves_a_storage_that_cannot_presign(tmp_path: Path) -> None:
    class Plain(LocalFsStorage):
        name = "plain"
        capabilities = StorageCapabilities(presign=False)

    env = _env(tmp_path, BOTMOX_STORAGE="plain", BOTMOX_PUBLIC_URL="https://botmox.example")
    registry = load_registry(env)
    registry.storages.register(
        "plain", lambda s: Plain(tmp_path / "o", base_url="http://unused", url_key=b"k" * 32)
    )
    core = bootstrap(load_settings(env), registry=registry)
    try:
        assert isinstance(core.storage, ServerSignedStorage)
        assert isinstance(core.storage.inner, Plain)
        core.storage.put("t/a.bin", io.BytesIO(b"abc"))
        url = presigning(core.storage).presign_download("t/a.bin", ttl_seconds=60).url
        assert re.fullmatch(
            r"https://botmox\.example/api/v1/storage/plain/t/a\.bin\?expires=\d+&signature=[0-9a-f]{64}",
            url,
        )
        assert core.health()["storage"].ok
    finally:
        core.close()
    presigning_one = bootstrap(load_settings(_env(tmp_path)))
    try:
        assert isinstance(presigning_one.storage, LocalFsStorage)  # presigns: not wrapped
    finally:
        presigning_one.close()


def test_presigning_refuses_a_storage_that_cannot(tmp_path: Path) -> None:
    class Plain(LocalFsStorage):
        capabilities = StorageCapabilities(presign=False)

    plain = Plain(tmp_path, base_url="http://x", url_key=b"k" * 32)
    assert isinstance(plain, PresigningStorage)  # it has the method, but declares it cannot
    with pytest.raises(ConfigurationError, match="cannot make download URLs"):
        presigning(plain)
    with pytest.raises(ConfigurationError, match="do not wrap it"):
        ServerSignedStorage(LocalFsStorage(tmp_path, base_url="http://x", url_key=b"k" * 32),
                            plain.url_signer)  # fmt: skip


# -- the conformance kits read the declaration ------------------------------------------------

REPOSITORY_PRELUDE = """
import attrs
import pytest
from botmox_core.backends.sqlite import SqliteBackend
from botmox_core.backends.sqlite.backend import SqliteUnitOfWork
from botmox_core.testing import RepositoryConformance


class LeakyUnit(SqliteUnitOfWork):
    '''Keeps every write: commits where it should roll back.'''

    def rollback(self):
        self.commit()

    def __exit__(self, *exc_info):
        if self._connection is not None:
            self.commit()
        super().__exit__(*exc_info)


class LeakyBackend(SqliteBackend):
    def unit_of_work(self):
        return LeakyUnit(self)


class NoAgentsBackend(SqliteBackend):
    '''Claims agents, but its units do not carry them.'''
    def unit_of_work(self):
        unit = super().unit_of_work()
        class Unit:
            def __enter__(self):
                unit.__enter__()
                return self
            def __exit__(self, *exc_info):
                unit.__exit__(*exc_info)
        return Unit()


class Fixture:
    backend_class = SqliteBackend

    @pytest.fixture
    def backend(self, tmp_path):
        backend = self.backend_class(tmp_path / "db.sqlite3")
        yield backend
        backend.close()
"""


def _outcomes(tmp_path: Path, prelude: str, body: str, select: str) -> dict[str, str]:
    module = tmp_path / "test_generated.py"
    module.write_text(prelude + textwrap.dedent(body))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(module), "-v", "-rs", "-p", "no:cacheprovider",
         "-k", select],
        capture_output=True, text=True, cwd=tmp_path, timeout=240, check=False,
    )  # fmt: skip
    outcomes = {
        f"{m[1]}::{m[2]}": m[3].lower()
        for m in re.finditer(r"::(\w+)::(\w+) (PASSED|FAILED|SKIPPED|ERROR)\b", result.stdout)
    }
    assert outcomes, result.stdout + result.stderr
    outcomes["_output"] = result.stdout
    return outcomes


ROLLBACK_TESTS = (
    "test_exit_without_commit_rolls_back",
    "test_explicit_rollback_discards",
)


def test_a_claimed_capability_runs_its_tests_and_a_false_claim_fails(tmp_path: Path) -> None:
    outcomes = _outcomes(
        tmp_path,
        REPOSITORY_PRELUDE,
        """
        class TestHonest(Fixture, RepositoryConformance):
            pass

        class TestFalseClaim(Fixture, RepositoryConformance):
            backend_class = LeakyBackend  # declares rollback=True, as SqliteBackend does

        class LeakyDeclared(LeakyBackend):
            capabilities = attrs.evolve(
                SqliteBackend.capabilities, rollback=False, multi_record_transactions=False
            )

        class TestDeclaredWithout(Fixture, RepositoryConformance):
            backend_class = LeakyDeclared

        class TestOverride(Fixture, RepositoryConformance):
            backend_class = LeakyBackend
            supports_rollback = False  # the class flag still wins, for older suites

        class AgentsClaimed(NoAgentsBackend):
            pass

        class TestAgentsClaim(Fixture, RepositoryConformance):
            backend_class = AgentsClaimed
        """,
        "rolls_back or rollback_discards or declares_its_capabilities",
    )
    for name in ROLLBACK_TESTS:
        assert outcomes[f"TestHonest::{name}"] == "passed", name
        assert outcomes[f"TestFalseClaim::{name}"] == "failed", name
        assert outcomes[f"TestDeclaredWithout::{name}"] == "skipped", name
        assert outcomes[f"TestOverride::{name}"] == "skipped", name
    assert "the backend declares rollback=False" in outcomes["_output"]
    assert "TestOverride.supports_rollback is False" in outcomes["_output"]
    assert outcomes["TestHonest::test_declares_its_capabilities"] == "passed"
    assert outcomes["TestDeclaredWithout::test_declares_its_capabilities"] == "passed"
    assert outcomes["TestAgentsClaim::test_declares_its_capabilities"] == "failed"


STORAGE_PRELUDE = """
import pytest
from botmox_core.backends.localfs import LocalFsStorage
from botmox_core.ports import StorageCapabilities
from botmox_core.testing import ObjectStorageConformance


class Plain(LocalFsStorage):
    '''localfs declaring it cannot presign: the suite must serve it through the server.'''
    capabilities = StorageCapabilities(presign=False)


class Claims:
    '''Declares presign=True without a presign_download method.'''
    name = "claims"
    capabilities = StorageCapabilities(presign=True)
    def __init__(self, inner):
        self._inner = inner
    def put(self, *a, **k): return self._inner.put(*a, **k)
    def open(self, *a, **k): return self._inner.open(*a, **k)
    def head(self, key): return self._inner.head(key)
    def delete(self, key): return self._inner.delete(key)
    def check_health(self): return self._inner.check_health()
    def close(self): self._inner.close()


class Fixture:
    wrap = staticmethod(lambda store: store)

    @pytest.fixture
    def storage(self, tmp_path):
        store = self.wrap(Plain(tmp_path / "o", base_url="http://127.0.0.1:9", url_key=b"k" * 32))
        yield store
        store.close()
"""


def test_storage_suite_serves_a_storage_that_cannot_presign(tmp_path: Path) -> None:
    outcomes = _outcomes(
        tmp_path,
        STORAGE_PRELUDE,
        """
        class TestServed(Fixture, ObjectStorageConformance):
            pass

        class TestFalseClaim(Fixture, ObjectStorageConformance):
            wrap = staticmethod(Claims)
        """,
        "presigned or declares",
    )
    served = {k: v for k, v in outcomes.items() if k.startswith("TestServed::")}
    assert len(served) == 6 and set(served.values()) == {"passed"}, served
    assert outcomes["TestFalseClaim::test_declares_its_capabilities"] == "failed"
    assert outcomes["TestFalseClaim::test_presigned_url_downloads_exact_bytes"] in {
        "failed",
        "error",
    }
