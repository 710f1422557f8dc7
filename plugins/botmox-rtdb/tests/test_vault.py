"""The vault on RTDB (real firebase-admin over HTTP to the shipped emulator): the conformance
kit, the layout, and an export of the database that holds the ciphertext but never the
plaintext."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import requests
from botmox_rtdb import RtdbBackend
from botmox_rtdb import layout as runner_layout
from botmox_rtdb.domain_repositories import DOMAIN_ROOTS
from botmox_rtdb.rules import rules_document
from botmox_rtdb.testing import ADMIN_TOKEN, RtdbEmulator
from botmox_rtdb.vault_repositories import VAULT, binding_key

from botmox_core.errors import (
    DatabaseError,
    DuplicateError,
    SecretVersionConflictError,
)
from botmox_core.ports.vault import VaultUnitOfWork, supports_vault
from botmox_core.testing.vault import (
    T0,
    RawVaultDump,
    VaultAtRestConformance,
    VaultRepositoryConformance,
    envelope_texts,
    make_aes_envelope,
    make_binding,
    make_secret,
    make_version,
)
from botmox_core.vault.models import Secret, SecretVersion


class TestRtdbVault(VaultRepositoryConformance[RtdbBackend]):
    @pytest.fixture
    def backend(self, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]

    @pytest.fixture
    def second_backend(self, backend: RtdbBackend, make_backend: Any) -> RtdbBackend:
        return make_backend()  # type: ignore[no-any-return]


# -- layout, races, the export ---------------------------------------------------------------

LEGACY = "legacy-tenant"


def _write(backend: RtdbBackend, action: Callable[[VaultUnitOfWork], Any]) -> Any:
    assert supports_vault(backend)
    with backend.unit_of_work() as uow:
        result = action(uow)
        uow.commit()
    return result


def _read(backend: RtdbBackend, action: Callable[[VaultUnitOfWork], Any]) -> Any:
    assert supports_vault(backend)
    with backend.unit_of_work() as uow:
        return action(uow)


def _store(backend: RtdbBackend, secret: Secret, envelope: Any = None) -> SecretVersion:
    version = make_version(secret, envelope)

    def add(uow: VaultUnitOfWork) -> None:
        uow.secrets.add(secret)
        uow.secrets.add_version(version)

    _write(backend, add)
    return version


@pytest.fixture
def legacy(make_backend: Callable[..., RtdbBackend]) -> RtdbBackend:
    return make_backend(BOTMOX_RTDB_LEGACY_TENANT=LEGACY)


def test_the_vault_is_under_tenants_for_every_tenant_the_legacy_one_too(
    legacy: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    for tenant in (LEGACY, "tenant-b"):
        secret = make_secret(tenant)
        _store(legacy, secret)
        binding = make_binding(tenant, secret.id, scope_id="vm ünï/#$[].x", field_name="a.b")
        _write(legacy, lambda uow, b=binding: uow.bindings.upsert(b))
        base = f"tenants/{tenant}/vault"
        stored = emulator.read(namespace, f"{base}/secrets/{secret.id}")
        assert stored["label"] == secret.label and stored["version"] == 1
        assert json.loads(stored["aad_meta"]) == secret.aad_meta
        version = emulator.read(namespace, f"{base}/versions/{secret.id}/1")
        assert json.loads(version["envelope"])["alg"] == secret.alg
        key = binding_key(binding.scope_type, binding.scope_id, binding.field_name)
        assert emulator.read(namespace, f"{base}/bindings/{key}")["scope_id"] == binding.scope_id
    root = emulator.read(namespace, "/")
    assert set(root) == {"tenants"}, "nothing of the vault at the seed's global paths"
    # `vault` is neither a runner path nor a domain root (non-legacy tenants keep theirs there).
    runner = {
        runner_layout.VM_REGISTRY,
        runner_layout.LICENCES,
        runner_layout.ENTITLEMENTS,
        runner_layout.LEASES,
        runner_layout.API_TOKENS,
        runner_layout.RELEASES,
        runner_layout.ASSIGNMENTS,
        runner_layout.AUDIT,
        runner_layout.COUNTERS,
    }
    assert VAULT not in runner | DOMAIN_ROOTS


def test_binding_filters_are_indexed_queries(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    """``.indexOn`` of vault/bindings is in the shipped rules: without it the emulator (like
    RTDB) refuses the filtered lists, so they are server-side queries."""
    secret = make_secret("t1")
    _store(rtdb, secret)
    binding = make_binding("t1", secret.id, scope_id="a&b=c+d%20#")
    _write(rtdb, lambda uow: uow.bindings.upsert(binding))
    for filters in ({"secret_ref": secret.id}, {"scope_id": binding.scope_id}):
        assert _read(rtdb, lambda uow, f=filters: uow.bindings.list("t1", **f)) == [binding]
    assert (
        "scope_id"
        in rules_document()["rules"]["tenants"]["$tenant_id"]["vault"]["bindings"][".indexOn"]
    )
    emulator.set_rules({"rules": {".read": False, ".write": False}})
    try:
        for filters in ({"secret_ref": secret.id}, {"scope_id": binding.scope_id}):
            with pytest.raises(DatabaseError, match="index missing"):
                _read(rtdb, lambda uow, f=filters: uow.bindings.list("t1", **f))
        assert _read(rtdb, lambda uow: uow.bindings.list("t1")) == [binding]
    finally:
        emulator.set_rules(rules_document())


def _rotation(
    tenant: str, secret_id: str, expected: int | None
) -> Callable[[VaultUnitOfWork], Secret]:
    """What the rotate service stages: the check-and-set modify, then version n+1."""

    def rotate(uow: VaultUnitOfWork) -> Secret:
        def change(current: Secret) -> Secret:
            if expected is not None and current.version != expected:
                raise SecretVersionConflictError("stale", details={"version": current.version})
            return attrs.evolve(current, version=current.version + 1, rotated_at=T0)

        rotated = uow.secrets.modify(tenant, secret_id, change)
        assert rotated is not None
        uow.secrets.add_version(make_version(rotated, make_aes_envelope()))
        return rotated

    return rotate


@pytest.mark.parametrize("expected", [1, None], ids=["expected-version", "no-expected-version"])
def test_a_rotation_that_lost_the_race_writes_nothing(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str, expected: int | None
) -> None:
    secret = make_secret("t1")
    _store(rtdb, secret)
    assert supports_vault(rtdb)
    first, second = rtdb.unit_of_work(), rtdb.unit_of_work()
    with first, second:
        _rotation("t1", secret.id, expected)(first)
        _rotation("t1", secret.id, expected)(second)
        first.commit()
        won = emulator.read(namespace, "tenants/t1/vault")
        error = SecretVersionConflictError if expected is not None else DuplicateError
        with pytest.raises(error):
            second.commit()
    # The loser's secret change was refused (or undone) and its version never written.
    assert emulator.read(namespace, "tenants/t1/vault") == won
    current = _read(rtdb, lambda uow: uow.secrets.get("t1", secret.id))
    assert current.version == 2
    assert [v.version for v in _read(rtdb, lambda uow: uow.secrets.versions("t1", secret.id))] == [
        2,
        1,
    ]


def test_a_tampered_envelope_reads_as_a_database_error_without_its_text(
    rtdb: RtdbBackend, emulator: RtdbEmulator, namespace: str
) -> None:
    secret = make_secret("t1")
    version = _store(rtdb, secret)
    path = f"tenants/t1/vault/versions/{secret.id}/1/envelope"
    document = json.loads(emulator.read(namespace, path))
    document["recipients"][0]["enc"] = "bm90IGJhc2U2NA"
    emulator.write(namespace, path, json.dumps(document))
    with pytest.raises(DatabaseError) as caught:
        _read(rtdb, lambda uow: uow.secrets.get_version("t1", secret.id, 1))
    assert caught.value.message == "a stored secret envelope is malformed"
    assert caught.value.__cause__ is None
    assert all(value not in str(caught.value) for value in envelope_texts(version.envelope))


class TestRtdbVaultAtRest(VaultAtRestConformance[RtdbBackend]):
    """The kit's at-rest check on the database's JSON export (GET /.json of the root, what
    `firebase database:get /` fetches), for the legacy tenant and another, on a backend
    configured with a legacy tenant."""

    @pytest.fixture
    def backend(self, legacy: RtdbBackend) -> RtdbBackend:
        return legacy

    @pytest.fixture(params=[LEGACY, "tenant-b"], ids=["legacy-tenant", "other-tenant"])
    def tenant(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def raw_vault_dump(self, emulator: RtdbEmulator, namespace: str) -> RawVaultDump:
        def export() -> list[bytes]:
            response = requests.get(
                f"http://{emulator.host_port}/.json",
                params={"ns": namespace},
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            return [response.content]

        return export
