-- The proxy's RPCs (issue 17): the public RPCs of a single node, with the
-- same names, arguments, defaults, results and errors, each routed by PL/Proxy
-- to the partition of its player (RUN ON hashtext(p_user_id::text)), where
-- bayes_partition.<rpc> runs the single node's RPC as the caller's API role
-- with the caller's JWT claims (sql/functions/95_partition.sql).
--
-- Applied by scripts/stack to the proxy after supabase/migrations (whose
-- public.bayes_* it replaces), in one transaction, again after every migration.
--
-- The settings of every PL/Proxy function (bayes_remote.bayes_*): arguments
-- travel as text, written by the proxy's session, so it writes them in ISO
-- and UTC whatever the caller's session says (another DateStyle swaps day
-- and month: 03/11/2026 is read as March 11), and a double precision with
-- all its digits (at a caller's extra_float_digits 0 or below, 1/3 would
-- reach the partition as 0.333333333333333). PL/Proxy's own notices stay in
-- the proxy (client_min_messages warning; a single node sends none): the
-- NOTICE "PL/Proxy: dropping stale conn" of the call after a partition's
-- error (PL/Proxy leaves that connection mid-query and opens a new one).

create schema if not exists bayes_remote;
comment on schema bayes_remote is
'The PL/Proxy functions of the partitioned mode (issue 17): each runs on the partitions of server bayes_partitions. Executable by no API role: the public RPCs call them.';
revoke all on schema bayes_remote from public;

-- Which API role a partition acts as for the caller of a proxy RPC. Read in
-- a security definer function (where current_user is its owner): the role
-- setting is what SET ROLE chose (PostgREST: the JWT's role), 'none' for a
-- login that set none. A caller that is neither anon nor authenticated and
-- may execute the RPC here (service_role, postgres, a role granted EXECUTE)
-- is the backend, as on a single node: service_role on the partition.
-- PL/pgSQL, not SQL: a SQL function with a SET clause is not inlined and is
-- parsed and planned again in every transaction that calls it (45-60 us a
-- call, measured by scripts/bench --only partitions); PL/pgSQL keeps its
-- plan for the session.
create or replace function bayes_remote.caller_role()
returns text
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    return case current_setting('role')
        when 'anon' then 'anon'
        when 'authenticated' then 'authenticated'
        else 'service_role'
    end;
end
$$;

comment on function bayes_remote.caller_role is
'The API role a partition acts as for this caller (issue 17): anon or authenticated when SET ROLE chose them, service_role for any other caller allowed to execute the RPC.';
revoke all on function bayes_remote.caller_role from public;

-- Raises a partition's error as the single node would have raised it: the
-- same SQLSTATE, message, detail and hint, without PL/Proxy's prefixes
-- ("<function>(<n>): [<database>] REMOTE ERROR: ", "Remote detail: ",
-- "Remote hint: "). Through bayes.raise_error, so that a P0002 is a 404
-- through PostgREST, as on a single node.
create or replace function bayes_remote.raise_partition_error(
    p_sqlstate text, p_message text, p_detail text, p_hint text
)
returns void
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_message text := regexp_replace(p_message, '^\S+\(\d+\): \[[^]]*\] REMOTE [A-Z]+: ', '');
    v_detail text := nullif(regexp_replace(coalesce(p_detail, ''), '^Remote detail: ', ''), '');
    v_hint text := nullif(regexp_replace(coalesce(p_hint, ''), '^Remote hint: ', ''), '');
begin
    if v_detail is null then
        perform bayes.raise_error(p_sqlstate, v_message, v_hint);
    end if;
    if v_hint is null then
        raise exception using errcode = p_sqlstate, message = v_message, detail = v_detail;
    end if;
    raise exception using errcode = p_sqlstate, message = v_message, detail = v_detail, hint = v_hint;
end
$$;

comment on function bayes_remote.raise_partition_error is
'Raises a partition''s error with its SQLSTATE, message, detail and hint as the single node raises them (PL/Proxy''s prefixes removed).';
revoke all on function bayes_remote.raise_partition_error from public;
