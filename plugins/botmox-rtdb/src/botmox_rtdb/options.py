"""The plugin's options and credentials, read from botmox settings.

===================  ======================================  ==================================
option               environment variable                    meaning
===================  ======================================  ==================================
``database_url``     ``BOTMOX_RTDB_DATABASE_URL``            ``https://<ns>.firebaseio.com`` (or
                     (or ``FIREBASE_DATABASE_URL``)          ``...firebasedatabase.app``); an
                                                             ``http://host:port/?ns=<ns>`` URL
                                                             talks to an emulator
``credentials``      ``BOTMOX_RTDB_CREDENTIALS``             service-account JSON key file; when
                                                             unset, application-default
                                                             credentials
``emulator_host``    ``BOTMOX_RTDB_EMULATOR_HOST`` (or       ``host:port`` of an RTDB emulator;
                     ``FIREBASE_DATABASE_EMULATOR_HOST``)    no credentials needed then
``http_timeout``     ``BOTMOX_RTDB_HTTP_TIMEOUT``            seconds per request (default 30)
``legacy_tenant``    ``BOTMOX_RTDB_LEGACY_TENANT``           the tenant whose domain data uses
                                                             the seed's global paths (``bots``,
                                                             ``settings``...); other tenants
                                                             use ``tenants/{tenant}/...``
===================  ======================================  ==================================
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
from firebase_admin import credentials

from botmox_core.config import Settings
from botmox_core.errors import BadRequestError, ConfigurationError
from botmox_rtdb.layout import checked_key

__all__ = ["RtdbOptions", "load_credential", "read_options"]

_SERVICE_ACCOUNT_FIELDS = ("project_id", "private_key", "client_email")


@attrs.frozen
class RtdbOptions:
    """Resolved options of one RTDB backend.

    Attributes:
        database_url: the URL given to firebase-admin (an ``http://...?ns=`` URL when an
            emulator is used).
        credentials_file: service-account key file, or None for application-default
            credentials.
        emulator: whether the database is an emulator (no real credentials used).
        http_timeout: seconds per HTTP request.
        legacy_tenant: the tenant whose domain data lives at the seed's global paths, or None.
    """

    database_url: str
    credentials_file: Path | None = None
    emulator: bool = False
    http_timeout: float = 30.0
    legacy_tenant: str | None = None


def read_options(settings: Settings) -> RtdbOptions:
    """Options from ``settings.plugin_options("rtdb")``, which falls back to the Firebase
    environment variables (``botmox_core.config.PLUGIN_ENV_FALLBACKS``).

    Raises :class:`ConfigurationError` when the database URL is missing or malformed.
    """
    options = settings.plugin_options("rtdb")
    url = options.get("database_url") or ""
    if not url:
        raise ConfigurationError(
            "rtdb: no database URL; set BOTMOX_RTDB_DATABASE_URL (or FIREBASE_DATABASE_URL) "
            "to https://<project>.firebaseio.com"
        )
    parts = urlsplit(url)
    emulator_host = options.get("emulator_host")
    if parts.scheme == "http":
        namespace = parse_qs(parts.query).get("ns", [""])[0]
        if not parts.netloc or not namespace:
            raise ConfigurationError(
                "rtdb: an http database URL must name an emulator and namespace: "
                "http://host:port/?ns=<namespace>"
            )
        database_url, emulator = url, True
    elif parts.scheme == "https" and parts.netloc:
        if emulator_host:
            if "//" in emulator_host or ":" not in emulator_host:
                raise ConfigurationError("rtdb: the emulator host must be host:port")
            namespace = parts.netloc.split(".")[0]
            database_url, emulator = f"http://{emulator_host}/?ns={namespace}", True
        else:
            database_url, emulator = f"https://{parts.netloc}", False
    else:
        raise ConfigurationError(
            "rtdb: the database URL must look like https://<project>.firebaseio.com"
        )
    raw_timeout = options.get("http_timeout", "30")
    try:
        timeout = float(raw_timeout)
    except ValueError:
        raise ConfigurationError("rtdb: http_timeout must be a number of seconds") from None
    if timeout <= 0:
        raise ConfigurationError("rtdb: http_timeout must be positive")
    legacy_tenant = options.get("legacy_tenant") or None
    if legacy_tenant is not None:
        try:
            checked_key(legacy_tenant, "legacy_tenant")
        except BadRequestError as exc:
            raise ConfigurationError(f"rtdb: {exc.message}") from None
    credentials = options.get("credentials")
    return RtdbOptions(
        database_url=database_url,
        credentials_file=Path(credentials) if credentials else None,
        emulator=emulator,
        http_timeout=timeout,
        legacy_tenant=legacy_tenant,
    )


def load_credential(options: RtdbOptions) -> Any:
    """A firebase-admin credential for ``options``.

    A service-account file must exist, be JSON, have ``"type": "service_account"`` and the
    key fields; errors name the file and the problem, never its contents. Without a file,
    application-default credentials are used (not looked up for an emulator, which needs none).
    """
    if options.credentials_file is None:
        if options.emulator:
            return _EmulatorCredential()
        return credentials.ApplicationDefault()
    path = options.credentials_file
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(f"rtdb: credentials file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigurationError(
            f"rtdb: cannot read credentials file {path} ({type(exc).__name__})"
        ) from None
    try:
        document = json.loads(text)
    except ValueError:
        raise ConfigurationError(f"rtdb: credentials file {path} is not valid JSON") from None
    if not isinstance(document, dict) or document.get("type") != "service_account":
        raise ConfigurationError(
            f"rtdb: credentials file {path} is not a service-account key "
            '("type" must be "service_account")'
        )
    missing = [field for field in _SERVICE_ACCOUNT_FIELDS if not document.get(field)]
    if missing:
        raise ConfigurationError(
            f"rtdb: credentials file {path} lacks {', '.join(missing)}"
        )
    try:
        return credentials.Certificate(document)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"rtdb: credentials file {path} holds a malformed service-account key"
        ) from None


class _EmulatorCredential(credentials.Base):  # type: ignore[misc]
    """Stands in for a credential when talking to an emulator: firebase-admin sends the
    emulator's admin token and never asks this object for a Google credential."""

    def get_credential(self) -> Any:
        raise ConfigurationError("rtdb: no credentials configured for a real database")
