-- botmox: domain data (issue 11): the record collections, the bot lifecycle log and ban archive,
-- finance aggregates and the settings tree, per tenant, with row-level security like every other
-- botmox table.
--
-- * One table per collection, named as the Bot-Mox seed named them (resources_licenses, ...,
--   bots, finance_operations), so its data maps table to table: (tenant_id, id, data jsonb,
--   search, created_at, updated_at), primary key (tenant_id, id). `data` is the entity without
--   its id (it holds the entity's own created_at/updated_at, epoch ms); the timestamptz columns
--   only say when the row was written.
-- * `search` is botmox_core.domain.listing.search_text(id, data), written by the server with
--   every row: the list filter `q` is one substring test on it (`search like '%q%'`, q's
--   wildcards escaped), the same definition as every other backend, read from a covering index. `id` is COLLATE "C" so the primary key orders ids by code point, as the
--   list and scan order requires.
-- * Ordering by a field uses botmox.domain_rank/_number/_text (immutable, inlined by the planner):
--   type rank (null/missing, false, true, number, string, object/array), the number as numeric,
--   the string COLLATE "C". Bots have expression indexes for the fields the web client sorts by.
-- * Nobody but the server writes; authenticated users read their tenant's rows.

create table if not exists botmox.resources_licenses (
  tenant_id   text               not null,
  id          text collate "C"   not null,
  data        jsonb              not null,
  search      text collate "C"   not null,
  created_at  timestamptz        not null default now(),
  updated_at  timestamptz        not null default now(),
  constraint resources_licenses_pkey primary key (tenant_id, id),
  constraint resources_licenses_id_check check (id ~ '^[A-Za-z0-9_:@-]{1,128}$'),
  constraint resources_licenses_data_check check (jsonb_typeof(data) = 'object'),
  constraint resources_licenses_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256)
);

create table if not exists botmox.resources_proxies (
  tenant_id   text               not null,
  id          text collate "C"   not null,
  data        jsonb              not null,
  search      text collate "C"   not null,
  created_at  timestamptz        not null default now(),
  updated_at  timestamptz        not null default now(),
  constraint resources_proxies_pkey primary key (tenant_id, id),
  constraint resources_proxies_id_check check (id ~ '^[A-Za-z0-9_:@-]{1,128}$'),
  constraint resources_proxies_data_check check (jsonb_typeof(data) = 'object'),
  constraint resources_proxies_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256)
);

create table if not exists botmox.resources_subscriptions (
  tenant_id   text               not null,
  id          text collate "C"   not null,
  data        jsonb              not null,
  search      text collate "C"   not null,
  created_at  timestamptz        not null default now(),
  updated_at  timestamptz        not null default now(),
  constraint resources_subscriptions_pkey primary key (tenant_id, id),
  constraint resources_subscriptions_id_check check (id ~ '^[A-Za-z0-9_:@-]{1,128}$'),
  constraint resources_subscriptions_data_check check (jsonb_typeof(data) = 'object'),
  constraint resources_subscriptions_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256)
);

create table if not exists botmox.workspace_notes (
  tenant_id   text               not null,
  id          text collate "C"   not null,
  data        jsonb              not null,
  search      text collate "C"   not null,
  created_at  timestamptz        not null default now(),
  updated_at  timestamptz        not null default now(),
  constraint workspace_notes_pkey primary key (tenant_id, id),
  constraint workspace_notes_id_check check (id ~ '^[A-Za-z0-9_:@-]{1,128}$'),
  constraint workspace_notes_data_check check (jsonb_typeof(data) = 'object'),
  constraint workspace_notes_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256)
);

create table if not exists botmox.workspace_calendar_events (
  tenant_id   text               not null,
  id          text collate "C"   not null,
  data        jsonb              not null,
  search      text collate "C"   not null,
  created_at  timestamptz        not null default now(),
  updated_at  timestamptz        not null default now(),
  constraint workspace_calendar_events_pkey primary key (tenant_id, id),
  constraint workspace_calendar_events_id_check check (id ~ '^[A-Za-z0-9_:@-]{1,128}$'),
  constraint workspace_calendar_events_data_check check (jsonb_typeof(data) = 'object'),
  constraint workspace_calendar_events_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256)
);

create table if not exists botmox.workspace_kanban_tasks (
  tenant_id   text               not null,
  id          text collate "C"   not null,
  data        jsonb              not null,
  search      text collate "C"   not null,
  created_at  timestamptz        not null default now(),
  updated_at  timestamptz        not null default now(),
  constraint workspace_kanban_tasks_pkey primary key (tenant_id, id),
  constraint workspace_kanban_tasks_id_check check (id ~ '^[A-Za-z0-9_:@-]{1,128}$'),
  constraint workspace_kanban_tasks_data_check check (jsonb_typeof(data) = 'object'),
  constraint workspace_kanban_tasks_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256)
);

create table if not exists botmox.bots (
  tenant_id   text               not null,
  id          text collate "C"   not null,
  data        jsonb              not null,
  search      text collate "C"   not null,
  created_at  timestamptz        not null default now(),
  updated_at  timestamptz        not null default now(),
  constraint bots_pkey primary key (tenant_id, id),
  constraint bots_id_check check (id ~ '^[A-Za-z0-9_:@-]{1,128}$'),
  constraint bots_data_check check (jsonb_typeof(data) = 'object'),
  constraint bots_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256)
);

create table if not exists botmox.finance_operations (
  tenant_id   text               not null,
  id          text collate "C"   not null,
  data        jsonb              not null,
  search      text collate "C"   not null,
  created_at  timestamptz        not null default now(),
  updated_at  timestamptz        not null default now(),
  constraint finance_operations_pkey primary key (tenant_id, id),
  constraint finance_operations_id_check check (id ~ '^[A-Za-z0-9_:@-]{1,128}$'),
  constraint finance_operations_data_check check (jsonb_typeof(data) = 'object'),
  constraint finance_operations_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256)
);

create table if not exists botmox.bot_lifecycle_log (
  tenant_id     text               not null,
  id            text collate "C"   not null,
  bot_id        text               not null,
  type          text               not null,
  message       text               not null,
  details       jsonb              not null default '{}'::jsonb,
  timestamp_ms  bigint             not null,
  created_at    timestamptz        not null default now(),
  constraint bot_lifecycle_log_pkey primary key (tenant_id, id),
  constraint bot_lifecycle_log_details_check check (jsonb_typeof(details) = 'object'),
  constraint bot_lifecycle_log_timestamp_ms_check check (timestamp_ms >= 0),
  constraint bot_lifecycle_log_tenant_id_check check (tenant_id <> '')
);
create index if not exists bot_lifecycle_log_tenant_time_idx
  on botmox.bot_lifecycle_log (tenant_id, timestamp_ms, id);
create index if not exists bot_lifecycle_log_tenant_bot_time_idx
  on botmox.bot_lifecycle_log (tenant_id, bot_id, timestamp_ms, id);

create table if not exists botmox.bot_archive (
  tenant_id       text               not null,
  id              text collate "C"   not null,
  bot_id          text               not null,
  reason          text               not null default 'banned',
  archived_at_ms  bigint             not null,
  ban_details     jsonb              not null default '{}'::jsonb,
  snapshot        jsonb              not null default '{}'::jsonb,
  created_at      timestamptz        not null default now(),
  constraint bot_archive_pkey primary key (tenant_id, id),
  constraint bot_archive_ban_details_check check (jsonb_typeof(ban_details) = 'object'),
  constraint bot_archive_snapshot_check check (jsonb_typeof(snapshot) = 'object'),
  constraint bot_archive_archived_at_ms_check check (archived_at_ms >= 0),
  constraint bot_archive_tenant_id_check check (tenant_id <> '')
);
create index if not exists bot_archive_tenant_time_idx
  on botmox.bot_archive (tenant_id, archived_at_ms, id);
create index if not exists bot_archive_tenant_bot_time_idx
  on botmox.bot_archive (tenant_id, bot_id, archived_at_ms, id);

create table if not exists botmox.finance_aggregates (
  tenant_id   text        not null,
  key         text        not null,
  data        jsonb       not null,
  updated_at  timestamptz not null default now(),
  constraint finance_aggregates_pkey primary key (tenant_id, key),
  constraint finance_aggregates_key_check check (key in ('daily_stats', 'gold_price_history')),
  constraint finance_aggregates_data_check check (jsonb_typeof(data) = 'object'),
  constraint finance_aggregates_tenant_id_check check (tenant_id <> '')
);

create table if not exists botmox.app_settings (
  tenant_id   text        not null,
  data        jsonb       not null,
  updated_at  timestamptz not null default now(),
  constraint app_settings_pkey primary key (tenant_id),
  constraint app_settings_data_check check (jsonb_typeof(data) = 'object'),
  constraint app_settings_tenant_id_check check (tenant_id <> '')
);

-- The list order of botmox_core.domain.listing.sort_key, one key part per function. Each is a
-- single immutable SQL expression over pg_catalog functions (qualified) and no SET clause, so the
-- planner inlines it (no function call per row) and an index on the same call serves an ORDER BY
-- written with it.
create or replace function botmox.domain_rank(value jsonb) returns smallint
  language sql immutable parallel safe
  as $$
    select case pg_catalog.jsonb_typeof(value)
      when 'boolean' then case when value = 'true'::jsonb then 2 else 1 end
      when 'number' then 3
      when 'string' then 4
      when 'object' then 5
      when 'array' then 5
      else 0
    end::smallint
  $$;

create or replace function botmox.domain_number(value jsonb) returns numeric
  language sql immutable parallel safe
  as $$
    select case when pg_catalog.jsonb_typeof(value) = 'number' then value::numeric end
  $$;

create or replace function botmox.domain_text(value jsonb) returns text
  language sql immutable parallel safe
  as $$
    select case when pg_catalog.jsonb_typeof(value) = 'string' then (value #>> '{}') collate "C" end
  $$;

revoke all on function botmox.domain_rank(jsonb) from public, anon;
revoke all on function botmox.domain_number(jsonb) from public, anon;
revoke all on function botmox.domain_text(jsonb) from public, anon;
grant execute on function botmox.domain_rank(jsonb) to authenticated, service_role;
grant execute on function botmox.domain_number(jsonb) to authenticated, service_role;
grant execute on function botmox.domain_text(jsonb) to authenticated, service_role;

-- Every collection: the filter `q` reads `search` from a covering index (an index-only scan over
-- the tenant's entries, the table itself is not read). A btree entry holds at most ~2.7 kB, so
-- the index covers the rows whose search text is at most 1024 bytes (nearly all); the others are
-- found through a second, small partial index and read from the table.
do $$
declare
  t text;
begin
  foreach t in array array[
    'resources_licenses', 'resources_proxies', 'resources_subscriptions', 'workspace_notes',
    'workspace_calendar_events', 'workspace_kanban_tasks', 'bots', 'finance_operations'
  ] loop
    execute format(
      'create index if not exists %I on botmox.%I (tenant_id, search) include (id)'
      ' where octet_length(search) <= 1024',
      t || '_search_idx', t
    );
    execute format(
      'create index if not exists %I on botmox.%I (tenant_id) where octet_length(search) > 1024',
      t || '_long_search_idx', t
    );
  end loop;
end
$$;

-- Bots: the sort orders the web client uses on its bot tables, served in index order (a page
-- of a sorted list reads about a page of rows, not the whole collection).
do $$
declare
  f text;
begin
  foreach f in array array['name', 'status', 'project_id', 'created_at', 'updated_at'] loop
    execute format(
      'create index if not exists %I on botmox.bots (tenant_id, botmox.domain_rank(data -> %L),'
      ' botmox.domain_number(data -> %L), botmox.domain_text(data -> %L) collate "C", id)',
      'bots_sort_' || f || '_idx', f, f, f
    );
  end loop;
end
$$;

-- Row-level security, exactly like the other tables (see 20261124000200): authenticated users
-- read their tenant's rows, nobody but the server writes.
do $$
declare
  t text;
begin
  foreach t in array array[
    'resources_licenses', 'resources_proxies', 'resources_subscriptions', 'workspace_notes',
    'workspace_calendar_events', 'workspace_kanban_tasks', 'bots', 'finance_operations',
    'bot_lifecycle_log', 'bot_archive', 'finance_aggregates', 'app_settings'
  ] loop
    execute format('alter table botmox.%I enable row level security', t);
    execute format('alter table botmox.%I force row level security', t);
    execute format('revoke all on botmox.%I from public, anon, authenticated', t);
    execute format('grant all on botmox.%I to service_role', t);
    execute format('drop policy if exists %I on botmox.%I', t || '_tenant_read', t);
    execute format(
      'create policy %I on botmox.%I as permissive for select to authenticated '
      'using (tenant_id = (select botmox.jwt_tenant_id()))',
      t || '_tenant_read', t
    );
    execute format('grant select on botmox.%I to authenticated', t);
  end loop;
end
$$;
