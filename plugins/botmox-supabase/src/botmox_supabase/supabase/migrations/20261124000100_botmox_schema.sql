-- botmox: tables of the data backend, in their own schema `botmox`.
--
-- Every table carries tenant_id; the uniqueness rules of the Bot-Mox v1 contract are named
-- constraints (the backend maps their names to messages). Statements are idempotent so this file
-- can be applied by `supabase db push` and `botmox db migrate` alike.

create schema if not exists botmox;

create table if not exists botmox.api_tokens (
  id          text        not null,
  tenant_id   text        not null,
  role        text        not null,
  user_id     text,
  token_hash  text        not null,
  created_at  timestamptz not null,
  expires_at  timestamptz,
  revoked_at  timestamptz,
  label       text,
  constraint api_tokens_pkey primary key (id),
  constraint api_tokens_token_hash_key unique (token_hash),
  constraint api_tokens_role_check check (role in ('api', 'admin', 'infra', 'agent')),
  constraint api_tokens_token_hash_check check (token_hash ~ '^[0-9a-f]{64}$'),
  constraint api_tokens_tenant_id_check check (tenant_id <> '')
);
create index if not exists api_tokens_tenant_id_idx on botmox.api_tokens (tenant_id);

create table if not exists botmox.vms (
  tenant_id   text        not null,
  vm_uuid     text        not null,
  user_id     text        not null,
  status      text        not null,
  vm_name     text,
  project_id  text,
  metadata    jsonb       not null default '{}'::jsonb,
  created_at  timestamptz not null,
  updated_at  timestamptz not null,
  constraint vms_pkey primary key (tenant_id, vm_uuid),
  constraint vms_status_check check (status in ('active', 'paused', 'revoked')),
  constraint vms_metadata_check check (jsonb_typeof(metadata) = 'object'),
  constraint vms_tenant_id_check check (tenant_id <> '')
);
create index if not exists vms_tenant_user_idx on botmox.vms (tenant_id, user_id);

create table if not exists botmox.licences (
  tenant_id   text        not null,
  status      text        not null,
  expires_at  timestamptz,
  updated_at  timestamptz not null,
  constraint licences_pkey primary key (tenant_id),
  constraint licences_status_check check (status in ('active', 'inactive', 'suspended')),
  constraint licences_tenant_id_check check (tenant_id <> '')
);

create table if not exists botmox.entitlements (
  tenant_id   text        not null,
  user_id     text        not null,
  modules     text[]      not null,
  updated_at  timestamptz not null,
  constraint entitlements_pkey primary key (tenant_id, user_id),
  constraint entitlements_modules_check check (array_position(modules, null) is null),
  constraint entitlements_tenant_id_check check (tenant_id <> '')
);

create table if not exists botmox.leases (
  id                   text        not null,
  tenant_id            text        not null,
  user_id              text        not null,
  vm_uuid              text        not null,
  module               text        not null,
  status               text        not null,
  token_hash           text        not null,
  previous_token_hash  text,
  issued_at            timestamptz not null,
  expires_at           timestamptz not null,
  last_heartbeat_at    timestamptz,
  version              text,
  agent_id             text,
  runner_id            text,
  revoked_at           timestamptz,
  revoke_reason        text,
  constraint leases_pkey primary key (id),
  constraint leases_status_check check (status in ('active', 'revoked')),
  constraint leases_token_hash_check check (token_hash ~ '^[0-9a-f]{64}$'),
  constraint leases_previous_token_hash_check
    check (previous_token_hash is null or previous_token_hash ~ '^[0-9a-f]{64}$'),
  constraint leases_tenant_id_check check (tenant_id <> '')
);
create index if not exists leases_tenant_id_idx on botmox.leases (tenant_id);
create index if not exists leases_tenant_vm_idx on botmox.leases (tenant_id, vm_uuid);

create table if not exists botmox.releases (
  id          bigint      generated always as identity,
  tenant_id   text        not null,
  module      text        not null,
  platform    text        not null,
  channel     text        not null,
  version     text        not null,
  object_key  text        not null,
  sha256      text        not null,
  size_bytes  bigint      not null,
  status      text        not null,
  created_at  timestamptz not null,
  constraint releases_pkey primary key (id),
  constraint releases_scope_version_key unique (tenant_id, module, platform, channel, version),
  constraint releases_object_key_key unique (tenant_id, object_key),
  constraint releases_tenant_id_key unique (tenant_id, id),
  constraint releases_sha256_check check (sha256 ~ '^[0-9a-f]{64}$'),
  constraint releases_size_bytes_check check (size_bytes > 0),
  constraint releases_status_check check (status in ('active', 'draft', 'disabled', 'archived')),
  constraint releases_tenant_id_check check (tenant_id <> '')
);
create index if not exists releases_tenant_module_idx on botmox.releases (tenant_id, module, id desc);

create table if not exists botmox.assignments (
  tenant_id    text        not null,
  user_id      text,
  module       text        not null,
  platform     text        not null,
  channel      text        not null,
  release_id   bigint      not null,
  assigned_at  timestamptz not null,
  -- NULL user_id is the tenant default: one per scope, so NULLs are not distinct here.
  constraint assignments_scope_key
    unique nulls not distinct (tenant_id, user_id, module, platform, channel),
  constraint assignments_release_id_check check (release_id > 0),
  -- An assignment points at a release of the same tenant, never another tenant's.
  constraint assignments_release_fkey
    foreign key (tenant_id, release_id) references botmox.releases (tenant_id, id),
  constraint assignments_tenant_id_check check (tenant_id <> '')
);

create table if not exists botmox.download_audit (
  id              bigint      generated always as identity,
  tenant_id       text        not null,
  event           text        not null,
  result          text        not null,
  reason_code     text,
  created_at      timestamptz not null,
  lease_id        text,
  user_id         text,
  vm_uuid         text,
  module          text,
  platform        text,
  channel         text,
  release_id      bigint,
  request_ip      text,
  url_expires_at  timestamptz,
  metadata        jsonb       not null default '{}'::jsonb,
  constraint download_audit_pkey primary key (id),
  constraint download_audit_event_check
    check (event in ('resolve_success', 'resolve_denied', 'download_url_issued')),
  constraint download_audit_result_check check (result in ('allowed', 'denied', 'error')),
  constraint download_audit_metadata_check check (jsonb_typeof(metadata) = 'object'),
  constraint download_audit_tenant_id_check check (tenant_id <> '')
);
create index if not exists download_audit_tenant_id_idx on botmox.download_audit (tenant_id, id desc);
create index if not exists download_audit_tenant_lease_idx
  on botmox.download_audit (tenant_id, lease_id, id desc);
