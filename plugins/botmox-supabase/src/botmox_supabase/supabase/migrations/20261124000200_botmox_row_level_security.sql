-- botmox: row-level security on every table, keyed on the tenant claim of the Supabase JWT.
--
-- Model:
-- * `authenticated` (a Supabase Auth user, through PostgREST or supabase-js) may READ the rows of
--   the tenant named by its JWT: the top-level `tenant_id` claim, else `app_metadata.tenant_id`
--   (never `user_metadata`, which the user can edit). It may not write: every write goes through
--   the botmox server, which checks licences, entitlements and leases first. There is no write
--   policy, so even if table privileges are granted (Supabase grants all on `public` by default)
--   row-level security refuses every insert, update and delete.
-- * `anon` gets nothing.
-- * The server connects as a role that bypasses row-level security (`service_role`, or
--   `postgres` on Supabase) and filters by tenant in its own queries as well.
-- * RLS is FORCED, so the table owner is subject to it too unless it has BYPASSRLS.

create or replace function botmox.jwt_tenant_id() returns text
  language sql stable
  set search_path = ''
  as $$
    select coalesce(
      nullif(auth.jwt() ->> 'tenant_id', ''),
      nullif(auth.jwt() -> 'app_metadata' ->> 'tenant_id', '')
    )
  $$;

comment on function botmox.jwt_tenant_id() is
  'Tenant of the current request: JWT claim tenant_id, else app_metadata.tenant_id; NULL if none.';

revoke all on schema botmox from public, anon;
grant usage on schema botmox to authenticated, service_role;
revoke all on function botmox.jwt_tenant_id() from public, anon;
grant execute on function botmox.jwt_tenant_id() to authenticated, service_role;

do $$
declare
  t text;
begin
  foreach t in array array[
    'api_tokens', 'vms', 'licences', 'entitlements', 'leases', 'releases', 'assignments',
    'download_audit'
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
    if t <> 'api_tokens' then
      execute format('grant select on botmox.%I to authenticated', t);
    end if;
  end loop;
end
$$;

-- Token hashes are credentials: authenticated users may list their tenant's tokens, not hashes.
grant select (id, tenant_id, role, user_id, created_at, expires_at, revoked_at, label)
  on botmox.api_tokens to authenticated;

grant usage, select on all sequences in schema botmox to service_role;
