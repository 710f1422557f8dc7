"""Registers the ``s3`` storage with botmox (entry point ``botmox: s3``).

Select it with ``BOTMOX_STORAGE=s3`` and configure it with ``BOTMOX_S3_*`` variables or a
``[plugins.s3]`` table; see :mod:`botmox_s3.options`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from botmox_core.plugin import hookimpl
from botmox_s3.options import parse_s3_options
from botmox_s3.storage import S3Storage

if TYPE_CHECKING:
    from botmox_core.config import Settings
    from botmox_core.plugin.spec import StorageFactory

__all__ = ["botmox_register_storages", "build_s3_storage"]


def build_s3_storage(settings: Settings) -> S3Storage:
    """Validate ``BOTMOX_S3_*`` options, build the storage and run the privacy check.

    Raises :class:`~botmox_core.errors.ConfigurationError` for bad options or (with
    ``privacy_check=refuse``) a bucket that can be read anonymously.
    """
    storage = S3Storage(parse_s3_options(settings.plugin_options("s3")), name="s3")
    try:
        storage.verify_privacy()
    except BaseException:
        storage.close()
        raise
    return storage


@hookimpl
def botmox_register_storages(register: Callable[[str, StorageFactory], None]) -> None:
    """Register ``s3``."""
    register("s3", build_s3_storage)
