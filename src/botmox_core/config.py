"""Configuration: environment variables (``BOTMOX_*`` and the contract's ``DATA_BACKEND``) over an
optional TOML file, over defaults. Zero configuration gives the embedded default: SQLite and
local files under ``./.botmox``.

Plugin options come from ``BOTMOX_<PLUGIN>_<KEY>`` variables or a ``[plugins.<plugin>]`` table in
the TOML file; plugins read them with :meth:`Settings.plugin_options`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from botmox_core.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]

MIN_LEASE_TTL = 60
MIN_URL_TTL = 60
MAX_URL_TTL = 300


@attrs.frozen
class Settings:
    """Resolved configuration of one botmox process.

    Attributes:
        data_dir: directory of the embedded backends' files (SQLite database, objects, keys).
        data_backend: repository plugin name (``sqlite``, ``supabase``, ``rtdb`` ...).
        storage: object storage plugin name (``localfs``, ``s3``, ``minio`` ...).
        host, port: where ``botmox serve`` listens.
        public_url: base URL VMs reach the server at (used in localfs download URLs);
            defaults to ``http://{host}:{port}``.
        lease_ttl_seconds: lease lifetime (minimum 60).
        download_url_ttl_seconds: download URL lifetime (60–300, never beyond the lease).
        jwt_secret: HS256 secret for JWT bearer tokens (Supabase Auth's JWT secret).
        jwks_url: JWKS URL for asymmetric JWTs.
        jwt_issuer, jwt_audience: expected ``iss`` and ``aud`` of JWTs.
        max_upload_bytes: largest artifact accepted over HTTP.
        config_file: the TOML file read, if any.
        environ: the environment the settings were read from (plugins read their options here).
        file_options: the TOML file's ``[plugins.*]`` tables.
    """

    data_dir: Path = attrs.field(default=Path(".botmox"), converter=Path)
    data_backend: str = "sqlite"
    storage: str = "localfs"
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = None
    lease_ttl_seconds: int = 300
    download_url_ttl_seconds: int = 300
    jwt_secret: str | None = attrs.field(default=None, repr=False)
    jwks_url: str | None = None
    jwt_issuer: str | None = "supabase"
    jwt_audience: str | None = "authenticated"
    max_upload_bytes: int = 4 * 1024**3
    config_file: Path | None = None
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    file_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.lease_ttl_seconds < MIN_LEASE_TTL:
            raise ConfigurationError(f"lease TTL must be at least {MIN_LEASE_TTL} s")
        if not MIN_URL_TTL <= self.download_url_ttl_seconds <= MAX_URL_TTL:
            raise ConfigurationError(
                f"download URL TTL must be between {MIN_URL_TTL} and {MAX_URL_TTL} s"
            )

    @property
    def base_url(self) -> str:
        """The public base URL, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def plugin_options(self, plugin: str) -> dict[str, str]:
        """Options of one plugin: the ``[plugins.<plugin>]`` TOML table, overridden by
        ``BOTMOX_<PLUGIN>_<KEY>`` environment variables (keys lower-cased)."""
        options = {k: str(v) for k, v in self.file_options.get(plugin, {}).items()}
        prefix = f"BOTMOX_{plugin.upper().replace('-', '_')}_"
        for name, value in self.environ.items():
            if name.startswith(prefix) and len(name) > len(prefix):
                options[name[len(prefix) :].lower()] = value
        return options


_ENV_FIELDS: dict[str, tuple[str, type]] = {
    "BOTMOX_DATA_DIR": ("data_dir", Path),
    "DATA_BACKEND": ("data_backend", str),  # the contract's name; BOTMOX_ wins when both are set
    "BOTMOX_DATA_BACKEND": ("data_backend", str),
    "BOTMOX_STORAGE": ("storage", str),
    "BOTMOX_HOST": ("host", str),
    "BOTMOX_PORT": ("port", int),
    "BOTMOX_PUBLIC_URL": ("public_url", str),
    "BOTMOX_LEASE_TTL_SECONDS": ("lease_ttl_seconds", int),
    "BOTMOX_DOWNLOAD_URL_TTL_SECONDS": ("download_url_ttl_seconds", int),
    "BOTMOX_JWT_SECRET": ("jwt_secret", str),
    "BOTMOX_JWKS_URL": ("jwks_url", str),
    "BOTMOX_JWT_ISSUER": ("jwt_issuer", str),
    "BOTMOX_JWT_AUDIENCE": ("jwt_audience", str),
    "BOTMOX_MAX_UPLOAD_BYTES": ("max_upload_bytes", int),
}


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings from ``environ`` (default: ``os.environ``), the TOML file named by
    ``config_file`` or ``BOTMOX_CONFIG``, and keyword ``overrides`` (highest precedence;
    ``None`` values are ignored). Raises :class:`ConfigurationError` on bad values."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    file_options: dict[str, Mapping[str, Any]] = {}
    path_text = config_file or env.get("BOTMOX_CONFIG")
    path = Path(path_text) if path_text else None
    if path is not None:
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from exc
        section = document.get("botmox", document)
        plugins = section.get("plugins", {})
        if not isinstance(plugins, dict):
            raise ConfigurationError("[plugins] in the config file must be a table")
        file_options = {str(k): v for k, v in plugins.items() if isinstance(v, dict)}
        known = {f.name for f in attrs.fields(Settings)} - {
            "environ",
            "file_options",
            "config_file",
        }
        for key, value in section.items():
            if key == "plugins":
                continue
            if key not in known:
                raise ConfigurationError(f"unknown setting {key!r} in {path}")
            values[key] = Path(value) if key == "data_dir" else value
    for name, (field, kind) in _ENV_FIELDS.items():
        raw = env.get(name)
        if raw is None or raw == "":
            continue
        try:
            values[field] = kind(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{name}={raw!r} is not a valid {kind.__name__}") from exc
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return Settings(environ=env, file_options=file_options, config_file=path, **values)
    except TypeError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
