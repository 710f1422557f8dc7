-- botmox: the deployment's control entries (write freeze, migration lock and checkpoints; see
-- botmox_core.ports.control and docs/cutover.md). One JSON object per key, outside any tenant.
--
-- Row-level security: operators only. The server and the operator tools connect as a role that
-- bypasses RLS (service_role, or postgres on Supabase); `authenticated` and `anon` get nothing
-- (no grant, no policy), so a tenant's user can neither read nor lift a freeze.

create table if not exists botmox.control (
  key text not null,
  value jsonb not null,
  updated_at timestamptz not null default now(),
  constraint control_pkey primary key (key),
  constraint control_key_check check (key ~ '^[a-z0-9_-]{1,64}$'),
  constraint control_value_check check (jsonb_typeof(value) = 'object')
);

alter table botmox.control enable row level security;
alter table botmox.control force row level security;
revoke all on botmox.control from public, anon, authenticated;
grant all on botmox.control to service_role;
