"""The vault's migration streams: ``secrets`` (metadata and every version with its envelope,
ciphertext as stored, never opened) and ``bindings`` (``capabilities.vault``). The stream types
are :mod:`botmox_core.migration.streams`'."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import attrs

from botmox_core.converter import get_converter
from botmox_core.migration.streams import Item, Key, NotPrunable, Unrepresentable
from botmox_core.ports import DataBackend
from botmox_core.ports.vault import VaultUnitOfWork, supports_vault
from botmox_core.vault.envelopes import envelope_document
from botmox_core.vault.models import Secret, SecretBinding, SecretVersion

__all__ = ["BindingStream", "SecretStream"]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


class _VaultStream:
    def available(self, backend: DataBackend) -> bool:
        return supports_vault(backend)


def _unstructure(value: Any) -> Any:
    return get_converter().unstructure(value)


def _version_doc(version: SecretVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "alg": version.alg,
        "created_at": version.created_at,
        "recipients": [_unstructure(r) for r in version.recipients],
        "key_id": version.key_id,
        "created_by": version.created_by,
        "envelope": None if version.envelope is None else envelope_document(version.envelope),
    }


@attrs.frozen
class _SecretValue:
    secret: Secret
    versions: tuple[SecretVersion, ...]


class SecretStream(_VaultStream):
    """Secrets with every version (envelopes as stored, never opened), by id."""

    name = "secrets"

    def read(self, uow: VaultUnitOfWork, tenant: str, after: Key | None, limit: int) -> list[Item]:
        items = []
        for secret in uow.secrets.scan(
            tenant, after=None if after is None else after[0], limit=limit
        ):
            versions = tuple(
                sorted(uow.secrets.versions(tenant, secret.id), key=lambda v: v.version)
            )
            doc = {
                "id": secret.id,
                "label": secret.label,
                "alg": secret.alg,
                "version": secret.version,
                "key_id": secret.key_id,
                "recipients": [_unstructure(r) for r in secret.recipients],
                "aad_meta": dict(secret.aad_meta),
                "created_at": secret.created_at,
                "updated_at": secret.updated_at,
                "rotated_at": secret.rotated_at,
                "created_by": secret.created_by,
                "versions": [_version_doc(v) for v in versions],
            }
            items.append(
                Item(
                    (secret.id,),
                    secret.id,
                    _SecretValue(secret, versions),
                    doc,
                    _ms(secret.updated_at),
                )
            )
        return items

    def check(self, item: Item) -> None:
        return None

    def write(self, uow: VaultUnitOfWork, tenant: str, item: Item, current: Item | None) -> None:
        value: _SecretValue = item.value
        secret = attrs.evolve(value.secret, tenant_id=tenant)
        held: dict[int, SecretVersion] = {}
        if current is None:
            uow.secrets.add(secret)
        else:
            held = {v.version: v for v in current.value.versions}
            uow.secrets.modify(tenant, secret.id, lambda stored: secret)
        for version in value.versions:
            mine = held.get(version.version)
            if mine is None:
                uow.secrets.add_version(attrs.evolve(version, tenant_id=tenant))
            elif _version_doc(mine) != _version_doc(version) and not (
                version.envelope is None
                and _version_doc(attrs.evolve(mine, envelope=None)) == _version_doc(version)
            ):
                raise Unrepresentable(
                    f"the target holds another version {version.version} of this secret "
                    "(versions never change)"
                )
        kept = [v.version for v in value.versions if v.envelope is not None]
        dropped_below = (
            min(kept) if kept else (max((v.version for v in value.versions), default=0) + 1)
        )
        if any(v.envelope is None for v in value.versions):
            uow.secrets.drop_envelopes(tenant, secret.id, below=dropped_below)

    def delete(self, uow: VaultUnitOfWork, tenant: str, item: Item) -> None:
        raise NotPrunable("secrets have no delete in the repository port")


class BindingStream(_VaultStream):
    """Bindings, by (scope_type, scope_id, field_name)."""

    name = "bindings"
    #: Bindings read at once (the port lists them, it has no cursor).
    MAX_BINDINGS: ClassVar[int] = 1_000_000

    def read(self, uow: VaultUnitOfWork, tenant: str, after: Key | None, limit: int) -> list[Item]:
        bindings = uow.bindings.list(tenant, limit=self.MAX_BINDINGS)
        items = []
        for binding in bindings:
            key = (str(binding.scope_type), binding.scope_id, binding.field_name)
            if after is not None and key <= tuple(after):
                continue
            doc = {**_unstructure(binding), "tenant_id": None}
            items.append(Item(key, "/".join(key), binding, doc, _ms(binding.updated_at)))
        items.sort(key=lambda item: item.key)
        return items[:limit]

    def check(self, item: Item) -> None:
        return None

    def write(self, uow: VaultUnitOfWork, tenant: str, item: Item, current: Item | None) -> None:
        binding: SecretBinding = attrs.evolve(item.value, tenant_id=tenant)
        if current is not None:
            uow.bindings.delete(tenant, binding.scope_type, binding.scope_id, binding.field_name)
        uow.bindings.upsert(binding)

    def delete(self, uow: VaultUnitOfWork, tenant: str, item: Item) -> None:
        binding: SecretBinding = item.value
        uow.bindings.delete(tenant, binding.scope_type, binding.scope_id, binding.field_name)
