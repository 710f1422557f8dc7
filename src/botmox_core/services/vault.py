"""The secret vault's rules (``docs/vault.md``): create, rotate (check-and-set on ``version``),
read metadata, bind a secret to a scope's field, list bindings.

The server validates and stores envelopes and never opens them: every envelope goes through
:func:`~botmox_core.vault.envelopes.parse_envelope`, and no view built here carries ciphertext,
``enc`` or nonce. Roles: reading metadata and bindings needs ``api``, ``admin`` or ``infra``;
creating, rotating and binding need ``admin`` or ``infra`` (:data:`READ_SECRETS`,
:data:`WRITE_SECRETS`). Agents use neither: :meth:`VaultService.agent_envelope` (role ``agent``
only, :data:`FETCH_OWN_ENVELOPE`) hands an agent the copy sealed to its own key.

Every lookup is in the caller's tenant: another tenant's secret id, a malformed id and an
unknown id are all 404 ``SECRET_NOT_FOUND``, so nothing tells them apart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs

from botmox_core.errors import (
    AgentNotFoundError,
    AgentRevokedError,
    AgentsNotSupportedError,
    DuplicateError,
    SecretNotFoundError,
    SecretVersionConflictError,
    VaultNotSupportedError,
)
from botmox_core.models import AgentStatus, Role
from botmox_core.ports import DataBackend
from botmox_core.ports.agents import AgentUnitOfWork, supports_agents
from botmox_core.ports.vault import VaultUnitOfWork, supports_vault
from botmox_core.services.principal import Clock, Permission, Principal, utcnow
from botmox_core.services.validation import invalid, json_object
from botmox_core.vault.envelopes import (
    AesGcmEnvelope,
    Envelope,
    HpkeEnvelope,
    key_id_of,
    parse_envelope,
)
from botmox_core.vault.models import (
    BINDING_TEXT_RE,
    ScopeType,
    Secret,
    SecretBinding,
    SecretRecipient,
    SecretVersion,
    canonical_secret_id,
    new_binding_id,
    new_secret_id,
)

__all__ = [
    "DEFAULT_KEEP_OLD_CIPHERTEXTS",
    "FETCH_OWN_ENVELOPE",
    "MAX_AAD_META_BYTES",
    "MAX_LABEL",
    "READ_SECRETS",
    "WRITE_SECRETS",
    "VaultService",
    "binding_view",
    "secret_view",
]

#: Read secrets' metadata and the bindings.
READ_SECRETS = Permission(frozenset({Role.API, Role.ADMIN, Role.INFRA}))
#: Create and rotate secrets, bind them.
WRITE_SECRETS = Permission(
    frozenset({Role.ADMIN, Role.INFRA}),
    "creating, rotating and binding secrets needs role admin or infra",
)
#: Fetch the envelope copy sealed to oneself (agents only).
FETCH_OWN_ENVELOPE = Permission(
    frozenset({Role.AGENT}), "only agents fetch the envelope sealed to them"
)
#: Versions before the current one that keep their envelope after a rotation.
DEFAULT_KEEP_OLD_CIPHERTEXTS = 2
#: A label: 1-200 characters.
MAX_LABEL = 200
#: ``aad_meta`` as compact UTF-8 JSON.
MAX_AAD_META_BYTES = 4096
#: How many bindings one listing returns.
MAX_BINDINGS_LISTED = 1000

_BODY_FIELDS = frozenset(
    {"id", "label", "alg", "ciphertext", "nonce", "key_id", "recipients", "aad_meta"}
)
_ROTATE_FIELDS = frozenset(
    {"alg", "ciphertext", "nonce", "key_id", "recipients", "aad_meta", "expected_version"}
)


def secret_view(secret: Secret, versions: Sequence[SecretVersion] = ()) -> dict[str, Any]:
    """A secret's metadata (``GET /secrets/{id}/meta``): never ciphertext, ``enc`` or nonce.
    ``versions``, when given, is the history newest first."""
    view: dict[str, Any] = {
        "id": secret.id,
        "tenant_id": secret.tenant_id,
        "label": secret.label,
        "alg": secret.alg,
        "key_id": secret.key_id,
        "version": secret.version,
        "recipients": _recipients_view(secret.recipients),
        "aad_meta": dict(secret.aad_meta),
        "rotated_at": secret.rotated_at,
        "created_at": secret.created_at,
        "updated_at": secret.updated_at,
        "created_by": secret.created_by,
    }
    if versions:
        view["versions"] = [
            {
                "version": version.version,
                "alg": version.alg,
                "key_id": version.key_id,
                "recipients": _recipients_view(version.recipients),
                "created_at": version.created_at,
                "created_by": version.created_by,
                "ciphertext_kept": version.envelope is not None,
            }
            for version in versions
        ]
    return view


def binding_view(binding: SecretBinding) -> dict[str, Any]:
    """A binding as the routes show it."""
    return {
        "id": binding.id,
        "tenant_id": binding.tenant_id,
        "scope_type": binding.scope_type.value,
        "scope_id": binding.scope_id,
        "secret_ref": binding.secret_ref,
        "field_name": binding.field_name,
        "created_at": binding.created_at,
        "updated_at": binding.updated_at,
    }


def _recipients_view(recipients: Sequence[SecretRecipient]) -> list[dict[str, str]]:
    return [{"agent_id": r.agent_id, "key_id": r.key_id} for r in recipients]


def _recipients(envelope: Envelope) -> tuple[SecretRecipient, ...]:
    if isinstance(envelope, HpkeEnvelope):
        return tuple(
            SecretRecipient(agent_id=copy.agent_id, key_id=copy.key_id) for copy in envelope.copies
        )
    return ()


def _client_key_id(envelope: Envelope) -> str | None:
    return envelope.key_id if isinstance(envelope, AesGcmEnvelope) else None


def _body(data: Any, allowed: frozenset[str]) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise invalid("body", "must be a JSON object")
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise invalid(unknown[0], "unknown field")
    return data


def _label(value: Any) -> str:
    if not isinstance(value, str) or not BINDING_TEXT_RE.fullmatch(value):
        raise invalid("label", f"must be 1-{MAX_LABEL} characters without control characters")
    return value


def _binding_text(value: Any, field: str) -> str:
    if not isinstance(value, str) or not BINDING_TEXT_RE.fullmatch(value):
        raise invalid(field, "must be 1-200 characters without control characters")
    return value


def _aad_meta(value: Any) -> dict[str, Any]:
    return json_object(value, "aad_meta", MAX_AAD_META_BYTES)


def _expected_version(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**31:
        raise invalid("expected_version", "must be a positive integer")
    return value


def _creator(principal: Principal) -> str | None:
    return principal.user_id or principal.subject


class VaultService:
    """Secrets and bindings of the caller's tenant.

    Args:
        backend: the data backend (501 ``VAULT_NOT_SUPPORTED`` unless it declares ``vault``).
        keep_old_ciphertexts: versions before the current one that keep their envelope.
        clock: the time source.
    """

    def __init__(
        self,
        backend: DataBackend,
        *,
        keep_old_ciphertexts: int = DEFAULT_KEEP_OLD_CIPHERTEXTS,
        clock: Clock = utcnow,
    ) -> None:
        if keep_old_ciphertexts < 0:
            raise ValueError("keep_old_ciphertexts must be at least 0")
        self._backend = backend
        self._keep = keep_old_ciphertexts
        self._clock = clock

    @property
    def supported(self) -> bool:
        """Whether the data backend declares the vault."""
        return supports_vault(self._backend)

    def _unit(self) -> VaultUnitOfWork:
        backend = self._backend
        if not supports_vault(backend):
            raise VaultNotSupportedError(f"the {backend.name} data backend does not store secrets")
        return backend.unit_of_work()

    # -- secrets ---------------------------------------------------------------------------

    def create(self, principal: Principal, data: Any) -> dict[str, Any]:
        """Store a new secret (version 1) from ``data``: ``label``, the envelope fields,
        ``aad_meta``, and ``id`` (required for HPKE envelopes, which are sealed to it)."""
        principal.authorize(WRITE_SECRETS)
        body = _body(data, _BODY_FIELDS)
        label = _label(body.get("label"))
        envelope = parse_envelope(body)
        aad_meta = _aad_meta(body.get("aad_meta"))
        if body.get("id") is None:
            if isinstance(envelope, HpkeEnvelope):
                raise invalid("id", "required for an HPKE envelope (each copy is sealed to it)")
            secret_id = new_secret_id()
        else:
            found = canonical_secret_id(body.get("id"))
            if found is None:
                raise invalid("id", "must be a UUID")
            secret_id = found
        now = self._clock()
        secret = Secret(
            id=secret_id,
            tenant_id=principal.tenant_id,
            label=label,
            alg=envelope.alg,
            version=1,
            key_id=_client_key_id(envelope),
            recipients=_recipients(envelope),
            aad_meta=aad_meta,
            created_at=now,
            updated_at=now,
            created_by=_creator(principal),
        )
        uow = self._unit()
        with uow:
            self._check_recipients(uow, principal.tenant_id, envelope)
            try:
                uow.secrets.add(secret)
            except DuplicateError:
                raise DuplicateError(
                    "a secret with this id already exists", details={"field": "id"}
                ) from None
            uow.secrets.add_version(self._version(secret, envelope, principal))
            uow.commit()
        return secret_view(secret)

    def meta(self, principal: Principal, secret_id: str) -> dict[str, Any]:
        """The secret's metadata and version history (404 ``SECRET_NOT_FOUND``)."""
        principal.authorize(READ_SECRETS)
        uow = self._unit()
        with uow:
            secret = self._secret(uow, principal.tenant_id, secret_id)
            versions = uow.secrets.versions(principal.tenant_id, secret.id)
        return secret_view(secret, versions)

    def rotate(self, principal: Principal, secret_id: str, data: Any) -> dict[str, Any]:
        """Store version n+1 from ``data`` (the envelope fields, ``aad_meta``,
        ``expected_version``); 409 ``SECRET_VERSION_CONFLICT`` when ``expected_version`` is
        not the current version. HPKE envelopes need ``expected_version`` (they are sealed to
        version ``expected_version + 1``). Versions more than ``keep_old_ciphertexts`` before
        the new one lose their envelope; every version keeps its metadata."""
        principal.authorize(WRITE_SECRETS)
        body = _body(data, _ROTATE_FIELDS)
        expected = _expected_version(body.get("expected_version"))
        aad_meta = None if body.get("aad_meta") is None else _aad_meta(body.get("aad_meta"))
        tenant_id = principal.tenant_id
        uow = self._unit()
        with uow:
            current = self._secret(uow, tenant_id, secret_id)
            envelope = parse_envelope(body, default_alg=current.alg)
            if isinstance(envelope, HpkeEnvelope) and expected is None:
                raise invalid(
                    "expected_version",
                    "required for an HPKE envelope (each copy is sealed to version "
                    "expected_version + 1)",
                )
            self._check_recipients(uow, tenant_id, envelope)
            now = self._clock()

            def change(secret: Secret) -> Secret:
                if expected is not None and secret.version != expected:
                    raise SecretVersionConflictError(
                        f"the secret is at version {secret.version}, not {expected}",
                        details={"version": secret.version, "expected_version": expected},
                    )
                return attrs.evolve(
                    secret,
                    version=secret.version + 1,
                    alg=envelope.alg,
                    key_id=_client_key_id(envelope),
                    recipients=_recipients(envelope),
                    aad_meta=secret.aad_meta if aad_meta is None else aad_meta,
                    rotated_at=now,
                    updated_at=now,
                )

            rotated = uow.secrets.modify(tenant_id, current.id, change)
            if rotated is None:
                raise SecretNotFoundError("secret not found")
            try:
                uow.secrets.add_version(self._version(rotated, envelope, principal))
            except DuplicateError:
                raise SecretVersionConflictError(
                    f"version {rotated.version} of the secret already exists",
                    details={"version": rotated.version - 1},
                ) from None
            uow.secrets.drop_envelopes(tenant_id, rotated.id, below=rotated.version - self._keep)
            try:  # backends that write at commit (RTDB) find a concurrent rotation only here
                uow.commit()
            except DuplicateError:
                raise SecretVersionConflictError(
                    f"version {rotated.version} of the secret was written concurrently",
                    details={"version": rotated.version - 1},
                ) from None
        return secret_view(rotated)

    # -- bindings --------------------------------------------------------------------------

    def bind(self, principal: Principal, data: Any) -> dict[str, Any]:
        """Create or re-point the binding of (scope_type, scope_id, field_name) to
        ``secret_ref``, a secret of the caller's tenant (404 ``SECRET_NOT_FOUND`` otherwise)."""
        principal.authorize(WRITE_SECRETS)
        body = _body(data, frozenset({"scope_type", "scope_id", "secret_ref", "field_name"}))
        scope_type = _scope_type(body.get("scope_type"))
        scope_id = _binding_text(body.get("scope_id"), "scope_id")
        field_name = _binding_text(body.get("field_name"), "field_name")
        ref = body.get("secret_ref")
        if not isinstance(ref, str) or not 1 <= len(ref) <= 200:
            raise invalid("secret_ref", "must be a secret id")
        now = self._clock()
        uow = self._unit()
        with uow:
            secret = self._secret(uow, principal.tenant_id, ref)
            stored = uow.bindings.upsert(
                SecretBinding(
                    id=new_binding_id(),
                    tenant_id=principal.tenant_id,
                    scope_type=scope_type,
                    scope_id=scope_id,
                    field_name=field_name,
                    secret_ref=secret.id,
                    created_at=now,
                    updated_at=now,
                )
            )
            uow.commit()
        return binding_view(stored)

    def bindings(
        self, principal: Principal, scope_type: str | None = None, scope_id: str | None = None
    ) -> list[dict[str, Any]]:
        """The tenant's bindings (optionally of one scope type and/or scope id), newest first."""
        principal.authorize(READ_SECRETS)
        kind = None if scope_type in (None, "") else _scope_type(scope_type)
        scope = None if scope_id in (None, "") else _binding_text(scope_id, "scope_id")
        uow = self._unit()
        with uow:
            found = uow.bindings.list(
                principal.tenant_id, scope_type=kind, scope_id=scope, limit=MAX_BINDINGS_LISTED
            )
        return [binding_view(binding) for binding in found]

    def binding(
        self, tenant_id: str, scope_type: ScopeType, scope_id: str, field_name: str
    ) -> SecretBinding | None:
        """The binding of one field (for services that show "set / not set"), or ``None``."""
        uow = self._unit()
        with uow:
            return uow.bindings.get(tenant_id, scope_type, scope_id, field_name)

    # -- agents ----------------------------------------------------------------------------

    def agent_envelope(self, principal: Principal, secret_id: Any) -> dict[str, Any]:
        """The copy of a secret's current version sealed to the calling agent
        (``GET /api/v1/agents/me/secrets/{id}``): the only answer that carries ciphertext.

        404 ``SECRET_NOT_FOUND`` unless the caller is an active agent of the secret's tenant,
        the current version is an HPKE envelope with a copy for this agent sealed to its
        registered key, and the secret is bound to a scope the agent serves (any binding of
        the tenant, except ``agent`` bindings of other agents). Other roles: 403."""
        principal.authorize(FETCH_OWN_ENVELOPE)
        tenant_id, agent_id = principal.tenant_id, principal.subject
        uow = self._unit()
        with uow:
            if agent_id is None or not supports_agents(self._backend):
                raise SecretNotFoundError("secret not found")
            agent = cast(AgentUnitOfWork, uow).agents.get(tenant_id, agent_id)
            if agent is None or agent.status is not AgentStatus.ACTIVE or not agent.public_key:
                raise SecretNotFoundError("secret not found")
            secret = self._secret(uow, tenant_id, secret_id)
            version = uow.secrets.get_version(tenant_id, secret.id, secret.version)
            envelope = None if version is None else version.envelope
            copy = envelope.copy_for(agent.id) if isinstance(envelope, HpkeEnvelope) else None
            if copy is None or copy.key_id != key_id_of(agent.public_key):
                raise SecretNotFoundError("secret not found")
            bound = uow.bindings.list(tenant_id, secret_ref=secret.id, limit=MAX_BINDINGS_LISTED)
            if not any(
                b.scope_type is not ScopeType.AGENT or b.scope_id == agent.id for b in bound
            ):
                raise SecretNotFoundError("secret not found")
        return {
            "secret_id": secret.id,
            "tenant_id": tenant_id,
            "version": secret.version,
            "alg": secret.alg,
            "agent_id": copy.agent_id,
            "key_id": copy.key_id,
            "enc": copy.enc,
            "ciphertext": copy.ciphertext,
        }

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _secret(uow: VaultUnitOfWork, tenant_id: str, secret_id: Any) -> Secret:
        canonical = canonical_secret_id(secret_id)
        secret = None if canonical is None else uow.secrets.get(tenant_id, canonical)
        if secret is None:
            raise SecretNotFoundError("secret not found")
        return secret

    def _version(self, secret: Secret, envelope: Envelope, principal: Principal) -> SecretVersion:
        return SecretVersion(
            tenant_id=secret.tenant_id,
            secret_id=secret.id,
            version=secret.version,
            alg=envelope.alg,
            recipients=_recipients(envelope),
            key_id=_client_key_id(envelope),
            created_at=secret.rotated_at or secret.created_at,
            created_by=_creator(principal),
            envelope=envelope,
        )

    def _check_recipients(self, uow: VaultUnitOfWork, tenant_id: str, envelope: Envelope) -> None:
        """Every recipient of an HPKE envelope is an agent of the tenant, not revoked, and the
        copy is sealed to its registered public key."""
        if not isinstance(envelope, HpkeEnvelope):
            return
        if not supports_agents(self._backend):
            raise AgentsNotSupportedError(
                f"the {self._backend.name} data backend has no agents to seal secrets to"
            )
        agents = cast(AgentUnitOfWork, uow).agents
        for index, copy in enumerate(envelope.copies):
            where = f"recipients[{index}]"
            agent = agents.get(tenant_id, copy.agent_id)
            if agent is None:
                raise AgentNotFoundError(
                    f"{where}.agent_id: no such agent", details=[{"field": f"{where}.agent_id"}]
                )
            if agent.status is AgentStatus.REVOKED:
                raise AgentRevokedError(
                    f"{where}.agent_id: the agent is revoked",
                    details=[{"field": f"{where}.agent_id"}],
                )
            if agent.public_key is None or key_id_of(agent.public_key) != copy.key_id:
                raise invalid(f"{where}.key_id", "not the agent's registered public key")


def _scope_type(value: Any) -> ScopeType:
    try:
        return ScopeType(value)
    except ValueError:
        allowed = "|".join(member.value for member in ScopeType)
        raise invalid("scope_type", f"must be one of {allowed}") from None
