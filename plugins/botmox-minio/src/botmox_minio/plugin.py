"""Registers the ``minio`` storage with botmox (entry point ``botmox: minio``).

Select it with ``BOTMOX_STORAGE=minio``; options in :mod:`botmox_minio.options`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botmox_core.plugin import hookimpl
from botmox_minio.options import parse_minio_options
from botmox_minio.storage import MinioStorage

if TYPE_CHECKING:
    from botmox_core.config import Settings
    from botmox_core.plugin.spec import StorageFactory

__all__ = ["botmox_register_storages", "build_minio_storage"]


def build_minio_storage(settings: Settings) -> MinioStorage:
    """Validate ``BOTMOX_MINIO_*`` options, build the storage and run the privacy check."""
    storage = MinioStorage(parse_minio_options(settings.plugin_options("minio")))
    try:
        storage.verify_privacy()
    except BaseException:
        storage.close()
        raise
    return storage


@hookimpl
def botmox_register_storages(register: Callable[[str, StorageFactory], None]) -> None:
    """Register ``minio``."""
    register("minio", build_minio_storage)
