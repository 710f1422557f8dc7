-- botmox: make a plain PostgreSQL look like Supabase where the botmox schema needs it.
--
-- On Supabase every object below already exists and each block is a no-op. On plain PostgreSQL
-- (self-hosted, tests) it creates the Supabase roles and an auth.jwt() that reads the request's
-- JWT claims from the `request.jwt.claims` setting exactly as Supabase's PostgREST sets them.
-- Creating roles needs CREATEROLE (and BYPASSRLS for service_role: a superuser) on plain
-- PostgreSQL.

do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select 1 from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
end
$$;

do $$
begin
  if not exists (select 1 from pg_namespace where nspname = 'auth') then
    create schema auth;
    grant usage on schema auth to anon, authenticated, service_role;
  end if;
  if to_regprocedure('auth.jwt()') is null then
    create function auth.jwt() returns jsonb
      language sql stable
      as $fn$
        select coalesce(
          nullif(current_setting('request.jwt.claim', true), ''),
          nullif(current_setting('request.jwt.claims', true), '')
        )::jsonb
      $fn$;
    grant execute on function auth.jwt() to anon, authenticated, service_role;
  end if;
end
$$;
