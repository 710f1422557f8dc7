-- botmox: tables of the agent command bus (agents, their command queue, command output), with
-- row-level security like every other botmox table.
--
-- * An agent row is created pending by a pairing (the agent id is also the pairing id), made
--   active by registering with the pairing code, and ended by revocation. Only sha256 hashes of
--   the pairing code and the agent token are stored; both are unique across tenants because the
--   server looks agents up by them.
-- * At most one command per (tenant, agent, idempotency key). The repository port stores a
--   command for any (tenant, agent) pair, so there is no foreign key to `agents`: the services
--   check that the agent exists and is active before they enqueue (agents are never deleted).
--   Server replicas claim queued commands with `SELECT ... FOR UPDATE SKIP LOCKED`, served by the
--   partial index `commands_claim_idx`.
-- * A command in a final state never changes state again (trigger `commands_final_state_guard`);
--   the legal moves between the other states are checked by the botmox services.
-- * Output is stored in chunks keyed by (tenant, command, seq), so a resent chunk is a no-op.

create table if not exists botmox.agents (
  id                  text        not null,
  tenant_id           text        not null,
  name                text,
  status              text        not null,
  created_at          timestamptz not null,
  pairing_code_hash   text,
  pairing_expires_at  timestamptz not null,
  version             text,
  platform            text,
  capabilities        text[]      not null default '{}',
  public_key          text,
  token_hash          text,
  token_expires_at    timestamptz,
  registered_at       timestamptz,
  last_seen_at        timestamptz,
  revoked_at          timestamptz,
  revoke_reason       text,
  constraint agents_pkey primary key (id),
  constraint agents_tenant_id_key unique (tenant_id, id),
  constraint agents_pairing_code_hash_key unique (pairing_code_hash),
  constraint agents_token_hash_key unique (token_hash),
  constraint agents_status_check check (status in ('pending', 'active', 'revoked')),
  constraint agents_pairing_code_hash_check
    check (pairing_code_hash is null or pairing_code_hash ~ '^[0-9a-f]{64}$'),
  constraint agents_token_hash_check check (token_hash is null or token_hash ~ '^[0-9a-f]{64}$'),
  constraint agents_capabilities_check check (array_position(capabilities, null) is null),
  constraint agents_tenant_id_check check (tenant_id <> '')
);
create index if not exists agents_tenant_created_idx
  on botmox.agents (tenant_id, created_at desc, id desc);

create table if not exists botmox.commands (
  id                         text        not null,
  tenant_id                  text        not null,
  agent_id                   text        not null,
  command_type               text        not null,
  payload                    jsonb       not null default '{}'::jsonb,
  status                     text        not null,
  queued_at                  timestamptz not null,
  expires_at                 timestamptz not null,
  updated_at                 timestamptz not null,
  execution_timeout_seconds  integer     not null,
  idempotency_key            text,
  attempts                   integer     not null default 0,
  max_attempts               integer     not null default 5,
  dispatched_at              timestamptz,
  started_at                 timestamptz,
  finished_at                timestamptz,
  cancel_requested_at        timestamptz,
  result                     jsonb,
  error                      text,
  output_bytes               bigint      not null default 0,
  created_by                 text,
  constraint commands_pkey primary key (id),
  constraint commands_tenant_id_key unique (tenant_id, id),
  -- NULL keys are distinct: commands without a key are never deduplicated.
  constraint commands_idempotency_key unique (tenant_id, agent_id, idempotency_key),
  constraint commands_status_check check (status in (
    'queued', 'dispatched', 'running', 'succeeded', 'failed', 'expired', 'cancelled', 'timed_out'
  )),
  constraint commands_command_type_check check (command_type <> ''),
  constraint commands_payload_check check (jsonb_typeof(payload) = 'object'),
  constraint commands_result_check check (result is null or jsonb_typeof(result) = 'object'),
  constraint commands_execution_timeout_check check (execution_timeout_seconds > 0),
  constraint commands_attempts_check check (attempts >= 0 and max_attempts >= 1),
  constraint commands_output_bytes_check check (output_bytes >= 0),
  constraint commands_tenant_id_check check (tenant_id <> '')
);
-- Claiming: the agent's oldest queued commands, found without touching any other row.
create index if not exists commands_claim_idx
  on botmox.commands (tenant_id, agent_id, queued_at, id) where status = 'queued';
create index if not exists commands_tenant_queued_idx
  on botmox.commands (tenant_id, queued_at desc, id desc);
create index if not exists commands_tenant_agent_status_idx
  on botmox.commands (tenant_id, agent_id, status);
-- The sweeper: only commands that are not final yet.
create index if not exists commands_open_idx
  on botmox.commands (updated_at) where status in ('queued', 'dispatched', 'running');

create table if not exists botmox.command_output (
  tenant_id   text    not null,
  command_id  text    not null,
  seq         integer not null,
  -- UTF-8 bytes (Python's surrogatepass): any text an agent sends, NUL and lone surrogates
  -- included, comes back exactly; convert_from(data, 'UTF8') reads ordinary text.
  data        bytea   not null,
  constraint command_output_pkey primary key (tenant_id, command_id, seq),
  constraint command_output_command_fkey
    foreign key (tenant_id, command_id) references botmox.commands (tenant_id, id)
    on delete cascade,
  constraint command_output_seq_check check (seq >= 0),
  constraint command_output_tenant_id_check check (tenant_id <> '')
);

-- A final state is final: no update may move a command out of succeeded, failed, expired,
-- cancelled or timed_out. The services never try (their transition table has no move out of a
-- final state); this is the last line of defence against a buggy or hand-written update.
create or replace function botmox.commands_final_state_guard() returns trigger
  language plpgsql
  set search_path = ''
  as $$
  begin
    if new.status is distinct from old.status
       and old.status in ('succeeded', 'failed', 'expired', 'cancelled', 'timed_out') then
      raise exception using
        errcode = 'check_violation',
        constraint = 'commands_final_state_check',
        message = format('command %s is %s, a final state: it cannot become %s',
                         old.id, old.status, new.status);
    end if;
    return new;
  end
  $$;

revoke all on function botmox.commands_final_state_guard() from public, anon, authenticated;

drop trigger if exists commands_final_state_guard on botmox.commands;
create trigger commands_final_state_guard
  before update of status on botmox.commands
  for each row execute function botmox.commands_final_state_guard();

-- Row-level security, exactly like the other tables (see 20261124000200): authenticated users
-- read their tenant's rows, nobody but the server writes.
do $$
declare
  t text;
begin
  foreach t in array array['agents', 'commands', 'command_output'] loop
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
    if t <> 'agents' then
      execute format('grant select on botmox.%I to authenticated', t);
    end if;
  end loop;
end
$$;

-- Pairing-code and token hashes are credentials: users may list their agents, not the hashes.
grant select (id, tenant_id, name, status, created_at, pairing_expires_at, version, platform,
              capabilities, public_key, token_expires_at, registered_at, last_seen_at,
              revoked_at, revoke_reason)
  on botmox.agents to authenticated;
