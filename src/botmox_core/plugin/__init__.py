"""botmox's plugin system (pluggy).

Writing a plugin takes three steps:

1. Implement the port (:class:`~botmox_core.ports.ObjectStorage` or
   :class:`~botmox_core.ports.DataBackend`) in plain synchronous code.
2. Register a factory with a hook implementation::

       from botmox_core.plugin import hookimpl

       @hookimpl
       def botmox_register_storages(register):
           register("mystore", lambda settings: MyStore(**settings.plugin_options("mystore")))

3. Declare the module in your ``pyproject.toml``::

       [project.entry-points.botmox]
       mystore = "my_package.plugin"

Then prove it with the conformance suite in :mod:`botmox_core.testing`. Every hook is
documented in :mod:`botmox_core.plugin.spec`; see ``docs/writing-a-plugin.md``.
"""

from botmox_core.plugin.manager import (
    BUILTIN_PLUGINS,
    PluginRegistry,
    build_plugin_manager,
    load_registry,
)
from botmox_core.plugin.spec import hookimpl, hookspec

__all__ = [
    "BUILTIN_PLUGINS",
    "PluginRegistry",
    "build_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_registry",
]
