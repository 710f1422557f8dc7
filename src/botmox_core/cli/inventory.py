"""``botmox admin <kind> list|show|revoke``: see and revoke what a tenant holds — tokens,
licences, entitlements, releases, assignments, VMs and leases — on the configured backends
(the same configuration as ``botmox serve``, like every ``botmox admin`` command).

Listings read the backend's :class:`~botmox_core.ports.inventory.Inventory`; revocations go
through the services where one exists (tokens, leases, VMs, licences). Hashes of tokens and
leases are never printed: a token is shown once, by ``token create``. Agents and commands live
with the server's agent bus and are handled over HTTP (:mod:`botmox_core.cli.operate`).

Importing this module adds the commands to the admin groups; they live per aggregate in
:mod:`~botmox_core.cli.inventory_access` (tokens, licences, entitlements),
:mod:`~botmox_core.cli.inventory_artifacts` (releases, assignments) and
:mod:`~botmox_core.cli.inventory_vms` (VMs, leases), their shared options and helpers in
:mod:`botmox_core.cli._inventory`.
"""

from __future__ import annotations

from botmox_core.cli import inventory_access, inventory_artifacts, inventory_vms
from botmox_core.cli._inventory import HIDDEN_FIELDS, public_view

__all__ = [
    "HIDDEN_FIELDS",
    "inventory_access",
    "inventory_artifacts",
    "inventory_vms",
    "public_view",
]
