-- botmox: request counters of the rate limiter, shared by every server replica
-- (BOTMOX_RATE_LIMIT_STORE=postgres, the default on DATA_BACKEND=supabase).
--
-- * One row per (bucket, window_start): a bucket is a one-way id of a bearer token or a client
--   address (never the token or the address), window_start the epoch second the fixed window
--   starts at. Replicas add reservations with INSERT ... ON CONFLICT DO UPDATE ... RETURNING.
-- * UNLOGGED: counters are worth nothing after a crash (a window lasts a minute by default) and
--   skipping the WAL keeps the hot path cheap. A crash empties the table; nothing else reads it.
-- * Rows past expires_at are deleted by the replicas as they go.
-- * Row-level security without policies, like every botmox table: only the server's role
--   (service_role or a superuser, which bypass RLS) reads or writes it.

create unlogged table if not exists botmox.rate_limit_counters (
  bucket        text        not null,
  window_start  bigint      not null,
  used          bigint      not null,
  expires_at    timestamptz not null,
  constraint rate_limit_counters_pkey primary key (bucket, window_start),
  constraint rate_limit_counters_used_check check (used >= 0)
);

create index if not exists rate_limit_counters_expires_idx
  on botmox.rate_limit_counters (expires_at);

alter table botmox.rate_limit_counters enable row level security;
alter table botmox.rate_limit_counters force row level security;
revoke all on botmox.rate_limit_counters from public, anon, authenticated;
grant all on botmox.rate_limit_counters to service_role;
