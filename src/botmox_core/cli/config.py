"""``botmox config show``: every setting the process would run with, where each value came from,
secrets masked.

Reads the configuration exactly as ``botmox serve`` and ``botmox admin`` do (environment over
the TOML file over defaults) but builds no backend and creates nothing: no data directory, no
key. A bad value stops it with the same ``CONFIGURATION_ERROR`` the server would give.

Masked: secret settings (``jwt_secret``), plugin options whose name says secret, password,
token or key (``secret_access_key``, ``service_role_key``, ``url_key`` ...), the password in any
URL (``postgresql://user:****@host/db``), password-like query parameters and
``password=...`` pairs, and secret-named fields of JSON object values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import click

from botmox_core.backends.signed_urls import URL_KEY_FILE
from botmox_core.cli._group import BotmoxGroup
from botmox_core.cli._output import emit
from botmox_core.config import (
    ENVIRONMENT_ONLY,
    PLUGIN_ENV_FALLBACKS,
    Origin,
    Settings,
    load_settings,
    plugin_env_prefix,
    setting_fields,
)

__all__ = ["config_group", "describe", "mask_value"]

MASK = "****"
EMBEDDED_DATA_BACKEND = "sqlite"

_SECRET_WORDS = ("secret", "password", "passwd", "token", "private", "credential_json")
_CLIENT_VARIABLES = frozenset(
    {"BOTMOX_TOKEN", "BOTMOX_SERVER", "BOTMOX_VM_UUID", "BOTMOX_AGENT_STATE", "BOTMOX_CONFIG"}
)
"""``BOTMOX_*`` variables read by the runner and agent commands, not by the server."""
_TOOLING_PREFIXES = ("BOTMOX_TEST_", "BOTMOX_BENCH_", "BOTMOX_WEED_")
_PASSWORD_PAIR = re.compile(r"(?i)\b(password|passwd|pwd)(\s*=\s*)('[^']*'|\S+)")

_UNSET_MEANING: Mapping[str, str] = {
    "public_url": "http://<host>:<port>",
    "rate_limit_store": "the data backend's preference, else memory",
    "agent_transport": "the data backend's preference, else inprocess",
    "lease_signing_key_file": "<data_dir>/lease-signing.pem",
    "enabled_plugins": "every installed plugin",
    "disabled_plugins": "none",
    "config_file": "none",
    "jwt_secret": "none (HS256 JWTs refused)",
    "jwks_url": "none",
    "metrics_token": "none (no /metrics)",
    "unixsocket_dir": "[plugins.unixsocket] dir, else <data_dir>/agent-bus",
}


def is_secret_name(name: str) -> bool:
    """Whether an option named ``name`` holds a secret (an id or a file path does not)."""
    name = name.lower()
    if name.endswith(("_id", "_file", "_path")):
        return False
    return any(word in name for word in _SECRET_WORDS) or name == "key" or name.endswith("_key")


def _secret_parameter(name: str) -> bool:
    return is_secret_name(name) or name.lower() in ("auth", "sig", "signature", "apikey")


def _mask_url(text: str) -> str:
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return MASK if "@" in text else text
    if not parts.scheme or not (parts.netloc or parts.query):
        return text
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_secret_parameter(key) for key, _ in pairs):
            masked = [(key, MASK if _secret_parameter(key) else value) for key, value in pairs]
            query = urlencode(masked, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: MASK if is_secret_name(str(key)) and item not in (None, "") else _mask_json(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_mask_json(item) for item in value]
    if isinstance(value, str):
        return _mask_text(value)
    return value


def _mask_text(text: str) -> str:
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except ValueError:
            document = None
        if isinstance(document, dict):
            return json.dumps(_mask_json(document), sort_keys=True)
    if "://" in text:
        text = _mask_url(text)
    return _PASSWORD_PAIR.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def mask_value(value: Any, *, secret: bool = False) -> Any:
    """``value`` as it may be shown: :data:`MASK` for a ``secret``, else with any embedded
    password masked (URLs, ``password=`` pairs, JSON objects)."""
    if value is None or value == "":
        return value
    if secret:
        return MASK
    if isinstance(value, str):
        return _mask_text(value)
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | list):
        return [mask_value(item) for item in value]
    return value


def _source(origin: Origin) -> dict[str, Any]:
    return {"source": origin.kind, "origin": origin.name}


def _setting_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for field in setting_fields():
        value = getattr(settings, field.name)
        secret = bool(field.metadata.get("secret"))
        row: dict[str, Any] = {
            "value": mask_value(value, secret=secret),
            **_source(settings.origin(field.name)),
            "secret": secret,
            "env": list(field.metadata["env"]),
            "toml": field.name not in ENVIRONMENT_ONLY,
        }
        if value is None and field.name in _UNSET_MEANING:
            row["unset"] = _UNSET_MEANING[field.name]
            if field.name == "public_url":
                row["unset"] = settings.base_url
            elif field.name == "lease_signing_key_file":
                row["unset"] = str(settings.lease_signing_key_path.absolute())
        rows[field.name] = row
    return rows


def _plugin_rows(settings: Settings, installed: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Options of the selected plugins and of every plugin something sets options for."""
    roles: dict[str, list[str]] = {}
    roles.setdefault(settings.data_backend, []).append("data backend")
    roles.setdefault(settings.storage, []).append("storage")
    if settings.agent_transport:
        roles.setdefault(settings.agent_transport, []).append("agent transport")
    names = {*roles, *settings.file_options, *PLUGIN_ENV_FALLBACKS, *installed}
    plugins: dict[str, dict[str, Any]] = {}
    for name in sorted(names):
        options = settings.plugin_option_origins(name)
        if not options and name not in roles:
            continue
        plugins[name] = {
            "roles": roles.get(name, []),
            "installed": name in installed,
            "options": {
                key: {"value": mask_value(value, secret=is_secret_name(key)), **_source(origin)}
                for key, (value, origin) in sorted(options.items())
            },
        }
    return plugins


def _key_rows(settings: Settings) -> dict[str, dict[str, Any]]:
    lease_path = settings.lease_signing_key_path
    lease_origin = settings.origin("lease_signing_key_file")
    keys: dict[str, dict[str, Any]] = {
        "lease_signing_key": {
            "file": str(lease_path.absolute()),
            "exists": lease_path.is_file(),
            **_source(lease_origin),
        }
    }
    url_key = settings.plugin_option_origins("localfs").get("url_key")
    if url_key is not None and url_key[0].strip():
        keys["download_url_key"] = {"value": MASK, "file": None, **_source(url_key[1])}
    else:
        path = (settings.data_dir / URL_KEY_FILE).absolute()
        keys["download_url_key"] = {
            "value": None,
            "file": str(path),
            "exists": path.is_file(),
            **_source(Origin("default")),
        }
    return keys


def _warnings(settings: Settings, installed: set[str], plugins: Mapping[str, Any]) -> list[str]:
    warnings: list[str] = []
    shared = settings.data_backend != EMBEDDED_DATA_BACKEND
    if shared and settings.origin("lease_signing_key_file").kind == "default":
        path = settings.lease_signing_key_path.absolute()
        warnings.append(
            f"the lease signing key is {path} in this machine's data "
            f"directory, but the {settings.data_backend} data backend can be shared by "
            "replicas: give every replica the same key file (BOTMOX_LEASE_SIGNING_KEY_FILE)"
        )
    for name in sorted(settings.file_options):
        if installed and name not in installed:
            warnings.append(
                f"[plugins.{name}] in {settings.config_file} is for a plugin that is not installed"
            )
    known = {variable for field in setting_fields() for variable in field.metadata["env"]}
    prefixes = tuple(plugin_env_prefix(name) for name in {*installed, *plugins})
    for variable in sorted(settings.environ):
        if (
            variable.startswith("BOTMOX_")
            and variable not in known
            and variable not in _CLIENT_VARIABLES
            and not variable.startswith((*prefixes, *_TOOLING_PREFIXES))
        ):
            warnings.append(f"{variable} is set but is not a botmox setting (misspelt?)")
    return warnings


def describe(settings: Settings, installed: Iterable[str] = ()) -> dict[str, Any]:
    """Everything ``config show`` prints, secrets masked: settings, plugin options, keys,
    warnings. ``installed`` names the installed plugins (for the option sections and
    warnings)."""
    installed_set = set(installed)
    plugins = _plugin_rows(settings, installed_set)
    return {
        "config_file": str(settings.config_file) if settings.config_file else None,
        "settings": _setting_rows(settings),
        "plugins": plugins,
        "keys": _key_rows(settings),
        "warnings": _warnings(settings, installed_set, plugins),
    }


def _source_text(row: Mapping[str, Any]) -> str:
    kind, name = row["source"], row.get("origin")
    if kind == "env":
        return f"env {name}"
    if kind == "file":
        return f"file {name}"
    if kind == "option":
        return "command line"
    return "default"


def _value_text(row: Mapping[str, Any]) -> str:
    value = row.get("value")
    if value is None:
        meaning = row.get("unset")
        return f"(unset: {meaning})" if meaning else "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    return str(value)


def _table(rows: list[tuple[str, str, str]], indent: str = "") -> list[str]:
    width = max((len(name) for name, _, _ in rows), default=0)
    value_width = min(max((len(value) for _, value, _ in rows), default=0), 60)
    return [
        f"{indent}{name.ljust(width)}  {value.ljust(value_width)}  {source}".rstrip()
        for name, value, source in rows
    ]


def render_text(report: Mapping[str, Any]) -> str:
    """The report for people: one line per setting, ``name  value  source``."""
    lines = [f"config file: {report['config_file'] or '(none)'}", "", "settings:"]
    lines += _table(
        [(name, _value_text(row), _source_text(row)) for name, row in report["settings"].items()],
        "  ",
    )
    for name, plugin in report["plugins"].items():
        roles = ", ".join(plugin["roles"]) or "options set"
        missing = "" if plugin["installed"] else ", not installed"
        lines += ["", f"plugin {name} ({roles}{missing}):"]
        options = plugin["options"]
        if not options:
            lines.append("  (no options set; the plugin's defaults apply)")
        lines += _table(
            [(key, _value_text(row), _source_text(row)) for key, row in options.items()], "  "
        )
    lines += ["", "keys:"]
    lease = report["keys"]["lease_signing_key"]
    state = "exists" if lease["exists"] else "created on first start"
    lease_source = _source_text(lease)
    url = report["keys"]["download_url_key"]
    if url["file"] is None:
        url_text, url_source = url["value"], _source_text(url)
    else:
        url_state = "exists" if url["exists"] else "created on first use"
        url_text, url_source = f"{url['file']} ({url_state})", "default"
    lines += _table(
        [
            ("lease signing key", f"{lease['file']} ({state})", lease_source),
            ("download URL key (server-signed URLs)", url_text, url_source),
        ],
        "  ",
    )
    if report["warnings"]:
        lines += ["", "warnings:"]
        lines += [f"  - {warning}" for warning in report["warnings"]]
    return "\n".join(lines)


@click.group("config", cls=BotmoxGroup)
def config_group() -> None:
    """Inspect the configuration (environment, TOML file, defaults)."""


@config_group.command("show")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML configuration file (also BOTMOX_CONFIG).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory of the embedded backends' files [default: ./.botmox].",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
def show_command(config_file: str | None, data_dir: Path | None, as_json: bool) -> None:
    """Every setting with its value and where it came from (secrets masked).

    Creates nothing; a bad value stops with CONFIGURATION_ERROR, as ``serve`` would.
    """
    from botmox_core.plugin import load_registry

    settings = load_settings(config_file=config_file, data_dir=data_dir)
    registry = load_registry(settings.environ)
    installed = {
        *registry.data_backends.factories,
        *registry.storages.factories,
        *registry.agent_transports.factories,
    }
    report = describe(settings, installed)
    emit(report, as_json, render_text(report))
