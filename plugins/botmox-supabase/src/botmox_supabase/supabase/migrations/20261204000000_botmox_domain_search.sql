-- botmox: domain data search (issue 11): a trigram index per collection, so a list filter `q`
-- with a selective word reads its few matching rows instead of every row of the tenant.
--
-- * The filter stays `search like '%q%'` (q's wildcards escaped; see 20261201000000): pg_trgm's
--   GIN operator class answers LIKE, and btree_gin puts tenant_id in the same index, so one
--   index scan intersects the tenant's entries with q's trigrams. The index only narrows the
--   candidates: PostgreSQL re-checks every candidate row with the LIKE itself, so the result is
--   exactly the substring match every backend implements.
-- * The covering btree (tenant_id, search) of 20261201000000 stays: a q without a word of three
--   letters or digits (`vm-17`, `%`, `a`) has no trigram that narrows anything, and is counted
--   from it in one index-only scan.
-- * Both extensions are trusted (PostgreSQL 13+), so a database owner may create them. They go
--   into schema `extensions` (Supabase's convention; created here on a plain PostgreSQL); where
--   they are already installed, that schema is used.

create schema if not exists extensions;
create extension if not exists pg_trgm with schema extensions;
create extension if not exists btree_gin with schema extensions;

do $$
declare
  t text;
  trgm_schema text;
begin
  select n.nspname into strict trgm_schema
    from pg_catalog.pg_extension e join pg_catalog.pg_namespace n on n.oid = e.extnamespace
   where e.extname = 'pg_trgm';
  foreach t in array array[
    'resources_licenses', 'resources_proxies', 'resources_subscriptions', 'workspace_notes',
    'workspace_calendar_events', 'workspace_kanban_tasks', 'bots', 'finance_operations'
  ] loop
    -- tenant_id through btree_gin's default GIN operator class for text.
    execute format(
      'create index if not exists %I on botmox.%I using gin (tenant_id, search %I.gin_trgm_ops)',
      t || '_search_trgm_idx', t, trgm_schema
    );
  end loop;
end
$$;
