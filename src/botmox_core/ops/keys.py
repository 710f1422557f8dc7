"""Key rotation: the lease-signing and URL-signing key rings of an installation.

``rotate`` adds a new active key and keeps the previous one verifying for as long as anything it
signed can still be presented: the lease TTL (a lease token never outlives its lease; a heartbeat
hands out a token signed by the new key) or the download URL TTL, plus a minute of clock skew.
``retire`` erases keys whose time is up (or, with ``force``, one that is still verifying).
Servers pick the change up by themselves (:class:`~botmox_core.security.key_ring.KeyRing`
re-reads the file), so no replica restarts.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from botmox_core.backends.signed_urls import url_key_ring_path
from botmox_core.config import Settings
from botmox_core.errors import BadRequestError
from botmox_core.security.key_ring import (
    LEASE_KEYS,
    URL_KEYS,
    KeyRingFile,
    KeyState,
    RingKey,
    parse_ring,
)

__all__ = ["CLOCK_SKEW", "KeyRingKind", "default_verify_for", "list_keys", "retire", "rotate"]

KeyRingKind = Literal["lease", "url"]

CLOCK_SKEW = timedelta(seconds=60)
"""Added to every verification window, for replicas whose clocks differ a little."""


def ring_file(settings: Settings, kind: KeyRingKind) -> KeyRingFile[Any]:
    """The ring file of ``kind``. ``BadRequestError`` for the URL ring when the ``url_key``
    option pins one fixed key (nothing to rotate: move it to a ring file first)."""
    if kind == "lease":
        return KeyRingFile(settings.lease_signing_key_path, LEASE_KEYS)
    options = settings.plugin_options("localfs")
    if options.get("url_key", "").strip():
        raise BadRequestError(
            "the download URL key is pinned by the url_key option (BOTMOX_LOCALFS_URL_KEY), "
            "which holds one key and cannot rotate: write its value to a file (mode 0600) "
            "every replica shares, set BOTMOX_LOCALFS_URL_KEY_FILE (url_key_file in "
            "[plugins.localfs]) to it and unset BOTMOX_LOCALFS_URL_KEY, then rotate"
        )
    return KeyRingFile(url_key_ring_path(settings.data_dir, options.get("url_key_file")), URL_KEYS)


def default_verify_for(settings: Settings, kind: KeyRingKind) -> timedelta:
    """How long a demoted key keeps verifying: the longest life of what it signed, plus
    :data:`CLOCK_SKEW`."""
    seconds = settings.lease_ttl_seconds if kind == "lease" else settings.download_url_ttl_seconds
    return timedelta(seconds=seconds) + CLOCK_SKEW


def _describe(keys: list[RingKey], now: datetime) -> list[dict[str, Any]]:
    return [key.describe(now) for key in keys]


def list_keys(settings: Settings, now: datetime | None = None) -> dict[str, Any]:
    """Both rings, without secrets: ``{"lease": {...}, "url": {...}}``, each with its ``file``
    (``None`` for a pinned URL key) and ``keys`` (empty when the file does not exist yet)."""
    moment = now or datetime.now(UTC)
    report: dict[str, Any] = {}
    for kind in ("lease", "url"):
        try:
            source = ring_file(settings, kind)
        except BadRequestError:
            pinned = settings.plugin_options("localfs")["url_key"]
            keys = parse_ring(pinned, URL_KEYS, "the url_key option")
            report[kind] = {"file": None, "pinned": True, "keys": _describe(keys, moment)}
            continue
        exists = source.path.exists()
        report[kind] = {
            "file": str(source.path.absolute()),
            "pinned": False,
            "keys": _describe(source.read(), moment) if exists else [],
        }
    return report


def rotate(
    settings: Settings,
    kind: KeyRingKind,
    *,
    verify_for: timedelta | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Add a new active key to the ``kind`` ring; the active one verifies for ``verify_for``
    (default :func:`default_verify_for`). Returns ``{file, kid, demoted, keys}``."""
    moment = now or datetime.now(UTC)
    source = ring_file(settings, kind)
    window = default_verify_for(settings, kind) if verify_for is None else verify_for
    previous = source.read() if source.path.exists() else []
    was_active = {key.kid for key in previous if key.state is KeyState.ACTIVE}
    new, keys = source.rotate(verify_for=window, now=moment)
    return {
        "file": str(source.path.absolute()),
        "kid": new.kid,
        "demoted": [key.describe(moment) for key in keys if key.kid in was_active],
        "keys": _describe(keys, moment),
    }


def retire(
    settings: Settings,
    kind: KeyRingKind,
    kid: str | None = None,
    *,
    force: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Retire ``kid`` (``force`` when it still verifies), or every key whose verification
    window is over. Returns ``{file, retired, keys}``."""
    moment = now or datetime.now(UTC)
    source = ring_file(settings, kind)
    if not source.path.exists():
        raise BadRequestError(f"no {kind} key ring at {source.path.absolute()}")
    retired, keys = source.retire(kid, force=force, now=moment)
    return {
        "file": str(source.path.absolute()),
        "retired": [key.kid for key in retired],
        "keys": _describe(keys, moment),
    }
