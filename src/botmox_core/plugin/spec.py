"""Every botmox hook, in one place.

Plugins implement hooks with :data:`hookimpl` and are found through the ``botmox`` entry-point
group (or registered by the core, for the built-in backends). Registration hooks receive a
``register`` callback rather than returning lists, so a plugin can register several things and
the core can validate each call.

A factory receives the resolved :class:`~botmox_core.config.Settings` and builds the backend;
it reads its own options with ``settings.plugin_options("<name>")``. Factories are called only
for the backend the operator selected.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import pluggy

if TYPE_CHECKING:
    import click
    from cattrs import Converter

    from botmox_core.config import Settings
    from botmox_core.ports import AgentTransport, DataBackend, ObjectStorage
    from botmox_core.ports.ratelimit import RateLimitStore

PROJECT = "botmox"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

F = TypeVar("F")
Register = Callable[[str, F], None]
"""The ``register(name, thing)`` callback registration hooks receive: ``Register[StorageFactory]``
and so on, so every plugin writes the same signature."""

DataBackendFactory = Callable[["Settings"], "DataBackend"]
StorageFactory = Callable[["Settings"], "ObjectStorage"]
TransportFactory = Callable[["Settings"], "AgentTransport"]
RateLimitStoreFactory = Callable[["Settings"], "RateLimitStore"]


@hookspec
def botmox_register_data_backends(register: Register[DataBackendFactory]) -> None:
    """Register repository backends.

    Called once when the plugin manager is built. Call ``register(name, factory)`` for each
    backend; ``name`` is what operators put in ``DATA_BACKEND``. Registering a name twice is an
    error. Return value ignored.
    """


@hookspec
def botmox_register_storages(register: Register[StorageFactory]) -> None:
    """Register object storage backends.

    Called once when the plugin manager is built. Call ``register(name, factory)`` for each
    storage; ``name`` is what operators put in ``BOTMOX_STORAGE``. Registering a name twice is an
    error. Return value ignored.
    """


@hookspec
def botmox_register_agent_transports(register: Register[TransportFactory]) -> None:
    """Register agent transports (how a replica wakes the replica holding an agent's socket).

    Called once when the plugin manager is built. Call ``register(name, factory)`` for each
    transport. Registering a name twice is an error. Return value ignored.
    """


@hookspec
def botmox_register_rate_limit_stores(register: Register[RateLimitStoreFactory]) -> None:
    """Register rate-limit stores (counters shared by server replicas, so a limit holds across
    them; see :class:`~botmox_core.ports.ratelimit.RateLimitStore`).

    Called when the server builds its rate limiter. Call ``register(name, factory)`` for each
    store; ``name`` is what operators put in ``BOTMOX_RATE_LIMIT_STORE`` (``memory``, the
    per-process default, is built in). Registering a name twice is an error. Return value
    ignored.
    """


@hookspec(historic=True)
def botmox_configure_converter(converter: Converter) -> None:
    """Extend the shared cattrs converter (structure/unstructure hooks for a plugin's types).

    A historic hook: called when the plugin manager is built with the shared converter of
    :func:`botmox_core.converter.get_converter`, every implementation in registration order,
    and for a plugin registered later, at its registration. Return value ignored.
    """


@hookspec
def botmox_register_commands(register: Register[click.Command]) -> None:
    """Add commands to the ``botmox`` command line (for example ``botmox db migrate``).

    Called once when the CLI starts, before arguments are parsed. Call
    ``register(name, command)`` for each command or group (a ``click.Command``); a name already
    taken, by the core (``serve``, ``admin``, ...) or another plugin, is a
    :class:`~botmox_core.errors.ConfigurationError` naming both. Return value ignored.
    """
