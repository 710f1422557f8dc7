"""What the operator inventory commands (``botmox admin <kind> list|show|revoke``) share: the
command decorator that gives each one its common options, the repeated filter and id options,
the backend's inventory, and printing records without their hashes.

The command modules are :mod:`~botmox_core.cli.inventory_access` (tokens, licences,
entitlements), :mod:`~botmox_core.cli.inventory_artifacts` (releases, assignments) and
:mod:`~botmox_core.cli.inventory_vms` (VMs, leases); :mod:`botmox_core.cli.inventory` imports
them all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from botmox_core.cli._options import json_option, location_options
from botmox_core.cli._output import emit
from botmox_core.cli.admin import _core, tenant_option
from botmox_core.converter import get_converter
from botmox_core.errors import NotFoundError
from botmox_core.ports.inventory import Inventory, inventory_of
from botmox_core.ports.repositories import UnitOfWork

__all__ = [
    "HIDDEN_FIELDS",
    "Decorator",
    "id_option",
    "inventory_command",
    "limit_option",
    "one",
    "open_inventory",
    "public_view",
    "show",
    "stamp",
    "status_filter",
    "user_filter",
]

#: A click decorator (an option, a command, or several of them composed).
Decorator = Callable[[Callable[..., Any]], Any]

#: Fields never printed (hashes are credentials' fingerprints, not for screens or logs).
HIDDEN_FIELDS = frozenset({"token_hash", "previous_token_hash"})

#: ``--limit`` of the listings.
limit_option = click.option(
    "--limit", default=100, show_default=True, type=click.IntRange(1, 10_000), help="At most."
)


def inventory_command(
    group: click.Group,
    name: str,
    *options: Decorator,
    tenant: bool = True,
    limit: bool = False,
) -> Decorator:
    """``group.command(name)`` with, in this order (the order ``--help`` lists them):
    ``--tenant`` (required; unless ``tenant`` is false), ``options``, ``--limit`` (when
    ``limit``), ``--json`` and the location options; the function gets the click context
    first."""
    stack: list[Decorator] = [
        group.command(name),
        *([tenant_option] if tenant else []),
        *options,
        *([limit_option] if limit else []),
        json_option,
        location_options,
        click.pass_context,
    ]

    def decorate(function: Callable[..., Any]) -> Any:
        for decorator in reversed(stack):
            function = decorator(function)
        return function

    return decorate


def user_filter(help_text: str) -> Decorator:
    """``--user`` (optional, to ``user_id``): a listing's filter by user."""
    return click.option("--user", "user_id", default=None, help=help_text)


def status_filter(choices: Sequence[str]) -> Decorator:
    """``--status`` (optional, one of ``choices``): a listing's filter by status."""
    return click.option("--status", type=click.Choice(list(choices)), default=None)


def id_option(
    flag: str, dest: str, help_text: str, value_type: type[str] | type[int] = str
) -> Decorator:
    """A required id option (``--id``, ``--vm``, ``--user``) naming the record to show or
    revoke."""
    if value_type is str:
        return click.option(flag, dest, required=True, help=help_text)
    return click.option(flag, dest, required=True, type=value_type, help=help_text)


def public_view(value: Any) -> Any:
    """A record as JSON-ready data without its hashes (lists element-wise)."""
    if isinstance(value, list | tuple):
        return [public_view(item) for item in value]
    data = get_converter().unstructure(value)
    if isinstance(data, dict):
        return {key: item for key, item in data.items() if key not in HIDDEN_FIELDS}
    return data


def stamp(moment: datetime | None) -> str:
    """A timestamp for the text lines (``-`` when absent)."""
    return "-" if moment is None else f"{moment:%Y-%m-%dT%H:%M:%SZ}"


def show(value: Any, as_json: bool, lines: Sequence[str]) -> None:
    """Print records: their public view with ``--json``, else one text line each (``none``
    when there are none)."""
    emit(public_view(value), as_json, "\n".join(lines) if lines else "none")


@contextmanager
def open_inventory(ctx: click.Context) -> Iterator[tuple[UnitOfWork, Inventory]]:
    """A unit of work on the configured backend and its inventory (the caller commits)."""
    with _core(ctx) as core, core.backend.unit_of_work() as uow:
        found = inventory_of(uow)
        if found is None:
            raise click.ClickException(
                f"the {core.backend.name} data backend keeps no operator inventory (listing "
                "and these revocations need sqlite or supabase)"
            )
        yield uow, found


def one(found: Any, what: str) -> Any:
    """``found``, or a ``NotFoundError`` ("no such ``what``") when it is ``None``."""
    if found is None:
        raise NotFoundError(f"no such {what}")
    return found
