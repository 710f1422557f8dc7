-- botmox: resolve-download's reads as one function, so their plans are cached per connection.
--
-- * botmox.download_grant(tenant, lease, module, platform, channel): the lease, the effective
--   assignment of the scope (the lease user's, else the tenant default) and its release, in one
--   row of plain columns (l_*, a_*, r_*: the three tables' columns); no row when the lease does
--   not exist. What the server's read_download_grant calls.
-- * Why a function: a statement sent with prepare_threshold=None (no server-side prepared
--   statements, as Supavisor's transaction mode needs) is parsed and planned on every call, and
--   planning the three reads as one statement cost PostgreSQL more than running them. PL/pgSQL
--   keeps the plans of its statements for the life of the connection's session, whatever pooler
--   sits in front, so a call only parses and plans the small "select ... from download_grant()".
--   Plain columns rather than three composite rows: picking 34 fields out of composites cost the
--   caller's statement more to parse than the reads cost to run.
-- * STABLE: every statement inside runs on the snapshot of the calling statement, so the three
--   rows are read as of one instant (a lease revoked before the call began is seen revoked).
-- * SECURITY INVOKER (the default): row-level security applies to the caller as it would to the
--   statements themselves; only the server's role may call it (service_role, or a superuser).

create or replace function botmox.download_grant(
  p_tenant_id text, p_lease_id text, p_module text, p_platform text, p_channel text
) returns table (
  -- botmox.leases
  l_id text, l_tenant_id text, l_user_id text, l_vm_uuid text, l_module text, l_status text,
  l_token_hash text, l_previous_token_hash text, l_issued_at timestamptz,
  l_expires_at timestamptz, l_last_heartbeat_at timestamptz, l_version text, l_agent_id text,
  l_runner_id text, l_revoked_at timestamptz, l_revoke_reason text,
  -- botmox.assignments (all NULL: no assignment for the scope)
  a_tenant_id text, a_user_id text, a_module text, a_platform text, a_channel text,
  a_release_id bigint, a_assigned_at timestamptz,
  -- botmox.releases (all NULL: the assigned release does not exist)
  r_id bigint, r_tenant_id text, r_module text, r_platform text, r_channel text, r_version text,
  r_object_key text, r_sha256 text, r_size_bytes bigint, r_status text, r_created_at timestamptz
)
  language plpgsql stable
  set search_path = ''
  as $$
begin
  select l.id, l.tenant_id, l.user_id, l.vm_uuid, l.module, l.status, l.token_hash,
         l.previous_token_hash, l.issued_at, l.expires_at, l.last_heartbeat_at, l.version,
         l.agent_id, l.runner_id, l.revoked_at, l.revoke_reason
    into l_id, l_tenant_id, l_user_id, l_vm_uuid, l_module, l_status, l_token_hash,
         l_previous_token_hash, l_issued_at, l_expires_at, l_last_heartbeat_at, l_version,
         l_agent_id, l_runner_id, l_revoked_at, l_revoke_reason
    from botmox.leases l
    where l.tenant_id = p_tenant_id and l.id = p_lease_id;
  if not found then
    return;
  end if;
  select a.tenant_id, a.user_id, a.module, a.platform, a.channel, a.release_id, a.assigned_at
    into a_tenant_id, a_user_id, a_module, a_platform, a_channel, a_release_id, a_assigned_at
    from botmox.assignments a
    where a.tenant_id = p_tenant_id and a.module = p_module and a.platform = p_platform
      and a.channel = p_channel and (a.user_id is null or a.user_id = l_user_id)
    order by a.user_id is null
    limit 1;
  if found then
    select r.id, r.tenant_id, r.module, r.platform, r.channel, r.version, r.object_key,
           r.sha256, r.size_bytes, r.status, r.created_at
      into r_id, r_tenant_id, r_module, r_platform, r_channel, r_version, r_object_key,
           r_sha256, r_size_bytes, r_status, r_created_at
      from botmox.releases r
      where r.tenant_id = p_tenant_id and r.id = a_release_id;
  end if;
  return next;
end
$$;

comment on function botmox.download_grant(text, text, text, text, text) is
  'resolve-download''s reads: the lease, the effective assignment of the scope (the lease user''s, '
  'else the tenant default) and its release; no row when the lease does not exist.';

revoke all on function botmox.download_grant(text, text, text, text, text)
  from public, anon, authenticated;
grant execute on function botmox.download_grant(text, text, text, text, text) to service_role;
