-- botmox: how many rows a tenant has in a collection table, as the statistics estimate it, in a
-- function whose plan is kept per connection.
--
-- * botmox.domain_tenant_rows(table, tenant): the table's rows (pg_class.reltuples) times the
--   tenant's share among the most common values of its tenant_id column (pg_stats), or all the
--   table's rows for a tenant not among them (an upper bound). A list with `q` and an indexed
--   sort compares it with the count of matches to choose how to read the page
--   (botmox_supabase.domain_listing); nothing else depends on it, and a wrong estimate only
--   makes a list slower, never different.
-- * Why a function: the same query inline in the list statement (pg_stats is a view over
--   pg_statistic, pg_class, pg_attribute and pg_namespace) cost 0.4-0.5 ms of planning on every
--   list, as much as planning the rest of the statement. PL/pgSQL keeps its statement's plan for
--   the life of the connection's session, whatever pooler sits in front; the function forces a
--   generic plan (the list's own statement is planned with force_custom_plan), which reads the
--   same few catalog rows by index for any table and tenant.
-- * STABLE and SECURITY INVOKER (the default): the caller sees the statistics its own
--   privileges show it in pg_stats, as it did inline.

create or replace function botmox.domain_tenant_rows(p_table text, p_tenant_id text)
  returns bigint
  language plpgsql stable
  set search_path = ''
  set plan_cache_mode = force_generic_plan
  as $$
declare
  estimate bigint;
begin
  select coalesce(
           (select (greatest(c.reltuples, 0) * share.freq)::bigint
              from pg_catalog.pg_stats as s
              cross join lateral unnest(
                s.most_common_vals::text::text[], s.most_common_freqs
              ) as share(value, freq)
             where s.schemaname = 'botmox' and s.tablename = p_table
               and s.attname = 'tenant_id' and share.value = p_tenant_id
             limit 1),
           greatest(c.reltuples, 0)::bigint)
    into estimate
    from pg_catalog.pg_class as c
    join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
   where n.nspname = 'botmox' and c.relname = p_table;
  return estimate;
end
$$;

comment on function botmox.domain_tenant_rows(text, text) is
  'How many rows the tenant has in the botmox table, as the statistics estimate it (an upper '
  'bound for a tenant not among the most common values); chooses how a list reads its page.';

revoke all on function botmox.domain_tenant_rows(text, text) from public, anon;
grant execute on function botmox.domain_tenant_rows(text, text) to authenticated, service_role;
