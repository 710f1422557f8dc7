"""Configuration: environment variables (``BOTMOX_*`` and the contract's ``DATA_BACKEND``) over an
optional TOML file, over defaults. Zero configuration gives the embedded default: SQLite and
local files under ``./.botmox``.

Plugin options come from ``BOTMOX_<PLUGIN>_<KEY>`` variables or a ``[plugins.<plugin>]`` table in
the TOML file; plugins read them with :meth:`Settings.plugin_options`.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from botmox_core.errors import ConfigurationError

__all__ = ["Settings", "load_settings"]

MIN_LEASE_TTL = 60
MIN_URL_TTL = 60
MAX_URL_TTL = 300
MAX_PORT = 65535
LOG_FORMATS = ("text", "json")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _flag(value: object) -> bool:
    """A boolean setting: a TOML boolean or one of 1/0, true/false, yes/no, on/off."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ConfigurationError(f"expected a boolean (true/false), got {value!r}")


def _networks(value: object) -> tuple[str, ...]:
    """Trusted proxy addresses/CIDRs: a TOML list or a comma-separated string, each checked."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigurationError(f"rate_limit_trusted_proxies must be a list, got {value!r}")
    networks: list[str] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            raise ConfigurationError(
                f"rate_limit_trusted_proxies: {text!r} is not an IP address or CIDR"
            ) from None
    return tuple(networks)


def _at_least(minimum: int) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ConfigurationError(f"{attribute.name} must be an integer >= {minimum}")

    return check


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
        log_format: ``text`` (one readable line per record) or ``json`` (one JSON object per
            line) for every log record of ``botmox serve``.
        rate_limit_enabled: whether the server limits requests (429 ``RATE_LIMITED``).
        rate_limit_requests: requests per window for one authenticated bearer token.
        rate_limit_address_requests: requests per window for one client address (requests
            without a token that authenticates).
        rate_limit_window_seconds: length of the fixed counting window.
        rate_limit_trusted_proxies: addresses/CIDRs of reverse proxies whose
            ``X-Forwarded-For`` is believed (default: none).
        rate_limit_store: where counts are kept (``memory`` per process, ``postgres`` shared by
            replicas); default: the data backend's preference, else ``memory``.
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
    log_format: str = "text"
    rate_limit_enabled: bool = attrs.field(default=True, converter=_flag)
    rate_limit_requests: int = attrs.field(default=6000, validator=_at_least(1))
    rate_limit_address_requests: int = attrs.field(default=600, validator=_at_least(1))
    rate_limit_window_seconds: int = attrs.field(default=60, validator=_at_least(1))
    rate_limit_trusted_proxies: tuple[str, ...] = attrs.field(default=(), converter=_networks)
    rate_limit_store: str | None = None
    config_file: Path | None = None
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    file_options: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict, repr=False)

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.port <= MAX_PORT:
            raise ConfigurationError(f"port must be between 1 and {MAX_PORT}, got {self.port}")
        if self.public_url and not self.public_url.startswith(("http://", "https://")):
            raise ConfigurationError(
                f"public URL must start with http:// or https://, got {self.public_url!r}"
            )
        if self.log_format not in LOG_FORMATS:
            raise ConfigurationError(
                f"log format must be one of {', '.join(LOG_FORMATS)}, got {self.log_format!r}"
            )
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
    "BOTMOX_LOG_FORMAT": ("log_format", str),
    "BOTMOX_RATE_LIMIT_ENABLED": ("rate_limit_enabled", str),  # parsed by the field's converter
    "BOTMOX_RATE_LIMIT_REQUESTS": ("rate_limit_requests", int),
    "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS": ("rate_limit_address_requests", int),
    "BOTMOX_RATE_LIMIT_WINDOW_SECONDS": ("rate_limit_window_seconds", int),
    "BOTMOX_RATE_LIMIT_TRUSTED_PROXIES": ("rate_limit_trusted_proxies", str),  # comma-separated
    "BOTMOX_RATE_LIMIT_STORE": ("rate_limit_store", str),
}


_SCALARS: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path string",
}


def _file_value(key: str, value: Any, path: Path) -> Any:
    """A TOML value checked against the type of its :class:`Settings` field, so a mistyped value
    (``port = "8080x"``) is refused when the file is read, not later in the server."""
    try:
        hint = typing.get_type_hints(Settings)[key]
    except (NameError, KeyError):  # a field typed with a name not importable here
        return value
    kinds = [
        kind
        for kind in (typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,))
        if kind is not type(None)
    ]
    if not kinds or not all(kind in _SCALARS for kind in kinds):
        return value  # structured settings are checked by their own converters
    if Path in kinds and isinstance(value, str):
        return Path(value)
    if isinstance(value, bool) and bool not in kinds:
        pass
    elif float in kinds and isinstance(value, int | float):
        return float(value)
    elif any(isinstance(value, kind) for kind in kinds):
        return value
    expected = " or ".join(_SCALARS[kind] for kind in kinds)
    raise ConfigurationError(f"{key} in {path} must be {expected}, got {value!r}")


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
            values[key] = _file_value(key, value, path)
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
