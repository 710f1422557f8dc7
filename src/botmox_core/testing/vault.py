"""Conformance suite for the vault repositories (:mod:`botmox_core.ports.vault`).

A backend that declares ``capabilities.vault`` subclasses :class:`VaultRepositoryConformance`
with the same ``backend`` fixture as :class:`~botmox_core.testing.RepositoryConformance`::

    class TestMyBackendVault(VaultRepositoryConformance):
        @pytest.fixture
        def backend(self, tmp_path):
            backend = MyBackend(tmp_path / "db")
            yield backend
            backend.close()

Without ``vault`` every test skips with the reason; the rollback test needs ``rollback``.
``second_backend`` (another instance on the same store) enables the cross-instance
check-and-set test. Mixins: :class:`SecretConformance` (secrets, versions, envelope retention,
check-and-set under concurrency, tenant isolation) and :class:`SecretBindingConformance`
(upsert on the unique key, filters, order, tenant isolation). The builders
(:func:`make_secret`, :func:`make_version`, :func:`make_binding`) are handy for a backend's own
tests too.
"""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import attrs
import pytest

from botmox_core.errors import BadRequestError, DuplicateError
from botmox_core.ports import DataBackend
from botmox_core.ports.vault import VaultUnitOfWork
from botmox_core.testing.repository._base import RepositoryConformanceBase
from botmox_core.vault.envelopes import (
    AesGcmEnvelope,
    Envelope,
    HpkeEnvelope,
    SealedCopy,
    envelope_document,
    parse_envelope,
)
from botmox_core.vault.models import (
    ScopeType,
    Secret,
    SecretBinding,
    SecretRecipient,
    SecretVersion,
)

__all__ = [
    "T0",
    "VAULT_REPOSITORIES",
    "SecretBindingConformance",
    "SecretConformance",
    "VaultConformanceBase",
    "VaultRepositoryConformance",
    "make_aes_envelope",
    "make_binding",
    "make_hpke_envelope",
    "make_secret",
    "make_version",
]

B = TypeVar("B", bound=DataBackend)
T = TypeVar("T")

#: What a vault unit of work carries.
VAULT_REPOSITORIES = ("secrets", "bindings")

#: A fixed instant with millisecond precision.
T0 = datetime(2026, 11, 24, 12, 30, 15, 250000, tzinfo=UTC)

AAD_META: dict[str, Any] = {
    "purpose": "proxmox root",
    "nested": {"list": [1, "two", 3.5, True, None], "empty": {}},
    "unicode": "ünïcødé ✓",
}


def _b64(size: int) -> str:
    return base64.b64encode(os.urandom(size)).decode("ascii")


def make_hpke_envelope(*agent_ids: str, size: int = 48) -> HpkeEnvelope:
    """A well-formed HPKE envelope (random bytes of the right sizes) with one copy per agent."""
    return HpkeEnvelope(
        copies=tuple(
            SealedCopy(
                agent_id=agent_id,
                key_id="x25519:" + os.urandom(16).hex(),
                enc=_b64(32),
                ciphertext=_b64(size + 16),
            )
            for agent_id in (agent_ids or ("agt_" + os.urandom(8).hex(),))
        )
    )


def make_aes_envelope(size: int = 40) -> AesGcmEnvelope:
    """A well-formed ``aes-256-gcm`` envelope (random bytes of the right sizes)."""
    return AesGcmEnvelope(key_id="local-browser-key-v1", nonce=_b64(12), ciphertext=_b64(size))


def _recipients(envelope: Envelope) -> tuple[SecretRecipient, ...]:
    if isinstance(envelope, HpkeEnvelope):
        return tuple(SecretRecipient(agent_id=c.agent_id, key_id=c.key_id) for c in envelope.copies)
    return ()


def make_secret(tenant_id: str, envelope: Envelope | None = None, **changes: Any) -> Secret:
    """A version-1 secret whose metadata matches ``envelope`` (default: an HPKE envelope to
    two agents); keyword arguments replace fields."""
    envelope = envelope or make_hpke_envelope("agt_one", "agt_two")
    secret = Secret(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        label="proxmox root ✓",
        alg=envelope.alg,
        version=1,
        key_id=envelope.key_id if isinstance(envelope, AesGcmEnvelope) else None,
        recipients=_recipients(envelope),
        aad_meta=AAD_META,
        created_at=T0,
        updated_at=T0,
        rotated_at=None,
        created_by="user-7",
    )
    return attrs.evolve(secret, **changes)


def make_version(secret: Secret, envelope: Envelope | None = None, **changes: Any) -> SecretVersion:
    """The version ``secret.version`` of ``secret`` holding ``envelope`` (default: a new HPKE
    envelope to the secret's recipients)."""
    if envelope is None:
        agents = [r.agent_id for r in secret.recipients] or ["agt_one"]
        envelope = make_hpke_envelope(*agents)
    version = SecretVersion(
        tenant_id=secret.tenant_id,
        secret_id=secret.id,
        version=secret.version,
        alg=envelope.alg,
        recipients=_recipients(envelope),
        key_id=envelope.key_id if isinstance(envelope, AesGcmEnvelope) else None,
        created_at=secret.rotated_at or secret.created_at,
        created_by=secret.created_by,
        envelope=envelope,
    )
    return attrs.evolve(version, **changes)


def make_binding(tenant_id: str, secret_ref: str, **changes: Any) -> SecretBinding:
    """A ``vm_settings`` binding of ``proxmox.password`` to ``secret_ref``."""
    binding = SecretBinding(
        id=str(uuid.uuid4()),
        tenant_id=tenant_id,
        scope_type=ScopeType.VM_SETTINGS,
        scope_id="vmgenerator",
        field_name="proxmox.password",
        secret_ref=secret_ref,
        created_at=T0,
        updated_at=T0,
    )
    return attrs.evolve(binding, **changes)


class VaultConformanceBase(RepositoryConformanceBase[B]):
    """Pytest mixin base of the vault suites (fixtures: see
    :class:`~botmox_core.testing.repository._base.RepositoryConformanceBase`).

    Every test needs ``capabilities.vault`` (flag ``supports_vault``).

    Tunables:
        concurrency_threads, modifies_per_thread: size of the check-and-set test.
    """

    supports_vault: ClassVar[bool | None] = None
    capability_of_flag: ClassVar[dict[str, str]] = {
        **RepositoryConformanceBase.capability_of_flag,
        "supports_vault": "vault",
    }

    @pytest.fixture(autouse=True)
    def _needs_vault(self, _fixture_request: None) -> None:
        self._require("supports_vault", "the vault repositories are not implemented")

    @staticmethod
    def write_unit(backend: DataBackend, action: Callable[[VaultUnitOfWork], T]) -> T:
        """Run ``action`` in a new vault unit of work and commit it."""
        with backend.unit_of_work() as uow:
            result = action(_vault(uow))
            uow.commit()
        return result

    @staticmethod
    def read_unit(backend: DataBackend, action: Callable[[VaultUnitOfWork], T]) -> T:
        """Run ``action`` in a new vault unit of work left without committing."""
        with backend.unit_of_work() as uow:
            return action(_vault(uow))

    def store(
        self, backend: DataBackend, secret: Secret, envelope: Envelope | None = None
    ) -> SecretVersion:
        """Add ``secret`` and its first version in one committed unit; the version."""
        version = make_version(secret, envelope)

        def add(uow: VaultUnitOfWork) -> None:
            uow.secrets.add(secret)
            uow.secrets.add_version(version)

        self.write_unit(backend, add)
        return version

    def secret_ref(self, backend: DataBackend, tenant: str, secret_id: str | None = None) -> str:
        """Store a secret of ``tenant`` (with ``secret_id``, else a new id); its id (bindings
        reference stored secrets, so a backend may enforce the reference)."""
        secret = make_secret(tenant)
        if secret_id is not None:
            secret = attrs.evolve(secret, id=secret_id)
        self.store(backend, secret)
        return secret.id

    def test_declares_vault_and_units_carry_it(self, backend: B) -> None:
        with backend.unit_of_work() as uow:
            missing = [name for name in VAULT_REPOSITORIES if not hasattr(uow, name)]
        assert not missing, f"the backend declares vault=True but its units lack {missing}"


def _vault(uow: Any) -> VaultUnitOfWork:
    missing = [name for name in VAULT_REPOSITORIES if not hasattr(uow, name)]
    if missing:
        raise AssertionError(f"the unit of work lacks the vault repositories {missing}")
    unit: VaultUnitOfWork = uow
    return unit


def _same_version(expected: SecretVersion, got: SecretVersion | None) -> None:
    assert got is not None
    assert attrs.evolve(got, envelope=None) == attrs.evolve(expected, envelope=None)
    if expected.envelope is None:
        assert got.envelope is None
    else:
        assert got.envelope is not None
        assert envelope_document(got.envelope) == envelope_document(expected.envelope)


class SecretConformance(VaultConformanceBase[B]):
    """Pytest mixin: what ``uow.secrets`` must do."""

    def test_a_secret_reads_back_equal(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        version = self.store(backend, secret)
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == secret
        _same_version(
            version, self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        )

    def test_an_aes_gcm_secret_reads_back_equal(self, backend: B, tenant: str) -> None:
        envelope = make_aes_envelope()
        secret = make_secret(tenant, envelope, aad_meta={}, created_by=None, label="x")
        version = self.store(backend, secret, envelope)
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == secret
        _same_version(
            version, self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        )

    def test_the_stored_envelope_is_the_wire_document(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        version = self.store(backend, secret)
        got = self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        assert got is not None and got.envelope is not None
        assert parse_envelope(envelope_document(got.envelope)) == version.envelope

    def test_the_largest_envelope_reads_back(self, backend: B, tenant: str) -> None:
        agents = [f"agt_{i:02d}" for i in range(32)]
        envelope = make_hpke_envelope(*agents, size=2048)
        secret = make_secret(tenant, envelope)
        version = self.store(backend, secret, envelope)
        _same_version(
            version, self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        )

    def test_unknown_and_other_tenant_ids_are_none(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        secret = make_secret(tenant)
        self.store(backend, secret)
        assert self.read_unit(backend, lambda u: u.secrets.get(other_tenant, secret.id)) is None
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, str(uuid.uuid4()))) is None
        assert (
            self.read_unit(backend, lambda u: u.secrets.get_version(other_tenant, secret.id, 1))
            is None
        )
        assert self.read_unit(backend, lambda u: u.secrets.versions(other_tenant, secret.id)) in (
            [],
            (),
        )
        assert (
            self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 2)) is None
        )

    def test_two_tenants_may_hold_the_same_id(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        mine = make_secret(tenant)
        theirs = make_secret(other_tenant, id=mine.id, label="theirs")
        self.store(backend, mine)
        self.store(backend, theirs)
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, mine.id)) == mine
        assert self.read_unit(backend, lambda u: u.secrets.get(other_tenant, mine.id)) == theirs

    def test_a_duplicate_id_is_refused(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        self.store(backend, secret)
        with pytest.raises(DuplicateError):
            self.write_unit(backend, lambda u: u.secrets.add(attrs.evolve(secret, label="y")))
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == secret

    def test_a_duplicate_version_is_refused(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        version = self.store(backend, secret)
        with pytest.raises(DuplicateError):
            self.write_unit(backend, lambda u: u.secrets.add_version(make_version(secret)))
        _same_version(
            version, self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        )

    def test_modify_replaces_and_missing_is_none(self, backend: B, tenant: str) -> None:
        secret = make_secret(tenant)
        self.store(backend, secret)
        later = T0 + timedelta(minutes=5)
        rotated = attrs.evolve(
            secret,
            version=2,
            rotated_at=later,
            updated_at=later,
            alg="aes-256-gcm",
            key_id="k2",
            recipients=(),
        )
        result = self.write_unit(
            backend, lambda u: u.secrets.modify(tenant, secret.id, lambda _: rotated)
        )
        assert result == rotated
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == rotated
        assert (
            self.write_unit(
                backend, lambda u: u.secrets.modify(tenant, str(uuid.uuid4()), lambda s: s)
            )
            is None
        )

    def test_modify_keeps_identity_and_aborts_on_raise(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        secret = make_secret(tenant)
        self.store(backend, secret)

        def boom(_: Secret) -> Secret:
            raise RuntimeError("abort")

        with pytest.raises(RuntimeError):
            self.write_unit(backend, lambda u: u.secrets.modify(tenant, secret.id, boom))
        with pytest.raises(BadRequestError):
            self.write_unit(
                backend,
                lambda u: u.secrets.modify(
                    tenant, secret.id, lambda s: attrs.evolve(s, tenant_id=other_tenant)
                ),
            )
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) == secret
        assert self.read_unit(backend, lambda u: u.secrets.get(other_tenant, secret.id)) is None

    def test_versions_are_newest_first_and_envelopes_drop_below(
        self, backend: B, tenant: str
    ) -> None:
        secret = make_secret(tenant)
        stored = [self.store(backend, secret)]
        for number in (2, 3, 4):
            rotated = attrs.evolve(
                secret, version=number, rotated_at=T0 + timedelta(seconds=number)
            )
            version = make_version(rotated)
            self.write_unit(backend, _adder(version))
            stored.append(version)
        listed = self.read_unit(backend, lambda u: u.secrets.versions(tenant, secret.id))
        assert [v.version for v in listed] == [4, 3, 2, 1]
        for expected, got in zip(reversed(stored), listed, strict=True):
            _same_version(expected, got)

        dropped = self.write_unit(
            backend, lambda u: u.secrets.drop_envelopes(tenant, secret.id, below=3)
        )
        assert dropped == 2
        assert (
            self.write_unit(backend, lambda u: u.secrets.drop_envelopes(tenant, secret.id, below=3))
            == 0
        )
        listed = self.read_unit(backend, lambda u: u.secrets.versions(tenant, secret.id))
        assert [v.envelope is None for v in listed] == [False, False, True, True]
        for expected, got in zip(reversed(stored), listed, strict=True):
            keep = expected.version >= 3
            _same_version(expected if keep else attrs.evolve(expected, envelope=None), got)
        one = self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1))
        assert one is not None and one.envelope is None and one.recipients == stored[0].recipients

    def test_dropping_touches_only_that_secret(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        first, second = make_secret(tenant), make_secret(tenant)
        theirs = make_secret(other_tenant, id=first.id)
        for secret in (first, second, theirs):
            self.store(backend, secret)
        self.write_unit(backend, lambda u: u.secrets.drop_envelopes(tenant, first.id, below=9))
        for secret, dropped in ((first, True), (second, False), (theirs, False)):
            got = self.read_unit(backend, _first_version(secret))
            assert got is not None
            assert (got.envelope is None) is dropped

    def test_scan_pages_in_id_order(self, backend: B, tenant: str, other_tenant: str) -> None:
        secrets = [make_secret(tenant) for _ in range(7)]
        for secret in secrets:
            self.store(backend, secret)
        self.store(backend, make_secret(other_tenant))
        seen: list[str] = []
        after: str | None = None
        for _ in range(10):
            page = self.read_unit(backend, _scanner(tenant, after))
            if not page:
                break
            seen.extend(s.id for s in page)
            after = page[-1].id
        assert seen == sorted(s.id for s in secrets)

    def test_check_and_set_never_loses_a_rotation(self, backend: B, tenant: str) -> None:
        """Concurrent rotations, each a modify that raises unless the version is the one it
        read: every version number is taken exactly once."""
        secret = make_secret(tenant)
        self.store(backend, secret)
        won: list[int] = []
        lock = threading.Lock()

        def rotate() -> None:
            for _ in range(self.modifies_per_thread):
                seen = self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id))
                assert seen is not None

                def change(current: Secret, expected: int = seen.version) -> Secret:
                    if current.version != expected:
                        raise _Stale()
                    return attrs.evolve(current, version=expected + 1)

                try:
                    self.write_unit(backend, _modifier(tenant, secret.id, change))
                except _Stale:
                    continue
                with lock:
                    won.append(seen.version + 1)

        threads = [threading.Thread(target=rotate) for _ in range(self.concurrency_threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        final = self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id))
        assert final is not None
        assert sorted(won) == list(range(2, final.version + 1))

    def test_uncommitted_writes_roll_back(self, backend: B, tenant: str) -> None:
        self._require("supports_rollback", "rollback is not declared")
        secret = make_secret(tenant)
        with backend.unit_of_work() as uow:
            _vault(uow).secrets.add(secret)
            _vault(uow).secrets.add_version(make_version(secret))
        assert self.read_unit(backend, lambda u: u.secrets.get(tenant, secret.id)) is None
        assert (
            self.read_unit(backend, lambda u: u.secrets.get_version(tenant, secret.id, 1)) is None
        )


class _Stale(Exception):
    pass


def _adder(version: SecretVersion) -> Callable[[VaultUnitOfWork], None]:
    return lambda uow: uow.secrets.add_version(version)


def _first_version(secret: Secret) -> Callable[[VaultUnitOfWork], SecretVersion | None]:
    return lambda uow: uow.secrets.get_version(secret.tenant_id, secret.id, 1)


def _scanner(tenant: str, after: str | None) -> Callable[[VaultUnitOfWork], Sequence[Secret]]:
    return lambda uow: uow.secrets.scan(tenant, after=after, limit=3)


def _modifier(
    tenant: str, secret_id: str, change: Callable[[Secret], Secret]
) -> Callable[[VaultUnitOfWork], Secret | None]:
    return lambda uow: uow.secrets.modify(tenant, secret_id, change)


def _upserter(binding: SecretBinding) -> Callable[[VaultUnitOfWork], SecretBinding]:
    return lambda uow: uow.bindings.upsert(binding)


class SecretBindingConformance(VaultConformanceBase[B]):
    """Pytest mixin: what ``uow.bindings`` must do."""

    def test_upsert_creates_and_reads_back(self, backend: B, tenant: str) -> None:
        binding = make_binding(tenant, self.secret_ref(backend, tenant))
        assert self.write_unit(backend, lambda u: u.bindings.upsert(binding)) == binding
        got = self.read_unit(
            backend,
            lambda u: u.bindings.get(
                tenant, ScopeType.VM_SETTINGS, "vmgenerator", "proxmox.password"
            ),
        )
        assert got == binding

    def test_upsert_repoints_and_keeps_id_and_created_at(self, backend: B, tenant: str) -> None:
        first = make_binding(tenant, self.secret_ref(backend, tenant))
        self.write_unit(backend, lambda u: u.bindings.upsert(first))
        later = T0 + timedelta(hours=1)
        again = make_binding(
            tenant, self.secret_ref(backend, tenant), created_at=later, updated_at=later
        )
        stored = self.write_unit(backend, lambda u: u.bindings.upsert(again))
        expected = attrs.evolve(first, secret_ref=again.secret_ref, updated_at=later)
        assert stored == expected
        assert list(self.read_unit(backend, lambda u: u.bindings.list(tenant))) == [expected]

    def test_the_unique_key_has_four_parts(
        self, backend: B, tenant: str, other_tenant: str
    ) -> None:
        ref = self.secret_ref(backend, tenant)
        self.secret_ref(backend, other_tenant, ref)
        variants = [
            make_binding(tenant, ref),
            make_binding(tenant, ref, scope_type=ScopeType.VM),
            make_binding(tenant, ref, scope_id="other"),
            make_binding(tenant, ref, field_name="ssh.password"),
            make_binding(other_tenant, ref),
        ]
        for binding in variants:
            self.write_unit(backend, _upserter(binding))
        assert len(self.read_unit(backend, lambda u: u.bindings.list(tenant))) == 4
        assert list(self.read_unit(backend, lambda u: u.bindings.list(other_tenant))) == [
            variants[-1]
        ]

    def test_list_filters_and_orders(self, backend: B, tenant: str) -> None:
        ref_a, ref_b = self.secret_ref(backend, tenant), self.secret_ref(backend, tenant)
        made = []
        for index, (scope_type, scope_id, field, ref) in enumerate(
            [
                (ScopeType.VM_SETTINGS, "vmgenerator", "proxmox.password", ref_a),
                (ScopeType.VM_SETTINGS, "vmgenerator", "ssh.password", ref_b),
                (ScopeType.BOT, "bot-1", "account.password", ref_a),
                (ScopeType.BOT, "bot-2", "account.password", ref_b),
                (ScopeType.TENANT, "t", "api_keys.ggg", ref_a),
            ]
        ):
            at = T0 + timedelta(seconds=index // 2)
            binding = make_binding(
                tenant,
                ref,
                scope_type=scope_type,
                scope_id=scope_id,
                field_name=field,
                created_at=at,
                updated_at=at,
            )
            self.write_unit(backend, _upserter(binding))
            made.append(binding)

        def order(items: list[SecretBinding]) -> list[SecretBinding]:
            by_id = sorted(items, key=lambda b: b.id)
            return sorted(by_id, key=lambda b: b.created_at, reverse=True)

        def listed(**filters: Any) -> list[SecretBinding]:
            return list(self.read_unit(backend, lambda u: u.bindings.list(tenant, **filters)))

        assert listed() == order(made)
        assert listed(scope_type=ScopeType.VM_SETTINGS) == order(made[:2])
        assert listed(scope_type=ScopeType.BOT, scope_id="bot-2") == [made[3]]
        assert listed(scope_id="vmgenerator") == order(made[:2])
        assert listed(secret_ref=ref_a) == order([made[0], made[2], made[4]])
        assert listed(limit=2) == order(made)[:2]
        assert listed(scope_type=ScopeType.AGENT) == []

    def test_delete(self, backend: B, tenant: str, other_tenant: str) -> None:
        binding = make_binding(tenant, self.secret_ref(backend, tenant))
        theirs = make_binding(
            other_tenant, self.secret_ref(backend, other_tenant, binding.secret_ref)
        )
        for item in (binding, theirs):
            self.write_unit(backend, _upserter(item))
        key = (ScopeType.VM_SETTINGS, "vmgenerator", "proxmox.password")
        assert self.write_unit(backend, lambda u: u.bindings.delete(tenant, *key)) is True
        assert self.write_unit(backend, lambda u: u.bindings.delete(tenant, *key)) is False
        assert self.read_unit(backend, lambda u: u.bindings.get(tenant, *key)) is None
        assert self.read_unit(backend, lambda u: u.bindings.get(other_tenant, *key)) == theirs

    def test_texts_round_trip(self, backend: B, tenant: str) -> None:
        binding = make_binding(
            tenant,
            self.secret_ref(backend, tenant),
            scope_id="vm ünï/#$[].x" + "y" * 180,
            field_name="services.tinyFmPassword ✓",
        )
        self.write_unit(backend, lambda u: u.bindings.upsert(binding))
        got = self.read_unit(
            backend,
            lambda u: u.bindings.get(
                tenant, binding.scope_type, binding.scope_id, binding.field_name
            ),
        )
        assert got == binding


class VaultRepositoryConformance(SecretConformance[B], SecretBindingConformance[B]):
    """Pytest mixin: the behaviour of every backend that declares ``capabilities.vault``."""
