"""Options of the ``minio`` storage (``BOTMOX_MINIO_*`` or ``[plugins.minio]``).

MinIO-style names map onto :class:`botmox_s3.options.S3Options`; path-style addressing and the
``us-east-1`` region are the defaults, and an endpoint is required (there is no default host).

==================================  ======================================================
``BOTMOX_MINIO_ENDPOINT``           internal S3 API URL the server talks to (required)
``BOTMOX_MINIO_PUBLIC_ENDPOINT``    URL VMs reach MinIO at; presigned URLs carry this host
``BOTMOX_MINIO_BUCKET``             the private artifact bucket (required)
``BOTMOX_MINIO_ACCESS_KEY``         access key (with ``BOTMOX_MINIO_SECRET_KEY``)
``BOTMOX_MINIO_SECRET_KEY``         secret key
``BOTMOX_MINIO_REGION``             signing region, default ``us-east-1``
==================================  ======================================================

Every other ``botmox-s3`` option works with the ``BOTMOX_MINIO_`` prefix (``SSE``,
``PRIVACY_CHECK``, ``MULTIPART_THRESHOLD_MB`` ...).
"""

from __future__ import annotations

from collections.abc import Mapping

from botmox_s3.options import S3Options, parse_s3_options

from botmox_core.errors import ConfigurationError

__all__ = ["MINIO_ALIASES", "MINIO_DEFAULTS", "parse_minio_options"]

MINIO_ALIASES: Mapping[str, str] = {
    "endpoint": "endpoint_url",
    "public_endpoint": "public_endpoint_url",
    "access_key": "access_key_id",
    "secret_key": "secret_access_key",
}
"""MinIO-style option names -> botmox-s3 option names."""

MINIO_DEFAULTS: Mapping[str, str] = {"addressing_style": "path", "region": "us-east-1"}


def parse_minio_options(raw: Mapping[str, str]) -> S3Options:
    """Validate ``settings.plugin_options("minio")`` into :class:`S3Options`."""
    options = parse_s3_options(
        raw, env_prefix="BOTMOX_MINIO_", aliases=MINIO_ALIASES, defaults=MINIO_DEFAULTS
    )
    if options.endpoint_url is None:
        raise ConfigurationError(
            "BOTMOX_MINIO_ENDPOINT is required (the MinIO S3 API URL, e.g. http://minio:9000)"
        )
    return options
