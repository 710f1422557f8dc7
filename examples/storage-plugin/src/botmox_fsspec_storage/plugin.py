"""The plugin module named by the ``botmox`` entry point: one hook, one factory.

Operators select the storage with ``BOTMOX_STORAGE=fsspec`` and configure it with
``BOTMOX_FSSPEC_URL`` (required, e.g. ``file:///srv/artifacts``) and optionally
``BOTMOX_FSSPEC_STORAGE_OPTIONS`` (a JSON object passed to the fsspec filesystem).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botmox_core.errors import ConfigurationError
from botmox_core.plugin import hookimpl
from botmox_fsspec_storage.storage import FsspecStorage

if TYPE_CHECKING:
    from botmox_core.config import Settings
    from botmox_core.plugin.spec import StorageFactory

__all__ = ["botmox_register_storages", "build_fsspec_storage"]


def build_fsspec_storage(settings: Settings) -> FsspecStorage:
    """Build the storage from ``settings.plugin_options("fsspec")``."""
    options = settings.plugin_options("fsspec")
    unknown = sorted(set(options) - {"url", "storage_options"})
    if unknown:
        raise ConfigurationError(f"unknown option BOTMOX_FSSPEC_{unknown[0].upper()}")
    url = options.get("url", "").strip()
    if not url:
        raise ConfigurationError("BOTMOX_FSSPEC_URL is required (e.g. file:///srv/artifacts)")
    storage_options: dict[str, Any] = {}
    if options.get("storage_options"):
        try:
            storage_options = json.loads(options["storage_options"])
        except json.JSONDecodeError:
            raise ConfigurationError("BOTMOX_FSSPEC_STORAGE_OPTIONS is not valid JSON") from None
        if not isinstance(storage_options, dict):
            raise ConfigurationError("BOTMOX_FSSPEC_STORAGE_OPTIONS must be a JSON object")
    return FsspecStorage(url, storage_options=storage_options)


@hookimpl
def botmox_register_storages(register: Callable[[str, StorageFactory], None]) -> None:
    """Register ``fsspec``."""
    register("fsspec", build_fsspec_storage)
