-- botmox: domain data search table (issue 11): the search text of every record of the eight
-- collections in one narrow table, so counting the matches of a list filter `q` reads a fraction
-- of the pages it read in the collection tables.
--
-- * botmox.domain_search (tenant_id, collection, id, search): `collection` is the collection's
--   table name (`bots`, ...), `search` the same text as that table's `search` column
--   (botmox_core.domain.listing.search_text). A row is about a quarter of a bot's row: with a
--   frequent word (a status, a realm) nearly every page of the tenant holds a match, and the
--   count re-checks ~2,100 pages per 100,000 records here instead of ~7,400 there.
-- * Triggers keep it exact: after every insert, update, delete and truncate of a collection
--   table, in the same statement's transaction, whoever writes (the server's add, modify,
--   put_many, a migration's bulk copy, a hand-written statement). They are statement-level with
--   transition tables, so a batch of 500 rows is one insert here, not 500. Measured on 1.1M bots:
--   an add +0.1 ms, a modify +0.13 ms, a put_many of 500 records +18 ms (43 -> 61 ms).
-- * A trigram index per collection (partial on `collection`, tenant_id in the index through
--   btree_gin, as in 20261204000000): the posting lists hold only that collection's rows.
--   fastupdate stays on (off made an add cost +0.7 ms and a put_many of 500 three times as
--   much); new entries wait in its pending list until (auto)vacuum merges them.
-- * Row-level security like the collection tables: authenticated users read their tenant's
--   rows, nobody but the server (through the triggers) writes.

create table if not exists botmox.domain_search (
  tenant_id   text               not null,
  collection  text               not null,
  id          text collate "C"   not null,
  search      text collate "C"   not null,
  constraint domain_search_pkey primary key (tenant_id, collection, id),
  constraint domain_search_collection_check check (collection in (
    'resources_licenses', 'resources_proxies', 'resources_subscriptions', 'workspace_notes',
    'workspace_calendar_events', 'workspace_kanban_tasks', 'bots', 'finance_operations'
  )),
  constraint domain_search_tenant_id_check check (tenant_id <> '')
);

-- One function for every collection table and event; the collection is the trigger's table.
-- An update may (in principle) change a row's key: the old keys no longer present are deleted,
-- the new rows upserted (a row whose search text did not change is not written).
-- It runs with the writer's rights (the server's role, which may write this table). A statement
-- that changed no row returns at once: `authenticated`, even with every privilege on a
-- collection table, changes no row there (row-level security), and so gets the same empty
-- result as before, not a refusal here.
create or replace function botmox.domain_search_sync() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  declare
    table_name text := tg_table_name;
  begin
    -- (A transition table is named only in the branch of the events that have it.)
    if tg_op in ('INSERT', 'UPDATE') then
      if not exists (select from new_rows) then
        return null;
      end if;
    elsif tg_op = 'DELETE' then
      if not exists (select from old_rows) then
        return null;
      end if;
    end if;
    if tg_op = 'INSERT' then
      insert into botmox.domain_search as s (tenant_id, collection, id, search)
        select n.tenant_id, table_name, n.id, n.search from new_rows as n
        on conflict (tenant_id, collection, id) do update set search = excluded.search
        where s.search is distinct from excluded.search;
    elsif tg_op = 'UPDATE' then
      delete from botmox.domain_search as s using old_rows as o
       where s.tenant_id = o.tenant_id and s.collection = table_name and s.id = o.id
         and not exists (
           select from new_rows as n where n.tenant_id = o.tenant_id and n.id = o.id
         );
      insert into botmox.domain_search as s (tenant_id, collection, id, search)
        select n.tenant_id, table_name, n.id, n.search from new_rows as n
        on conflict (tenant_id, collection, id) do update set search = excluded.search
        where s.search is distinct from excluded.search;
    elsif tg_op = 'DELETE' then
      delete from botmox.domain_search as s using old_rows as o
       where s.tenant_id = o.tenant_id and s.collection = table_name and s.id = o.id;
    else  -- TRUNCATE
      delete from botmox.domain_search as s where s.collection = table_name;
    end if;
    return null;
  end
  $$;

revoke all on function botmox.domain_search_sync() from public, anon, authenticated;

do $$
declare
  t text;
begin
  foreach t in array array[
    'resources_licenses', 'resources_proxies', 'resources_subscriptions', 'workspace_notes',
    'workspace_calendar_events', 'workspace_kanban_tasks', 'bots', 'finance_operations'
  ] loop
    -- The triggers first: their creation locks out the table's writers until this migration
    -- commits, so the backfill below sees every row and no write slips between the two.
    execute format('drop trigger if exists %I on botmox.%I', t || '_search_insert', t);
    execute format(
      'create trigger %I after insert on botmox.%I referencing new table as new_rows'
      ' for each statement execute function botmox.domain_search_sync()',
      t || '_search_insert', t
    );
    execute format('drop trigger if exists %I on botmox.%I', t || '_search_update', t);
    execute format(
      'create trigger %I after update on botmox.%I'
      ' referencing old table as old_rows new table as new_rows'
      ' for each statement execute function botmox.domain_search_sync()',
      t || '_search_update', t
    );
    execute format('drop trigger if exists %I on botmox.%I', t || '_search_delete', t);
    execute format(
      'create trigger %I after delete on botmox.%I referencing old table as old_rows'
      ' for each statement execute function botmox.domain_search_sync()',
      t || '_search_delete', t
    );
    execute format('drop trigger if exists %I on botmox.%I', t || '_search_truncate', t);
    execute format(
      'create trigger %I after truncate on botmox.%I'
      ' for each statement execute function botmox.domain_search_sync()',
      t || '_search_truncate', t
    );
    execute format(
      'insert into botmox.domain_search (tenant_id, collection, id, search)'
      ' select tenant_id, %L, id, search from botmox.%I'
      ' on conflict (tenant_id, collection, id) do update set search = excluded.search',
      t, t
    );
  end loop;
end
$$;

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
    execute format(
      'create index if not exists %I on botmox.domain_search'
      ' using gin (tenant_id, search %I.gin_trgm_ops) where collection = %L',
      'domain_search_' || t || '_trgm_idx', trgm_schema, t
    );
  end loop;
end
$$;

alter table botmox.domain_search enable row level security;
alter table botmox.domain_search force row level security;
revoke all on botmox.domain_search from public, anon, authenticated;
grant all on botmox.domain_search to service_role;
drop policy if exists domain_search_tenant_read on botmox.domain_search;
create policy domain_search_tenant_read on botmox.domain_search as permissive for select
  to authenticated using (tenant_id = (select botmox.jwt_tenant_id()));
grant select on botmox.domain_search to authenticated;
