"""Building the plugin manager: built-in backends first, then the ``botmox`` entry points,
filtered by ``BOTMOX_PLUGINS`` (allow list) and ``BOTMOX_DISABLE_PLUGINS`` (block list),
then ``check_pending()`` so a misspelt hook name fails at start-up."""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

import pluggy

from botmox_core.errors import ConfigurationError
from botmox_core.plugin import spec

__all__ = ["BUILTIN_PLUGINS", "PluginRegistry", "build_plugin_manager", "load_registry"]

log = logging.getLogger(__name__)

BUILTIN_PLUGINS: tuple[str, ...] = (
    "botmox_core.backends.sqlite",
    "botmox_core.backends.localfs",
    "botmox_core.backends.inprocess_transport",
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
    for module_name in BUILTIN_PLUGINS:
        short = module_name.rsplit(".", 1)[-1]
        if short in block or module_name in block:
            continue
        pm.register(importlib.import_module(module_name), name=short)
    for ep in entry_points(group=spec.PROJECT):
        if ep.name in block or (allow is not None and ep.name not in allow):
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
    return pm


def load_registry(environ: Mapping[str, str] | None = None) -> PluginRegistry:
    """Build the plugin manager and collect every registration."""
    return PluginRegistry(build_plugin_manager(environ))
