"""A migration's two ends: data backends built from the settings the server would use.

Each end names a backend (``sqlite``, ``supabase``, ``rtdb`` ...) and takes its options from the
environment (``BOTMOX_*``, ``DATA_BACKEND``'s fallbacks), a TOML config file, and ``KEY=VALUE``
overrides, exactly as ``botmox serve`` reads them (:func:`~botmox_core.config.load_settings`).
Two ends of different backends can share one environment (each plugin reads its own
``BOTMOX_<PLUGIN>_*``); two deployments of the same backend (two PostgreSQL databases, two
SQLite files) are told apart with ``--to-config``/``--to-env`` (or ``--from-…``).

An end's *fingerprint* (a hash of the backend name, its options and data directory; never the
values themselves) identifies a source in the target's checkpoint, so a resumed run continues
only what the same source started.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from botmox_core.config import Settings, load_settings
from botmox_core.errors import ConfigurationError
from botmox_core.plugin import load_registry
from botmox_core.ports import DataBackend

__all__ = ["Endpoint", "open_endpoint", "parse_env_pairs"]


def parse_env_pairs(pairs: Sequence[str]) -> dict[str, str]:
    """``KEY=VALUE`` strings as a mapping; :class:`ConfigurationError` naming a bad one."""
    parsed: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or key != key.strip() or any(c in key for c in " \t\n"):
            raise ConfigurationError(f"expected KEY=VALUE, got {pair.split('=', 1)[0][:60]!r}")
        parsed[key] = value
    return parsed


@attrs.define
class Endpoint:
    """An opened data backend and how it was configured."""

    backend: DataBackend
    settings: Settings
    fingerprint: str

    @property
    def label(self) -> str:
        return f"{self.backend.name}:{self.fingerprint}"

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fingerprint(name: str, settings: Settings) -> str:
    described = {
        "backend": name,
        "options": sorted(settings.plugin_options(name).items()),
        "data_dir": str(Path(settings.data_dir).absolute()) if name == "sqlite" else None,
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def open_endpoint(
    name: str,
    *,
    config_file: str | None = None,
    env: Mapping[str, str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Endpoint:
    """Build the ``name`` data backend from the server's settings (``environ``, default
    ``os.environ``) with ``env`` overriding variables and ``config_file`` as the TOML file."""
    merged = dict(os.environ if environ is None else environ)
    merged.update(env or {})
    settings = load_settings(
        environ=merged,
        config_file=config_file,
        data_backend=name,
        data_dir=Path(data_dir) if data_dir is not None else None,
    )
    registry = load_registry(settings.environ)
    backend = registry.data_backends.get(name)(settings)
    return Endpoint(backend, settings, _fingerprint(name, settings))
