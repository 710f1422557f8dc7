"""botmox-supabase: the ``supabase`` data backend (PostgreSQL with Supabase's row-level security).

* :class:`PostgresDataBackend` — the :class:`~botmox_core.ports.DataBackend` on psycopg 3 with a
  connection pool; works through Supavisor's transaction mode (no server-side prepared
  statements) and on direct connections. Selected with ``DATA_BACKEND=supabase``; configured by
  :class:`SupabaseOptions` (``BOTMOX_SUPABASE_DATABASE_URL`` ...).
* :func:`apply_migrations` / ``botmox db migrate`` — the shipped Supabase CLI migrations
  (``supabase/migrations/*.sql``), applied idempotently.
* :mod:`botmox_supabase.testing` — a throwaway real PostgreSQL for tests.

See ``docs/supabase.md``.
"""

from botmox_supabase.backend import PostgresDataBackend, PostgresUnitOfWork
from botmox_supabase.migrations import apply_migrations, migrations_dir, shipped_migrations
from botmox_supabase.options import SupabaseOptions

__all__ = [
    "PostgresDataBackend",
    "PostgresUnitOfWork",
    "SupabaseOptions",
    "apply_migrations",
    "migrations_dir",
    "shipped_migrations",
]
