-- The proxy's read RPCs (issue 17): bayes_get_state, bayes_boss_readiness,
-- bayes_fallback_check, as sql/proxy/11_rpc_writers.sql does the writers.

create or replace function bayes_remote.bayes_get_state(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid
)
returns jsonb
language plproxy
-- PL/Proxy functions must be volatile; the public RPC says what it is.
volatile
security invoker
-- The settings of every PL/Proxy function (see the head of sql/proxy/10_rpc.sql).
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
set extra_float_digits = 3
set client_min_messages = 'warning'
as $$
    cluster 'bayes_partitions';
    run on hashtext(p_user_id::text);
    target bayes_partition.bayes_get_state;
$$;

comment on function bayes_remote.bayes_get_state is
'Runs bayes_partition.bayes_get_state on the partition of p_user_id (issue 17).';
revoke all on function bayes_remote.bayes_get_state from public;

create or replace function public.bayes_get_state(
    p_user_id uuid
)
returns jsonb
language plpgsql
stable
-- Definer: so that no API role may execute bayes_remote, where the role and
-- the claims a partition acts with are arguments; the caller's role is read
-- from the role setting (bayes_remote.caller_role), its claims from
-- request.jwt.claims, its seed from bayes.seed, its TimeZone (the answer's
-- instants are written with its offset, as on a single node) from timezone;
-- EXECUTE on this function is granted as on a single node.
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
begin
    v_checked := bayes.check_not_null(p_user_id, 'p_user_id');
    begin
        return bayes_remote.bayes_get_state(
            bayes_remote.caller_role(),
            current_setting('request.jwt.claims', true),
            current_setting('bayes.seed', true),
            current_setting('timezone'),
            p_user_id
        );
    exception when others then
        get stacked diagnostics
            v_sqlstate = returned_sqlstate, v_message = message_text,
            v_detail = pg_exception_detail, v_hint = pg_exception_hint;
        perform bayes_remote.raise_partition_error(v_sqlstate, v_message, v_detail, v_hint);
    end;
    return null;  -- not reached: raise_partition_error raises
end
$$;

comment on function public.bayes_get_state is
'The single node''s public.bayes_get_state on the partitioned mode (issue 17): the same arguments, result and errors, run on the partition of p_user_id as the caller''s API role with the caller''s JWT claims.';
revoke all on function public.bayes_get_state from public, anon, authenticated, service_role;
grant execute on function public.bayes_get_state to authenticated, service_role;

create or replace function bayes_remote.bayes_boss_readiness(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_method text
)
returns jsonb
language plproxy
-- PL/Proxy functions must be volatile; the public RPC says what it is.
volatile
security invoker
-- The settings of every PL/Proxy function (see the head of sql/proxy/10_rpc.sql).
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
set extra_float_digits = 3
set client_min_messages = 'warning'
as $$
    cluster 'bayes_partitions';
    run on hashtext(p_user_id::text);
    target bayes_partition.bayes_boss_readiness;
$$;

comment on function bayes_remote.bayes_boss_readiness is
'Runs bayes_partition.bayes_boss_readiness on the partition of p_user_id (issue 17).';
revoke all on function bayes_remote.bayes_boss_readiness from public;

create or replace function public.bayes_boss_readiness(
    p_user_id uuid,
    p_method text default 'edgeworth'
)
returns jsonb
language plpgsql
stable
-- Definer: so that no API role may execute bayes_remote, where the role and
-- the claims a partition acts with are arguments; the caller's role is read
-- from the role setting (bayes_remote.caller_role), its claims from
-- request.jwt.claims, its seed from bayes.seed, its TimeZone (the answer's
-- instants are written with its offset, as on a single node) from timezone;
-- EXECUTE on this function is granted as on a single node.
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
begin
    v_checked := bayes.check_readiness_method(p_method);
    v_checked := bayes.check_not_null(p_user_id, 'p_user_id');
    begin
        return bayes_remote.bayes_boss_readiness(
            bayes_remote.caller_role(),
            current_setting('request.jwt.claims', true),
            current_setting('bayes.seed', true),
            current_setting('timezone'),
            p_user_id, p_method
        );
    exception when others then
        get stacked diagnostics
            v_sqlstate = returned_sqlstate, v_message = message_text,
            v_detail = pg_exception_detail, v_hint = pg_exception_hint;
        perform bayes_remote.raise_partition_error(v_sqlstate, v_message, v_detail, v_hint);
    end;
    return null;  -- not reached: raise_partition_error raises
end
$$;

comment on function public.bayes_boss_readiness is
'The single node''s public.bayes_boss_readiness on the partitioned mode (issue 17): the same arguments, result and errors, run on the partition of p_user_id as the caller''s API role with the caller''s JWT claims.';
revoke all on function public.bayes_boss_readiness from public, anon, authenticated, service_role;
grant execute on function public.bayes_boss_readiness to authenticated, service_role;

create or replace function bayes_remote.bayes_fallback_check(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid
)
returns jsonb
language plproxy
-- PL/Proxy functions must be volatile; the public RPC says what it is.
volatile
security invoker
-- The settings of every PL/Proxy function (see the head of sql/proxy/10_rpc.sql).
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
set extra_float_digits = 3
set client_min_messages = 'warning'
as $$
    cluster 'bayes_partitions';
    run on hashtext(p_user_id::text);
    target bayes_partition.bayes_fallback_check;
$$;

comment on function bayes_remote.bayes_fallback_check is
'Runs bayes_partition.bayes_fallback_check on the partition of p_user_id (issue 17).';
revoke all on function bayes_remote.bayes_fallback_check from public;

create or replace function public.bayes_fallback_check(
    p_user_id uuid
)
returns jsonb
language plpgsql
stable
-- Definer: so that no API role may execute bayes_remote, where the role and
-- the claims a partition acts with are arguments; the caller's role is read
-- from the role setting (bayes_remote.caller_role), its claims from
-- request.jwt.claims, its seed from bayes.seed, its TimeZone (the answer's
-- instants are written with its offset, as on a single node) from timezone;
-- EXECUTE on this function is granted as on a single node.
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
begin
    v_checked := bayes.check_not_null(p_user_id, 'p_user_id');
    begin
        return bayes_remote.bayes_fallback_check(
            bayes_remote.caller_role(),
            current_setting('request.jwt.claims', true),
            current_setting('bayes.seed', true),
            current_setting('timezone'),
            p_user_id
        );
    exception when others then
        get stacked diagnostics
            v_sqlstate = returned_sqlstate, v_message = message_text,
            v_detail = pg_exception_detail, v_hint = pg_exception_hint;
        perform bayes_remote.raise_partition_error(v_sqlstate, v_message, v_detail, v_hint);
    end;
    return null;  -- not reached: raise_partition_error raises
end
$$;

comment on function public.bayes_fallback_check is
'The single node''s public.bayes_fallback_check on the partitioned mode (issue 17): the same arguments, result and errors, run on the partition of p_user_id as the caller''s API role with the caller''s JWT claims.';
revoke all on function public.bayes_fallback_check from public, anon, authenticated, service_role;
grant execute on function public.bayes_fallback_check to authenticated, service_role;
