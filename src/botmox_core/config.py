"""Configuration: environment variables (``BOTMOX_*`` and the contract's ``DATA_BACKEND``) over an
optional TOML file, over defaults. Zero configuration gives the embedded default: SQLite and
local files under ``./.botmox``.

Every setting is a field of :class:`Settings`; its metadata names the environment variable(s)
that set it and whether it is a secret. The TOML file sets the same fields under the field's
name (``agent_offline_seconds = 60``), except the two plugin lists, which decide what code is
loaded before any file is read and so are environment-only. :func:`load_settings` records where
each value came from (:meth:`Settings.origin`), so ``botmox config show`` can tell the operator.

Bad values are refused with :class:`ConfigurationError` naming the setting and its source (the
variable, or the key in the file); an unknown key in the file is refused too, never ignored.

Plugin options come from ``BOTMOX_<PLUGIN>_<KEY>`` variables or a ``[plugins.<plugin>]`` table in
the TOML file; plugins read them with :meth:`Settings.plugin_options`.

Size: about 570 lines on purpose: every setting, with its variables, its check and its
documentation, is in this one module, so adding one is one field here.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs

from botmox_core.errors import ConfigurationError

__all__ = [
    "ENVIRONMENT_ONLY",
    "PLUGIN_ENV_FALLBACKS",
    "Origin",
    "Settings",
    "load_settings",
    "setting_fields",
]

MIN_LEASE_TTL = 60
MIN_URL_TTL = 60
MAX_URL_TTL = 300
MAX_PORT = 65535
MIN_SWEEP_INTERVAL = 0.05
MAX_SWEEP_INTERVAL = 3600.0
LOG_FORMATS = ("text", "json")

ENVIRONMENT_ONLY = frozenset({"config_file", "enabled_plugins", "disabled_plugins"})
"""Settings the TOML file cannot set: the file's own name, and the plugin allow/block lists
(the command line loads plugins, and their commands, before it reads any file)."""

PLUGIN_ENV_FALLBACKS: Mapping[str, Mapping[str, tuple[str, ...]]] = {
    "supabase": {"database_url": ("SUPABASE_DB_URL", "DATABASE_URL")},
    "rtdb": {
        "database_url": ("FIREBASE_DATABASE_URL",),
        "emulator_host": ("FIREBASE_DATABASE_EMULATOR_HOST",),
    },
}
"""Plugin options that the usual variables of the service behind the plugin also set, in order
of preference, when neither ``BOTMOX_<PLUGIN>_<KEY>`` nor the file sets them."""

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class _SettingError(ConfigurationError):
    """A bad value of one setting; :func:`load_settings` adds where the value came from."""

    def __init__(self, setting: str, message: str) -> None:
        super().__init__(message)
        self.setting = setting


@attrs.frozen
class Origin:
    """Where a setting's value came from.

    Attributes:
        kind: ``default``, ``file`` (the TOML file), ``env`` (an environment variable) or
            ``option`` (a command-line option such as ``serve --port``).
        name: the file's path, the variable's name, or None (default, option).
    """

    kind: Literal["default", "file", "env", "option"]
    name: str | None = None

    def describe(self, key: str) -> str:
        """Human words for error messages: ``the environment variable BOTMOX_PORT``."""
        if self.kind == "env":
            return f"the environment variable {self.name}"
        if self.kind == "file":
            return f"{key} in {self.name}"
        if self.kind == "option":
            return "the command line"
        return "the default"


DEFAULT = Origin("default")


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


def _trimmed(value: object) -> str | None:
    """Optional text with surrounding blanks removed; blank means not set."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _names(value: object) -> tuple[str, ...] | None:
    """A plugin name list: a comma-separated string (or a list); empty means not set."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigurationError(f"expected comma-separated plugin names, got {value!r}")
    names = tuple(text for text in (str(item).strip() for item in items) if text)
    return names or None


def _named(name: str, convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``convert`` whose errors name the setting ``name``."""

    def converter(value: Any) -> Any:
        try:
            return convert(value)
        except _SettingError:
            raise
        except ConfigurationError as exc:
            raise _SettingError(name, exc.message) from None

    return converter


def _integer(low: int, high: int | None = None, label: str | None = None) -> Any:
    def check(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
        what = label or attribute.name
        if isinstance(value, bool) or not isinstance(value, int):
            raise _SettingError(attribute.name, f"{what} must be an integer, got {value!r}")
        if high is None and value < low:
            raise _SettingError(attribute.name, f"{what} must be at least {low}, got {value}")
        if high is not None and not low <= value <= high:
            raise _SettingError(
                attribute.name, f"{what} must be between {low} and {high}, got {value}"
            )

    return check


def _seconds(low: float, high: float) -> Any:
    def check(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not (low <= value <= high)
        ):
            raise _SettingError(
                attribute.name, f"{attribute.name} must be between {low:g} and {high:g} seconds"
            )

    return check


def _one_of(choices: tuple[str, ...], label: str) -> Any:
    def check(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
        if value not in choices:
            raise _SettingError(
                attribute.name, f"{label} must be one of {', '.join(choices)}, got {value!r}"
            )

    return check


def _http_url(instance: object, attribute: attrs.Attribute[str | None], value: str | None) -> None:
    if value and not value.startswith(("http://", "https://")):
        raise _SettingError(
            attribute.name, f"public URL must start with http:// or https://, got {value!r}"
        )


def _setting(
    default: Any,
    *env: str,
    secret: bool = False,
    validator: Any = None,
    converter: Callable[[Any], Any] | None = None,
    name: str = "",
) -> Any:
    """A :class:`Settings` field set by the variables ``env`` (a later one wins when several
    are set) or by its name in the TOML file. ``secret`` fields are masked when shown."""
    return attrs.field(
        default=default,
        validator=validator,
        converter=_named(name, converter) if converter is not None else None,
        repr=not secret,
        metadata={"env": env, "secret": secret},
    )


@attrs.frozen
class Settings:
    """Resolved configuration of one botmox process.

    Attributes:
        data_dir: directory of the embedded backends' files (SQLite database, objects, keys).
        data_backend: repository plugin name (``sqlite``, ``supabase``, ``rtdb`` ...).
        storage: object storage plugin name (``localfs``, ``s3``, ``minio`` ...).
        host, port: where ``botmox serve`` listens.
        public_url: base URL VMs reach the server at (used in server-signed download URLs);
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
        lease_signing_key_file: the Ed25519 PEM key signing lease tokens; default
            ``<data_dir>/lease-signing.pem``, created on first start. Replicas must share it.
        agent_transport: agent transport plugin; default: the data backend's preferred
            transport when installed, else ``inprocess``.
        agent_offline_seconds: an agent not seen this long is offline.
        agent_token_ttl_days: lifetime of agent tokens.
        command_ack_timeout_seconds: a delivered command not acknowledged this long is
            delivered again.
        command_max_attempts: deliveries before a command fails (dead letter).
        command_sweep_interval_seconds: seconds between the server's command sweeps.
        vault_keep_old_ciphertexts: how many versions before a secret's current one keep
            their envelope after a rotation (older ones keep only their metadata).
        infra_wait_seconds: how long an ``/api/v1/infra`` route waits for the agent's result
            before answering 202 (0-60; a request's ``?wait=`` overrides it).
        metrics_token: bearer token a scrape of ``/metrics`` must send; unset (the default):
            no ``/metrics`` at all. A secret.
        unixsocket_dir: where the ``unixsocket`` agent transport's processes bind their
            sockets; default: the older ``[plugins.unixsocket] dir`` option, else
            ``<data_dir>/agent-bus`` (the path of a socket must stay under 108 bytes).
        enabled_plugins: allow list of entry-point plugins (``BOTMOX_PLUGINS``; environment
            only); None = every installed plugin.
        disabled_plugins: block list (``BOTMOX_DISABLE_PLUGINS``; environment only).
        config_file: the TOML file read, if any (``--config`` or ``BOTMOX_CONFIG``).
        environ: the environment the settings were read from (plugins read their options here).
        file_options: the TOML file's ``[plugins.*]`` tables.
        origins: where each setting not at its default came from (see :meth:`origin`).
    """

    data_dir: Path = _setting(Path(".botmox"), "BOTMOX_DATA_DIR", converter=Path)  # noqa: RUF009
    # DATA_BACKEND is the contract's name; BOTMOX_DATA_BACKEND wins when both are set
    data_backend: str = _setting("sqlite", "DATA_BACKEND", "BOTMOX_DATA_BACKEND")
    storage: str = _setting("localfs", "BOTMOX_STORAGE")
    host: str = _setting("127.0.0.1", "BOTMOX_HOST")
    port: int = _setting(8000, "BOTMOX_PORT", validator=_integer(1, MAX_PORT, "port"))
    public_url: str | None = _setting(None, "BOTMOX_PUBLIC_URL", validator=_http_url)
    lease_ttl_seconds: int = _setting(
        300, "BOTMOX_LEASE_TTL_SECONDS", validator=_integer(MIN_LEASE_TTL, None, "lease TTL")
    )
    download_url_ttl_seconds: int = _setting(
        300,
        "BOTMOX_DOWNLOAD_URL_TTL_SECONDS",
        validator=_integer(MIN_URL_TTL, MAX_URL_TTL, "download URL TTL"),
    )
    jwt_secret: str | None = _setting(None, "BOTMOX_JWT_SECRET", secret=True)
    jwks_url: str | None = _setting(None, "BOTMOX_JWKS_URL")
    jwt_issuer: str | None = _setting("supabase", "BOTMOX_JWT_ISSUER")
    jwt_audience: str | None = _setting("authenticated", "BOTMOX_JWT_AUDIENCE")
    max_upload_bytes: int = _setting(4 * 1024**3, "BOTMOX_MAX_UPLOAD_BYTES", validator=_integer(1))
    log_format: str = _setting(
        "text", "BOTMOX_LOG_FORMAT", validator=_one_of(LOG_FORMATS, "log format")
    )
    rate_limit_enabled: bool = _setting(
        True, "BOTMOX_RATE_LIMIT_ENABLED", converter=_flag, name="rate_limit_enabled"
    )
    rate_limit_requests: int = _setting(6000, "BOTMOX_RATE_LIMIT_REQUESTS", validator=_integer(1))
    rate_limit_address_requests: int = _setting(
        600, "BOTMOX_RATE_LIMIT_ADDRESS_REQUESTS", validator=_integer(1)
    )
    rate_limit_window_seconds: int = _setting(
        60, "BOTMOX_RATE_LIMIT_WINDOW_SECONDS", validator=_integer(1)
    )
    rate_limit_trusted_proxies: tuple[str, ...] = _setting(
        (),
        "BOTMOX_RATE_LIMIT_TRUSTED_PROXIES",  # comma-separated
        converter=_networks,
        name="rate_limit_trusted_proxies",
    )
    rate_limit_store: str | None = _setting(None, "BOTMOX_RATE_LIMIT_STORE")
    lease_signing_key_file: Path | None = _setting(  # noqa: RUF009 - an attrs field
        None,
        "BOTMOX_LEASE_SIGNING_KEY_FILE",
        converter=lambda value: None if value is None else Path(value),
        name="lease_signing_key_file",
    )
    agent_transport: str | None = _setting(None, "BOTMOX_AGENT_TRANSPORT")
    agent_offline_seconds: int = _setting(
        120, "BOTMOX_AGENT_OFFLINE_SECONDS", validator=_integer(1)
    )
    agent_token_ttl_days: int = _setting(365, "BOTMOX_AGENT_TOKEN_TTL_DAYS", validator=_integer(1))
    command_ack_timeout_seconds: int = _setting(
        30, "BOTMOX_COMMAND_ACK_TIMEOUT_SECONDS", validator=_integer(1)
    )
    command_max_attempts: int = _setting(5, "BOTMOX_COMMAND_MAX_ATTEMPTS", validator=_integer(1))
    command_sweep_interval_seconds: float = _setting(
        1.0,
        "BOTMOX_COMMAND_SWEEP_INTERVAL_SECONDS",
        validator=_seconds(MIN_SWEEP_INTERVAL, MAX_SWEEP_INTERVAL),
    )
    vault_keep_old_ciphertexts: int = _setting(
        2, "BOTMOX_VAULT_KEEP_OLD_CIPHERTEXTS", validator=_integer(0)
    )
    infra_wait_seconds: int = _setting(10, "BOTMOX_INFRA_WAIT_SECONDS", validator=_integer(0, 60))
    metrics_token: str | None = _setting(
        None, "BOTMOX_METRICS_TOKEN", secret=True, converter=_trimmed, name="metrics_token"
    )
    unixsocket_dir: Path | None = _setting(  # noqa: RUF009 - an attrs field
        None,
        "BOTMOX_UNIXSOCKET_DIR",
        converter=lambda value: None if (text := _trimmed(value)) is None else Path(text),
        name="unixsocket_dir",
    )
    enabled_plugins: tuple[str, ...] | None = _setting(
        None, "BOTMOX_PLUGINS", converter=_names, name="enabled_plugins"
    )
    disabled_plugins: tuple[str, ...] | None = _setting(
        None, "BOTMOX_DISABLE_PLUGINS", converter=_names, name="disabled_plugins"
    )
    config_file: Path | None = _setting(  # noqa: RUF009 - an attrs field
        None,
        "BOTMOX_CONFIG",
        converter=lambda value: None if value is None else Path(value),
        name="config_file",
    )
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False, metadata={"internal": True})
    file_options: Mapping[str, Mapping[str, Any]] = attrs.field(
        factory=dict, repr=False, metadata={"internal": True}
    )
    origins: Mapping[str, Origin] = attrs.field(
        factory=dict, repr=False, eq=False, metadata={"internal": True}
    )

    @property
    def base_url(self) -> str:
        """The public base URL, without a trailing slash."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    @property
    def lease_signing_key_path(self) -> Path:
        """The lease signing key file in use: the setting, else ``<data_dir>/lease-signing.pem``."""
        return self.lease_signing_key_file or self.data_dir / "lease-signing.pem"

    def origin(self, name: str) -> Origin:
        """Where the setting ``name`` came from (the default when :func:`load_settings` did not
        record a source)."""
        return self.origins.get(name, DEFAULT)

    def plugin_options(self, plugin: str) -> dict[str, str]:
        """Options of one plugin: the ``[plugins.<plugin>]`` TOML table, overridden by
        ``BOTMOX_<PLUGIN>_<KEY>`` environment variables (keys lower-cased; a variable that is
        a setting of its own, such as ``BOTMOX_UNIXSOCKET_DIR``, is not an option); an option
        neither sets (or sets empty) falls back to the variables in
        :data:`PLUGIN_ENV_FALLBACKS`."""
        return {key: value for key, (value, _) in self.plugin_option_origins(plugin).items()}

    def plugin_option_origins(self, plugin: str) -> dict[str, tuple[str, Origin]]:
        """Like :meth:`plugin_options`, with where each value came from."""
        options: dict[str, tuple[str, Origin]] = {}
        path = str(self.config_file) if self.config_file is not None else None
        for key, value in self.file_options.get(plugin, {}).items():
            options[str(key)] = (str(value), Origin("file", path))
        prefix = plugin_env_prefix(plugin)
        settings = {variable for field in setting_fields() for variable in field.metadata["env"]}
        for name, value in self.environ.items():
            if name.startswith(prefix) and len(name) > len(prefix) and name not in settings:
                options[name[len(prefix) :].lower()] = (value, Origin("env", name))
        for key, names in PLUGIN_ENV_FALLBACKS.get(plugin, {}).items():
            if options.get(key, ("", DEFAULT))[0]:
                continue
            for name in names:
                if self.environ.get(name):
                    options[key] = (self.environ[name], Origin("env", name))
                    break
        return options


def plugin_env_prefix(plugin: str) -> str:
    """``BOTMOX_<PLUGIN>_``: the prefix of a plugin's option variables."""
    return f"BOTMOX_{plugin.upper().replace('-', '_')}_"


def setting_fields() -> tuple[attrs.Attribute[Any], ...]:
    """The fields of :class:`Settings` an operator sets (not the bookkeeping ones)."""
    return tuple(f for f in attrs.fields(Settings) if not f.metadata.get("internal"))


_SCALARS: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    Path: "a path string",
}


def _kinds(name: str) -> list[Any]:
    """The types a field accepts, ``None`` left out."""
    try:
        hint = typing.get_type_hints(Settings)[name]
    except (NameError, KeyError):  # a field typed with a name not importable here
        return []
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    return [kind for kind in args if kind is not type(None)]


def _file_value(key: str, value: Any, path: Path) -> Any:
    """A TOML value checked against the type of its :class:`Settings` field, so a mistyped value
    (``port = "8080x"``) is refused when the file is read, not later in the server."""
    kinds = _kinds(key)
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


def _env_value(field: attrs.Attribute[Any], variable: str, raw: str) -> Any:
    """An environment string converted to the field's type (others go to its converter)."""
    kinds = _kinds(field.name)
    if int in kinds:
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(f"{variable}={raw!r} is not an integer") from None
    if float in kinds:
        try:
            return float(raw)
        except ValueError:
            raise ConfigurationError(f"{variable}={raw!r} is not a number") from None
    return raw


def _read_file(path: Path) -> tuple[dict[str, Any], dict[str, Mapping[str, Any]]]:
    """The settings and the ``[plugins.*]`` tables of the TOML file at ``path``."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from exc
    section = document.get("botmox", document)
    plugins = section.get("plugins", {})
    if not isinstance(plugins, dict):
        raise ConfigurationError(f"[plugins] in {path} must be a table")
    file_options: dict[str, Mapping[str, Any]] = {
        str(k): v for k, v in plugins.items() if isinstance(v, dict)
    }
    fields = {f.name: f for f in setting_fields()}
    values: dict[str, Any] = {}
    for key, value in section.items():
        if key == "plugins":
            continue
        field = fields.get(key)
        if field is None:
            raise ConfigurationError(f"unknown setting {key!r} in {path}")
        if key in ENVIRONMENT_ONLY:
            raise ConfigurationError(
                f"{key} in {path} cannot be set in the config file: set "
                f"{' or '.join(field.metadata['env'])} in the environment instead"
            )
        values[key] = _file_value(key, value, path)
    return values, file_options


def load_settings(
    environ: Mapping[str, str] | None = None,
    config_file: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Settings:
    """Read settings from ``environ`` (default: ``os.environ``), the TOML file named by
    ``config_file`` or ``BOTMOX_CONFIG``, and keyword ``overrides`` (command-line options,
    highest precedence; ``None`` values are ignored). Raises :class:`ConfigurationError`
    naming the setting and its source on a bad value."""
    env = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {}
    file_options: dict[str, Mapping[str, Any]] = {}
    path: Path | None = None
    if config_file:
        path = Path(config_file)
        origins["config_file"] = Origin("option")
    elif env.get("BOTMOX_CONFIG"):
        path = Path(env["BOTMOX_CONFIG"])
        origins["config_file"] = Origin("env", "BOTMOX_CONFIG")
    if path is not None:
        values, file_options = _read_file(path)
        origins.update({key: Origin("file", str(path)) for key in values})
    for field in setting_fields():
        if field.name == "config_file":
            continue
        for variable in field.metadata["env"]:
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            values[field.name] = _env_value(field, variable, raw)
            origins[field.name] = Origin("env", variable)
    for key, value in overrides.items():
        if value is not None:
            values[key] = value
            origins[key] = Origin("option")
    try:
        return Settings(
            environ=env, file_options=file_options, config_file=path, origins=origins, **values
        )
    except _SettingError as exc:
        origin = origins.get(exc.setting, DEFAULT)
        raise ConfigurationError(
            f"{exc.message} (from {origin.describe(exc.setting)})",
            details={"setting": exc.setting, "source": origin.kind, "origin": origin.name},
        ) from None
    except TypeError as exc:
        raise ConfigurationError(f"invalid settings: {exc}") from exc
