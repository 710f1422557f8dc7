"""botmox plugin entry point (group ``botmox``, name ``rtdb``): registers the ``rtdb`` backend."""

from __future__ import annotations

from collections.abc import Callable

from botmox_core.plugin import hookimpl
from botmox_core.plugin.spec import DataBackendFactory
from botmox_rtdb.backend import build_backend

__all__ = ["botmox_register_data_backends"]


@hookimpl
def botmox_register_data_backends(register: Callable[[str, DataBackendFactory], None]) -> None:
    """Register ``DATA_BACKEND=rtdb``."""
    factory: DataBackendFactory = build_backend
    register("rtdb", factory)
