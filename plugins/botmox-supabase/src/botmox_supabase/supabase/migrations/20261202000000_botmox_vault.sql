-- botmox: the secret vault (issue 12): secrets (metadata), their versions (the stored envelopes)
-- and bindings (secret_ref from a scope's field), per tenant, with row-level security like every
-- other botmox table.
--
-- * The server never sees plaintext: `envelope` holds the client's sealed envelope as its wire
--   document (botmox_core.vault.envelopes.envelope_document), ciphertext the server never opens.
--   It is NULL once retention dropped it (the version's metadata stays).
-- * Secret ids are canonical UUID text, unique per tenant; `id` is COLLATE "C" so the primary key
--   orders them by code point (the scan order).
-- * A version belongs to a secret of the same tenant, and a binding's secret_ref is a secret of
--   the same tenant: both are composite foreign keys on (tenant_id, id).
-- * Nobody but the server writes; authenticated users read their tenant's metadata. The
--   `envelope` column is not granted to them (like api_tokens.token_hash): no tenant-facing path
--   returns ciphertext or nonce.

create table if not exists botmox.vault_secrets (
  tenant_id   text              not null,
  id          text collate "C"  not null,
  label       text              not null,
  alg         text              not null,
  version     integer           not null,
  key_id      text,
  recipients  jsonb             not null default '[]'::jsonb,
  aad_meta    jsonb             not null default '{}'::jsonb,
  created_at  timestamptz       not null,
  updated_at  timestamptz       not null,
  rotated_at  timestamptz,
  created_by  text,
  constraint vault_secrets_pkey primary key (tenant_id, id),
  constraint vault_secrets_id_check
    check (id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'),
  constraint vault_secrets_tenant_id_check check (tenant_id <> '' and octet_length(tenant_id) <= 256),
  constraint vault_secrets_label_check check (char_length(label) between 1 and 200),
  constraint vault_secrets_alg_check
    check (alg in ('hpke-x25519-hkdf-sha256-chacha20poly1305', 'aes-256-gcm')),
  constraint vault_secrets_version_check check (version >= 1),
  constraint vault_secrets_recipients_check check (jsonb_typeof(recipients) = 'array'),
  constraint vault_secrets_aad_meta_check check (jsonb_typeof(aad_meta) = 'object')
);

create table if not exists botmox.vault_secret_versions (
  tenant_id   text              not null,
  secret_id   text collate "C"  not null,
  version     integer           not null,
  alg         text              not null,
  recipients  jsonb             not null default '[]'::jsonb,
  key_id      text,
  created_at  timestamptz       not null,
  created_by  text,
  envelope    jsonb,
  constraint vault_secret_versions_pkey primary key (tenant_id, secret_id, version),
  constraint vault_secret_versions_secret_fkey foreign key (tenant_id, secret_id)
    references botmox.vault_secrets (tenant_id, id) on delete cascade,
  constraint vault_secret_versions_version_check check (version >= 1),
  constraint vault_secret_versions_alg_check
    check (alg in ('hpke-x25519-hkdf-sha256-chacha20poly1305', 'aes-256-gcm')),
  constraint vault_secret_versions_recipients_check check (jsonb_typeof(recipients) = 'array'),
  constraint vault_secret_versions_envelope_check
    check (envelope is null or jsonb_typeof(envelope) = 'object')
);

create table if not exists botmox.vault_bindings (
  tenant_id   text              not null,
  scope_type  text              not null,
  scope_id    text              not null,
  field_name  text              not null,
  id          text collate "C"  not null,
  secret_ref  text collate "C"  not null,
  created_at  timestamptz       not null,
  updated_at  timestamptz       not null,
  constraint vault_bindings_pkey primary key (tenant_id, scope_type, scope_id, field_name),
  constraint vault_bindings_secret_fkey foreign key (tenant_id, secret_ref)
    references botmox.vault_secrets (tenant_id, id) on delete cascade,
  constraint vault_bindings_scope_type_check
    check (scope_type in ('bot', 'vm', 'vm_settings', 'agent', 'tenant')),
  constraint vault_bindings_scope_id_check check (scope_id ~ '^[^\x01-\x1f\x7f]{1,200}$'),
  constraint vault_bindings_field_name_check check (field_name ~ '^[^\x01-\x1f\x7f]{1,200}$')
);
-- The list order (created_at desc, id) and the secret_ref filter.
create index if not exists vault_bindings_tenant_time_idx
  on botmox.vault_bindings (tenant_id, created_at desc, id);
create index if not exists vault_bindings_tenant_secret_idx
  on botmox.vault_bindings (tenant_id, secret_ref);

-- Row-level security, exactly like the other tables (see 20261124000200): authenticated users
-- read their tenant's rows, nobody but the server writes.
do $$
declare
  t text;
begin
  foreach t in array array['vault_secrets', 'vault_secret_versions', 'vault_bindings'] loop
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
    if t <> 'vault_secret_versions' then
      execute format('grant select on botmox.%I to authenticated', t);
    end if;
  end loop;
end
$$;

-- Envelopes are ciphertext: authenticated users may read a version's metadata, not its envelope.
grant select (tenant_id, secret_id, version, alg, recipients, key_id, created_at, created_by)
  on botmox.vault_secret_versions to authenticated;
