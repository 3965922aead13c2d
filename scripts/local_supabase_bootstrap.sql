-- What a Supabase project already has, recreated on a plain local PostgreSQL:
-- the API roles, the auth schema with auth.users and the JWT helpers, the
-- extensions schema, and Supabase's default privileges on schema public.
--
-- FOR LOCAL CLUSTERS AND TESTS ONLY. It is never part of supabase/migrations:
-- a Supabase project (hosted or self-hosted) has all of this already.
-- Idempotent: safe to run on every `scripts/stack up`.
-- Run as a superuser with psql, variable authenticator_password set.

\set ON_ERROR_STOP on

do $bootstrap$
begin
  if not exists (select from pg_roles where rolname = 'anon') then
    create role anon nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticated') then
    create role authenticated nologin noinherit;
  end if;
  if not exists (select from pg_roles where rolname = 'service_role') then
    create role service_role nologin noinherit bypassrls;
  end if;
  if not exists (select from pg_roles where rolname = 'authenticator') then
    create role authenticator login noinherit;
  end if;
end
$bootstrap$;

alter role authenticator with password :'authenticator_password';
grant anon, authenticated, service_role to authenticator;

-- PostgREST's settings live on the role it connects as, as on Supabase.
alter role authenticator set statement_timeout = '8s';
alter role anon set statement_timeout = '3s';
alter role authenticated set statement_timeout = '8s';

create schema if not exists extensions;
grant usage on schema extensions to anon, authenticated, service_role;

create schema if not exists auth;
grant usage on schema auth to anon, authenticated, service_role;

create table if not exists auth.users (
  id uuid primary key,
  email text unique,
  raw_user_meta_data jsonb not null default '{}'::jsonb,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

-- The JWT helpers, as Supabase defines them: PostgREST puts the verified
-- claims into request.jwt.claims (older versions: request.jwt.claim.<name>).
create or replace function auth.uid() returns uuid
language sql stable
set search_path = ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.sub', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
  )::uuid
$$;

create or replace function auth.role() returns text
language sql stable
set search_path = ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim.role', true), ''),
    (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'role')
  )::text
$$;

create or replace function auth.jwt() returns jsonb
language sql stable
set search_path = ''
as $$
  select coalesce(
    nullif(current_setting('request.jwt.claim', true), ''),
    nullif(current_setting('request.jwt.claims', true), '')
  )::jsonb
$$;

grant execute on function auth.uid(), auth.role(), auth.jwt()
to anon, authenticated, service_role;

-- Supabase's default privileges: everything created in public by postgres is
-- granted to the API roles unless a migration revokes it. The project's
-- migrations must therefore revoke explicitly; keeping this here proves they do.
grant usage on schema public to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on tables to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on functions to anon, authenticated, service_role;
alter default privileges for role postgres in schema public
grant all on sequences to anon, authenticated, service_role;

-- Supabase puts the extensions schema on the database's search_path.
do $search_path$
begin
  execute format('alter database %I set search_path to "$user", public, extensions', current_database());
end
$search_path$;
