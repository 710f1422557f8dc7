"""botmox-supabase: the ``supabase`` data backend (PostgreSQL with Supabase's row-level security).

* :class:`PostgresDataBackend` — the :class:`~botmox_core.ports.DataBackend` on psycopg 3 with a
  connection pool; works through Supavisor's transaction mode (no server-side prepared
  statements) and on direct connections. Selected with ``DATA_BACKEND=supabase``; configured by
  :class:`SupabaseOptions` (``BOTMOX_SUPABASE_DATABASE_URL`` ...).
* :func:`apply_migrations` / ``botmox db migrate`` — the shipped Supabase CLI migrations
  (``supabase/migrations/*.sql``), applied idempotently.
* :class:`PostgresTransport` — the ``postgres`` agent transport (``LISTEN/NOTIFY``) that wakes
  the server replica holding an agent's socket (``BOTMOX_AGENT_TRANSPORT=postgres``).
* :class:`PostgresRateLimitStore` — the ``postgres`` rate-limit store: request counters shared
  by the server replicas (``BOTMOX_RATE_LIMIT_STORE=postgres``, the default on this backend).
* :mod:`botmox_supabase.testing` — a throwaway real PostgreSQL for tests.

See ``docs/supabase.md``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from botmox_supabase.backend import PostgresDataBackend, PostgresUnitOfWork
    from botmox_supabase.migrations import apply_migrations, migrations_dir, shipped_migrations
    from botmox_supabase.options import SupabaseOptions
    from botmox_supabase.ratelimit import PostgresRateLimitStore
    from botmox_supabase.transport import PostgresTransport

# Loaded on first use, so that loading the plugin (every `botmox` start) does not import psycopg.
_LAZY = {
    "PostgresDataBackend": "botmox_supabase.backend",
    "PostgresUnitOfWork": "botmox_supabase.backend",
    "SupabaseOptions": "botmox_supabase.options",
    "PostgresTransport": "botmox_supabase.transport",
    "PostgresRateLimitStore": "botmox_supabase.ratelimit",
    "apply_migrations": "botmox_supabase.migrations",
    "migrations_dir": "botmox_supabase.migrations",
    "shipped_migrations": "botmox_supabase.migrations",
}

__all__ = [
    "PostgresDataBackend",
    "PostgresRateLimitStore",
    "PostgresTransport",
    "PostgresUnitOfWork",
    "SupabaseOptions",
    "apply_migrations",
    "migrations_dir",
    "shipped_migrations",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
