"""Options of the ``s3`` storage, read from ``BOTMOX_S3_*`` variables or ``[plugins.s3]``.

Every option is validated when the storage is built; a bad value raises
:class:`~botmox_core.errors.ConfigurationError` naming the variable, never echoing a secret.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

import attrs

from botmox_core.errors import ConfigurationError

__all__ = ["PrivacyCheckMode", "S3Options", "ServerSideEncryption", "parse_s3_options"]

PrivacyCheckMode = Literal["refuse", "warn", "off"]
ServerSideEncryption = Literal["none", "AES256", "aws:kms"]
AddressingStyle = Literal["auto", "path", "virtual"]

MIB = 1024 * 1024
MIN_PART_BYTES = 5 * MIB  # S3's smallest multipart part
MAX_PARTS = 10_000

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


@attrs.frozen
class S3Options:
    """Resolved options of one S3 storage.

    Attributes:
        bucket: the private bucket artifacts live in.
        region: signing region (``us-east-1`` for most S3-compatible servers).
        endpoint_url: S3 API endpoint; ``None`` = AWS.
        public_endpoint_url: endpoint presigned URLs are made for (the host VMs reach);
            ``None`` = ``endpoint_url``. SigV4 signs the Host header, so the URL is signed for it.
        access_key_id, secret_access_key, session_token: static credentials; ``None`` = boto3's
            default credential chain (environment, profile, instance role).
        addressing_style: ``auto``, ``path`` or ``virtual``.
        sse: server-side encryption of new objects: ``none``, ``AES256`` (SSE-S3), ``aws:kms``.
        sse_kms_key_id: KMS key for ``aws:kms``; ``None`` = the account's default S3 key.
        privacy_check: what start-up does when the bucket may be public: ``refuse`` to start,
            ``warn`` loudly, or ``off``.
        multipart_threshold: objects at least this large are uploaded in parts.
        multipart_chunksize: part size.
        max_concurrency: parts transferred in parallel.
        connect_timeout, read_timeout: seconds.
        max_attempts: attempts per request (botocore standard retry mode).
        max_pool_connections: HTTP connections the one shared client keeps.
        spool_dir: where non-seekable uploads are spooled while their sha256 is computed;
            ``None`` = the system temporary directory.
    """

    bucket: str
    region: str = "us-east-1"
    endpoint_url: str | None = None
    public_endpoint_url: str | None = None
    access_key_id: str | None = attrs.field(default=None, repr=False)
    secret_access_key: str | None = attrs.field(default=None, repr=False)
    session_token: str | None = attrs.field(default=None, repr=False)
    addressing_style: AddressingStyle = "auto"
    sse: ServerSideEncryption = "none"
    sse_kms_key_id: str | None = None
    privacy_check: PrivacyCheckMode = "refuse"
    multipart_threshold: int = 16 * MIB
    multipart_chunksize: int = 16 * MIB
    max_concurrency: int = 8
    connect_timeout: float = 5.0
    read_timeout: float = 60.0
    max_attempts: int = 3
    max_pool_connections: int = 32
    spool_dir: Path | None = None


_T = TypeVar("_T", int, float)

# option key (lower-cased variable suffix) -> S3Options field
_KEYS: dict[str, str] = {
    "bucket": "bucket",
    "region": "region",
    "endpoint_url": "endpoint_url",
    "public_endpoint_url": "public_endpoint_url",
    "access_key_id": "access_key_id",
    "secret_access_key": "secret_access_key",
    "session_token": "session_token",
    "addressing_style": "addressing_style",
    "sse": "sse",
    "sse_kms_key_id": "sse_kms_key_id",
    "privacy_check": "privacy_check",
    "multipart_threshold_mb": "multipart_threshold",
    "multipart_chunksize_mb": "multipart_chunksize",
    "max_concurrency": "max_concurrency",
    "connect_timeout_seconds": "connect_timeout",
    "read_timeout_seconds": "read_timeout",
    "max_attempts": "max_attempts",
    "max_pool_connections": "max_pool_connections",
    "spool_dir": "spool_dir",
}


class _Reader:
    """Reads one plugin's raw option strings, naming the environment variable in errors."""

    def __init__(self, raw: Mapping[str, str], env_prefix: str, spelled: Mapping[str, str]) -> None:
        self.raw = {k: v.strip() for k, v in raw.items()}
        self.env_prefix = env_prefix
        self.spelled = spelled

    def var(self, key: str) -> str:
        """The environment variable the operator sets for ``key``."""
        return f"{self.env_prefix}{self.spelled.get(key, key).upper()}"

    def text(self, key: str) -> str | None:
        value = self.raw.get(key)
        return value if value else None

    def choice(self, key: str, allowed: tuple[str, ...], default: str) -> str:
        value = self.text(key) or default
        for option in allowed:
            if value.lower() == option.lower():
                return option
        raise ConfigurationError(f"{self.var(key)}={value!r} is not one of {', '.join(allowed)}")

    def number(
        self, key: str, convert: Callable[[str], _T], low: float, high: float, default: _T
    ) -> _T:
        value = self.text(key)
        if value is None:
            return default
        try:
            number = convert(value)
        except ValueError:
            raise ConfigurationError(f"{self.var(key)}={value!r} is not a number") from None
        if not low <= number <= high:
            raise ConfigurationError(f"{self.var(key)} must be between {low:g} and {high:g}")
        return number

    def url(self, key: str) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigurationError(
                f"{self.var(key)}={value!r} must be an absolute http(s) URL like "
                f"https://s3.example.com"
            )
        if parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigurationError(
                f"{self.var(key)} must not carry a query, fragment or credentials"
            )
        return value.rstrip("/")


def parse_s3_options(
    raw: Mapping[str, str],
    *,
    env_prefix: str = "BOTMOX_S3_",
    aliases: Mapping[str, str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> S3Options:
    """Validate raw option strings (``settings.plugin_options(...)``) into :class:`S3Options`.

    ``aliases`` maps another plugin's key names onto these (``access_key`` ->
    ``access_key_id``); ``defaults`` fills keys the operator did not set. Unknown keys are an
    error, so a misspelt variable does not silently fall back to a default.
    """
    names = dict(aliases or {})
    merged: dict[str, str] = dict(defaults or {})
    for key, value in raw.items():
        canonical = names.get(key, key)
        if canonical not in _KEYS:
            known = ", ".join(sorted({*names, *(k for k in _KEYS if k not in names.values())}))
            raise ConfigurationError(f"unknown option {env_prefix}{key.upper()} (known: {known})")
        merged[canonical] = value
    read = _Reader(merged, env_prefix, {canonical: alias for alias, canonical in names.items()})

    bucket = read.text("bucket")
    if bucket is None:
        raise ConfigurationError(f"{read.var('bucket')} is required (the private artifact bucket)")
    if not _BUCKET_NAME.match(bucket) or ".." in bucket:
        raise ConfigurationError(
            f"{read.var('bucket')}={bucket!r} is not a valid bucket name "
            f"(3-63 characters: lower-case letters, digits, '.' and '-')"
        )
    region = read.text("region") or "us-east-1"
    if not re.fullmatch(r"[a-z0-9-]{2,32}", region):
        raise ConfigurationError(f"{read.var('region')}={region!r} is not a region name")

    access_key_id = read.text("access_key_id")
    secret_access_key = read.text("secret_access_key")
    if (access_key_id is None) != (secret_access_key is None):
        raise ConfigurationError(
            f"set both {read.var('access_key_id')} and {read.var('secret_access_key')}, "
            f"or neither (to use the default AWS credential chain)"
        )
    session_token = read.text("session_token")
    if session_token is not None and access_key_id is None:
        raise ConfigurationError(
            f"{read.var('session_token')} needs {read.var('access_key_id')} as well"
        )

    sse = read.choice("sse", ("none", "AES256", "aws:kms"), "none")
    kms_key = read.text("sse_kms_key_id")
    if kms_key is not None and sse != "aws:kms":
        raise ConfigurationError(
            f"{read.var('sse_kms_key_id')} is set but {read.var('sse')} is {sse!r}, not 'aws:kms'"
        )

    threshold = read.number("multipart_threshold_mb", int, 5, 5 * 1024, 16)
    chunksize = read.number("multipart_chunksize_mb", int, 5, 5 * 1024, 16)
    spool = read.text("spool_dir")
    if spool is not None and not Path(spool).is_dir():
        raise ConfigurationError(f"{read.var('spool_dir')}={spool!r} is not a directory")

    return S3Options(
        bucket=bucket,
        region=region,
        endpoint_url=read.url("endpoint_url"),
        public_endpoint_url=read.url("public_endpoint_url"),
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        session_token=session_token,
        addressing_style=read.choice("addressing_style", ("auto", "path", "virtual"), "auto"),  # type: ignore[arg-type]
        sse=sse,  # type: ignore[arg-type]
        sse_kms_key_id=kms_key,
        privacy_check=read.choice("privacy_check", ("refuse", "warn", "off"), "refuse"),  # type: ignore[arg-type]
        multipart_threshold=threshold * MIB,
        multipart_chunksize=chunksize * MIB,
        max_concurrency=read.number("max_concurrency", int, 1, 64, 8),
        connect_timeout=read.number("connect_timeout_seconds", float, 0.1, 300, 5.0),
        read_timeout=read.number("read_timeout_seconds", float, 0.1, 3600, 60.0),
        max_attempts=read.number("max_attempts", int, 1, 10, 3),
        max_pool_connections=read.number("max_pool_connections", int, 1, 1024, 32),
        spool_dir=Path(spool) if spool else None,
    )
