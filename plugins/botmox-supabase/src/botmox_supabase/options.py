"""Options of the ``supabase`` data backend, read from :meth:`Settings.plugin_options`.

=====================  ===========================================================  ==========
option                 environment variable / ``[plugins.supabase]`` key             default
=====================  ===========================================================  ==========
database_url           ``BOTMOX_SUPABASE_DATABASE_URL``, else ``SUPABASE_DB_URL``,   required
                       else ``DATABASE_URL``
pool_min_size          ``BOTMOX_SUPABASE_POOL_MIN_SIZE``                              1
pool_max_size          ``BOTMOX_SUPABASE_POOL_MAX_SIZE``                              10
pool_timeout           ``BOTMOX_SUPABASE_POOL_TIMEOUT`` (seconds to get a connection)  5
connect_timeout        ``BOTMOX_SUPABASE_CONNECT_TIMEOUT`` (seconds)                  5
role                   ``BOTMOX_SUPABASE_ROLE``: the role the server acts as          none
pooler_mode            ``BOTMOX_SUPABASE_POOLER_MODE``: ``transaction`` (Supavisor   transaction
                       transaction mode or any pooler that hands a session to another
                       client between transactions) or ``session`` (a direct
                       connection or a session-mode pooler: server-side prepared
                       statements, ``role`` set once per connection)
listen_database_url    ``BOTMOX_SUPABASE_LISTEN_DATABASE_URL``: session-mode URL of   database_url
                       the ``postgres`` agent transport's ``LISTEN`` connection
notify_channel         ``BOTMOX_SUPABASE_NOTIFY_CHANNEL`` (``postgres`` transport)    botmox_agents
url                    ``BOTMOX_SUPABASE_URL`` (project URL, informational)           none
anon_key               ``BOTMOX_SUPABASE_ANON_KEY``                                   none
service_role_key       ``BOTMOX_SUPABASE_SERVICE_ROLE_KEY``                           none
=====================  ===========================================================  ==========

Keys and the password in the URL never appear in reprs, logs or error messages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import attrs

from botmox_core.errors import ConfigurationError

if TYPE_CHECKING:
    from botmox_core.config import Settings

__all__ = ["SupabaseOptions", "redact_database_url"]

PLUGIN_NAME = "supabase"
#: ``pooler_mode`` values: what sits between the server and PostgreSQL.
POOLER_MODES = ("transaction", "session")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def redact_database_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (for messages and logs)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if parts.password is None:
        return url if "@" not in parts.netloc else urlunsplit(parts)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    netloc = f"{parts.username or ''}:***@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _validate_url(url: str) -> str:
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ConfigurationError(
            "supabase database_url is malformed (expected postgresql://user:password@host:port/db)"
        ) from None
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigurationError(
            "supabase database_url must be a postgresql://user:password@host:port/db URL"
        )
    if not parts.hostname and "host=" not in parts.query:
        raise ConfigurationError(f"supabase database_url names no host: {redact_database_url(url)}")
    if port is not None and not 0 < port < 65536:
        raise ConfigurationError(
            f"supabase database_url port is invalid: {redact_database_url(url)}"
        )
    return url


def _integer(options: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"supabase {key}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigurationError(f"supabase {key} must be at least {minimum}, got {raw!r}")
    return value


def _seconds(options: Mapping[str, str], key: str, default: float) -> float:
    raw = options.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"supabase {key}={raw!r} is not a number of seconds") from None
    if not value > 0:
        raise ConfigurationError(f"supabase {key} must be positive, got {raw!r}")
    return value


@attrs.frozen
class SupabaseOptions:
    """Validated options of the Supabase backend.

    Attributes:
        database_url: libpq URL of the Supabase Postgres (direct, session or transaction pooler).
        pool_min_size, pool_max_size: connection pool bounds.
        pool_timeout: seconds to wait for a pooled connection before answering 503.
        connect_timeout: seconds libpq waits for a new connection.
        role: role the server acts as (for a login role that is a member of ``service_role``
            but lacks BYPASSRLS): ``SET LOCAL ROLE`` at the start of every transaction in
            ``transaction`` pooler mode, ``SET ROLE`` once per connection in ``session`` mode.
        pooler_mode: ``transaction`` (the default, safe behind any pooler): no session state is
            relied on between transactions -- no server-side prepared statements
            (``prepare_threshold=None``), ``role`` per transaction. ``session``: the connection
            is the server's for its whole life (a direct connection, Supavisor session mode):
            statements run more than a few times on a connection are prepared on the server
            (psycopg's ``prepare_threshold``), and ``role`` is set once when it opens. Choosing
            ``session`` behind a transaction-mode pooler breaks statements ("prepared statement
            does not exist"); choosing ``transaction`` on a direct connection only costs CPU.
        listen_database_url: URL the ``postgres`` agent transport listens and notifies on; must
            keep its session (direct connection or Supavisor session mode). Default:
            ``database_url``.
        notify_channel: the transport's notification channel (``botmox_agents``).
        url: the Supabase project URL (reported, not used for data access).
        anon_key, service_role_key: Supabase API keys (kept for plugins that call Supabase APIs).
    """

    database_url: str = attrs.field(repr=redact_database_url)
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_timeout: float = 5.0
    connect_timeout: float = 5.0
    role: str | None = None
    pooler_mode: str = "transaction"
    listen_database_url: str | None = attrs.field(
        default=None, repr=lambda url: "None" if url is None else redact_database_url(url)
    )
    notify_channel: str = "botmox_agents"
    url: str | None = None
    anon_key: str | None = attrs.field(default=None, repr=False)
    service_role_key: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        _validate_url(self.database_url)
        if self.pool_min_size < 0 or self.pool_max_size < 1:
            raise ConfigurationError("supabase pool sizes must be >= 0 (min) and >= 1 (max)")
        if self.pool_min_size > self.pool_max_size:
            raise ConfigurationError(
                f"supabase pool_min_size ({self.pool_min_size}) exceeds pool_max_size "
                f"({self.pool_max_size})"
            )
        if self.role is not None and not _ROLE_NAME.match(self.role):
            raise ConfigurationError(f"supabase role {self.role!r} is not a plain role name")
        if self.pooler_mode not in POOLER_MODES:
            raise ConfigurationError(
                f"supabase pooler_mode must be one of {', '.join(POOLER_MODES)}, "
                f"got {self.pooler_mode!r}"
            )
        if self.listen_database_url is not None:
            _validate_url(self.listen_database_url)
        if not _ROLE_NAME.match(self.notify_channel):
            raise ConfigurationError(
                f"supabase notify_channel {self.notify_channel!r} must be 1-63 of a-z 0-9 _"
                " (not starting with a digit)"
            )

    @property
    def keeps_session(self) -> bool:
        """Whether a connection keeps its session between transactions (``session`` mode)."""
        return self.pooler_mode == "session"

    @classmethod
    def from_settings(cls, settings: Settings) -> SupabaseOptions:
        """Read the options; :class:`ConfigurationError` when the URL is missing or malformed."""
        # database_url falls back to SUPABASE_DB_URL, then DATABASE_URL (PLUGIN_ENV_FALLBACKS)
        options = settings.plugin_options(PLUGIN_NAME)
        url = options.get("database_url")
        if not url:
            raise ConfigurationError(
                "DATA_BACKEND=supabase needs a database URL: set BOTMOX_SUPABASE_DATABASE_URL "
                "(or SUPABASE_DB_URL / DATABASE_URL, or database_url in [plugins.supabase])"
            )
        return cls(
            database_url=_validate_url(url),
            pool_min_size=_integer(options, "pool_min_size", 1, 0),
            pool_max_size=_integer(options, "pool_max_size", 10, 1),
            pool_timeout=_seconds(options, "pool_timeout", 5.0),
            connect_timeout=_seconds(options, "connect_timeout", 5.0),
            role=options.get("role") or None,
            pooler_mode=(options.get("pooler_mode") or "transaction").strip().lower(),
            listen_database_url=(
                _validate_url(options["listen_database_url"])
                if options.get("listen_database_url")
                else None
            ),
            notify_channel=options.get("notify_channel") or "botmox_agents",
            url=options.get("url") or None,
            anon_key=options.get("anon_key") or None,
            service_role_key=options.get("service_role_key") or None,
        )
