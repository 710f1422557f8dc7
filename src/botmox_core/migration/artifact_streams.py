"""Streams of the artifact and agent records (:mod:`botmox_core.migration.streams` says what a
stream is): API tokens (hashes only), VMs, the licence, entitlements, releases (integer ids
kept: assignments and the audit name them), assignments, leases, the download audit (ids kept),
agents and commands (with their output).

Every backend stores the artifact records; agents and commands only a backend declaring
``capabilities.agents`` (RTDB does not: a source's agents are then reported as records the
target does not store). Each is read in its port's ``scan`` order. Records are written as the
source holds them (ids, hashes, timestamps). None of these ports has a delete, so an extra
record at the target raises :class:`NotPrunable` and is reported, never silently kept.
Records that never change once written (the audit) or change only one way (a token's
``revoked_at``) refuse another version at the target as :class:`Unrepresentable`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import attrs

from botmox_core.converter import get_converter
from botmox_core.migration.streams import Item, Key, NotPrunable, Unrepresentable
from botmox_core.models import (
    ApiToken,
    Assignment,
    Command,
    DownloadAuditEntry,
)
from botmox_core.ports import DataBackend
from botmox_core.ports.agents import supports_agents

__all__ = ["ARTIFACT_STREAMS"]


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def _doc(value: Any) -> dict[str, Any]:
    """The record's JSON without its tenant (a stream is read per tenant)."""
    doc = dict(get_converter().unstructure(value))
    doc.pop("tenant_id", None)
    return doc


def _item(key: Key, label: str, value: Any, doc: dict[str, Any] | None = None) -> Item:
    updated = getattr(value, "updated_at", None)
    return Item(
        key=key,
        label=label,
        value=value,
        doc=_doc(value) if doc is None else doc,
        stamp=_ms(updated) if isinstance(updated, datetime) else None,
    )


@attrs.frozen
class _ScanStream:
    """A stream over one port's ``scan`` (``after`` the key's single member)."""

    name: str
    scan: Callable[[Any, str, Any, int], Sequence[Any]]
    key: Callable[[Any], Any]
    create: Callable[[Any, Any], None]
    replace: Callable[[Any, str, Any, Item], None]
    agents: bool = False

    def available(self, backend: DataBackend) -> bool:
        return supports_agents(backend) if self.agents else True

    def read(self, uow: Any, tenant: str, after: Key | None, limit: int) -> list[Item]:
        return [
            _item((self.key(value),), str(self.key(value)), value)
            for value in self.scan(uow, tenant, None if after is None else after[0], limit)
        ]

    def check(self, item: Item) -> None:
        return None

    def write(self, uow: Any, tenant: str, item: Item, current: Item | None) -> None:
        value = attrs.evolve(item.value, tenant_id=tenant)
        if current is None:
            self.create(uow, value)
        else:
            self.replace(uow, tenant, value, current)

    def delete(self, uow: Any, tenant: str, item: Item) -> None:
        raise NotPrunable(f"{self.name} have no delete in the repository port")


def _replace_token(uow: Any, tenant: str, token: ApiToken, current: Item) -> None:
    held: ApiToken = current.value
    if attrs.evolve(held, revoked_at=None, tenant_id=tenant) != attrs.evolve(
        token, revoked_at=None
    ) or (held.revoked_at is not None and held.revoked_at != token.revoked_at):
        raise Unrepresentable(
            "the target holds another version of this token (a token only changes by its "
            "revocation)"
        )
    if token.revoked_at is not None:
        uow.tokens.revoke(tenant, token.id, token.revoked_at)


def _modify(repository: Callable[[Any], Any]) -> Callable[[Any, str, Any, Item], None]:
    def replace(uow: Any, tenant: str, value: Any, current: Item) -> None:
        repository(uow).modify(tenant, value.id, lambda stored: value)

    return replace


def _not_changed(what: str) -> Callable[[Any, str, Any, Item], None]:
    def replace(uow: Any, tenant: str, value: Any, current: Item) -> None:
        raise Unrepresentable(f"the target holds another version of this {what} (it never changes)")

    return replace


class LicenceStream:
    """The tenant's licence (one item)."""

    name = "licence"

    def available(self, backend: DataBackend) -> bool:
        return True

    def read(self, uow: Any, tenant: str, after: Key | None, limit: int) -> list[Item]:
        if after is not None or limit < 1:
            return []
        licence = uow.licences.get_licence(tenant)
        return [] if licence is None else [_item(("licence",), "licence", licence)]

    def check(self, item: Item) -> None:
        return None

    def write(self, uow: Any, tenant: str, item: Item, current: Item | None) -> None:
        uow.licences.put_licence(attrs.evolve(item.value, tenant_id=tenant))

    def delete(self, uow: Any, tenant: str, item: Item) -> None:
        raise NotPrunable("a licence has no delete in the repository port")


def _assignment_key(assignment: Assignment) -> tuple[int, str, str, str, str]:
    user = assignment.user_id
    return (
        0 if user is None else 1,
        user or "",
        assignment.module,
        assignment.platform,
        assignment.channel,
    )


class AssignmentStream:
    """Assignments by (defaults first, user id, module, platform, channel)."""

    name = "assignments"

    def available(self, backend: DataBackend) -> bool:
        return True

    def read(self, uow: Any, tenant: str, after: Key | None, limit: int) -> list[Item]:
        cursor = None
        if after is not None:
            cursor = (None if after[0] == 0 else str(after[1]), after[2], after[3], after[4])
        items = []
        for assignment in uow.assignments.scan(tenant, after=cursor, limit=limit):
            key = _assignment_key(assignment)
            label = f"{assignment.user_id or '(default)'}/{'/'.join(key[2:])}"
            items.append(_item(key, label, assignment))
        return items

    def check(self, item: Item) -> None:
        return None

    def write(self, uow: Any, tenant: str, item: Item, current: Item | None) -> None:
        uow.assignments.put(attrs.evolve(item.value, tenant_id=tenant))

    def delete(self, uow: Any, tenant: str, item: Item) -> None:
        raise NotPrunable("assignments have no delete in the repository port")


class CommandStream:
    """Commands by id, with their output (written as one chunk, later growth appended)."""

    name = "commands"

    def available(self, backend: DataBackend) -> bool:
        return supports_agents(backend)

    def read(self, uow: Any, tenant: str, after: Key | None, limit: int) -> list[Item]:
        items = []
        for command in uow.commands.scan(
            tenant, after=None if after is None else after[0], limit=limit
        ):
            output = uow.commands.output(tenant, command.id)
            items.append(
                _item(
                    (command.id,),
                    command.id,
                    (command, output),
                    {**_doc(command), "output": output},
                )
            )
        return items

    def check(self, item: Item) -> None:
        return None

    def write(self, uow: Any, tenant: str, item: Item, current: Item | None) -> None:
        command: Command = attrs.evolve(item.value[0], tenant_id=tenant)
        output: str = item.value[1]
        held = ""
        if current is None:
            uow.commands.add(command)
        else:
            held = current.value[1]
            uow.commands.modify(tenant, command.id, lambda stored: command)
        if output == held:
            return
        if not output.startswith(held):
            raise Unrepresentable(
                "the target holds other output for this command (output only grows)"
            )
        # Chunks are numbered by the offset they start at, so output that grows at the source
        # after a copy is appended in order on the next run.
        uow.commands.append_output(tenant, command.id, len(held), output[len(held) :])

    def delete(self, uow: Any, tenant: str, item: Item) -> None:
        raise NotPrunable("commands have no delete in the repository port")


def _audit_create(uow: Any, entry: DownloadAuditEntry) -> None:
    uow.audit.import_(entry)


ARTIFACT_STREAMS: tuple[Any, ...] = (
    _ScanStream(
        "tokens",
        lambda uow, tenant, after, limit: uow.tokens.scan(tenant, after=after, limit=limit),
        lambda token: token.id,
        lambda uow, token: uow.tokens.add(token),
        _replace_token,
    ),
    _ScanStream(
        "vms",
        lambda uow, tenant, after, limit: uow.vms.scan(tenant, after=after, limit=limit),
        lambda vm: vm.vm_uuid,
        lambda uow, vm: uow.vms.upsert(vm),
        lambda uow, tenant, vm, current: uow.vms.upsert(vm),
    ),
    LicenceStream(),
    _ScanStream(
        "entitlements",
        lambda uow, tenant, after, limit: uow.licences.scan_entitlements(
            tenant, after=after, limit=limit
        ),
        lambda entitlement: entitlement.user_id,
        lambda uow, entitlement: uow.licences.put_entitlement(entitlement),
        lambda uow, tenant, entitlement, current: uow.licences.put_entitlement(entitlement),
    ),
    _ScanStream(
        "releases",
        lambda uow, tenant, after, limit: uow.releases.scan(
            tenant, after=None if after is None else int(after), limit=limit
        ),
        lambda release: release.id,
        lambda uow, release: uow.releases.put(release),
        lambda uow, tenant, release, current: uow.releases.put(release),
    ),
    AssignmentStream(),
    _ScanStream(
        "leases",
        lambda uow, tenant, after, limit: uow.leases.scan(tenant, after=after, limit=limit),
        lambda lease: lease.id,
        lambda uow, lease: uow.leases.add(lease),
        _modify(lambda uow: uow.leases),
    ),
    _ScanStream(
        "download_audit",
        lambda uow, tenant, after, limit: uow.audit.scan(
            tenant, after=None if after is None else int(after), limit=limit
        ),
        lambda entry: entry.id,
        _audit_create,
        _not_changed("download audit entry"),
    ),
    _ScanStream(
        "agents",
        lambda uow, tenant, after, limit: uow.agents.scan(tenant, after=after, limit=limit),
        lambda agent: agent.id,
        lambda uow, agent: uow.agents.add(agent),
        _modify(lambda uow: uow.agents),
        agents=True,
    ),
    CommandStream(),
)
"""The artifact and agent streams, in the order a migration copies them (releases before the
assignments and audit naming them, agents before their commands)."""
