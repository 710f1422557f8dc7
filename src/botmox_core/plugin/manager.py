"""Building the plugin manager: built-in backends first, then the ``botmox`` entry points,
filtered by ``BOTMOX_PLUGINS`` (allow list) and ``BOTMOX_DISABLE_PLUGINS`` (block list, enforced
by pluggy's own ``set_blocked``, so a later ``register`` of a blocked name is refused too), then
``check_pending()`` so a misspelt hook name fails at start-up, and the historic
``botmox_configure_converter`` call with the shared converter."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import click
import pluggy

from botmox_core.converter import get_converter
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import spec

__all__ = [
    "BUILTIN_PLUGINS",
    "PluginRegistry",
    "build_plugin_manager",
    "load_registry",
    "register_commands",
]

log = logging.getLogger(__name__)

BUILTIN_PLUGINS: tuple[str, ...] = (
    "botmox_core.backends.sqlite",
    "botmox_core.backends.localfs",
    "botmox_core.backends.inprocess_transport",
    "botmox_core.backends.unixsocket_transport",
)

F = TypeVar("F")


class _Kind(Generic[F]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.factories: dict[str, F] = {}

    def register(self, name: str, factory: F) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"{self.kind} name must be a non-empty string, got {name!r}")
        if not callable(factory):
            raise ConfigurationError(f"{self.kind} {name!r}: factory is not callable")
        if name in self.factories:
            raise ConfigurationError(f"{self.kind} {name!r} is registered twice")
        self.factories[name] = factory

    def get(self, name: str) -> F:
        try:
            return self.factories[name]
        except KeyError:
            known = ", ".join(sorted(self.factories)) or "none"
            raise ConfigurationError(
                f"unknown {self.kind} {name!r} (installed: {known}); "
                f"install the plugin that provides it or check the name"
            ) from None


class PluginRegistry:
    """What the loaded plugins registered: factories by name, per kind."""

    def __init__(self, manager: pluggy.PluginManager) -> None:
        self.manager = manager
        self.data_backends: _Kind[spec.DataBackendFactory] = _Kind("data backend")
        self.storages: _Kind[spec.StorageFactory] = _Kind("storage")
        self.agent_transports: _Kind[spec.TransportFactory] = _Kind("agent transport")
        hook = manager.hook
        hook.botmox_register_data_backends(register=self.data_backends.register)
        hook.botmox_register_storages(register=self.storages.register)
        hook.botmox_register_agent_transports(register=self.agent_transports.register)


def _names(raw: str | None) -> set[str] | None:
    if raw is None or not raw.strip():
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def build_plugin_manager(environ: Mapping[str, str] | None = None) -> pluggy.PluginManager:
    """A plugin manager with the built-in backends and the allowed entry-point plugins.

    ``BOTMOX_PLUGINS`` (comma-separated entry-point names) limits which external plugins load;
    ``BOTMOX_DISABLE_PLUGINS`` blocks names (built-in module names included).
    """
    env = os.environ if environ is None else environ
    allow = _names(env.get("BOTMOX_PLUGINS"))
    block = _names(env.get("BOTMOX_DISABLE_PLUGINS")) or set()
    pm = pluggy.PluginManager(spec.PROJECT)
    pm.add_hookspecs(spec)
    for name in block:
        pm.set_blocked(name)
    for module_name in BUILTIN_PLUGINS:
        short = module_name.rsplit(".", 1)[-1]
        if module_name in block:
            pm.set_blocked(short)
        if not pm.is_blocked(short):
            pm.register(importlib.import_module(module_name), name=short)
    for ep in entry_points(group=spec.PROJECT):
        if pm.is_blocked(ep.name) or (allow is not None and ep.name not in allow):
            log.debug("plugin %s skipped by allow/block list", ep.name)
            continue
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin: Any = ep.load()
        except Exception as exc:  # a broken third-party plugin must say which one
            raise ConfigurationError(
                f"plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from exc
        pm.register(plugin, name=ep.name)
    pm.check_pending()
    pm.hook.botmox_configure_converter.call_historic(kwargs={"converter": get_converter()})
    return pm


def register_commands(pm: pluggy.PluginManager, group: click.Group) -> None:
    """Let every plugin add commands to ``group`` (``botmox_register_commands``), refusing a
    name that is already taken with a :class:`ConfigurationError` naming the plugin."""
    for impl in pm.hook.botmox_register_commands.get_hookimpls():
        owner = impl.plugin_name

        def register(name: str, command: click.Command, owner: str = owner) -> None:
            if not isinstance(command, click.Command):
                raise ConfigurationError(
                    f"plugin {owner!r} registered {name!r} with a {type(command).__name__}, "
                    "not a click command"
                )
            if not isinstance(name, str) or not name or name != name.strip():
                raise ConfigurationError(f"plugin {owner!r}: command name {name!r} is not valid")
            if name in group.commands:
                raise ConfigurationError(
                    f"plugin {owner!r} registers the command {name!r}, which is already taken; "
                    "rename it, or block the plugin with BOTMOX_DISABLE_PLUGINS"
                )
            group.add_command(command, name)

        impl.function(register=register)


def load_registry(environ: Mapping[str, str] | None = None) -> PluginRegistry:
    """Build the plugin manager and collect every registration."""
    return PluginRegistry(build_plugin_manager(environ))
