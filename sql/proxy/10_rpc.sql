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

create or replace function bayes_remote.bayes_process_message(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_message text,
    p_sent_at timestamptz,
    p_message_id text,
    p_reply_gap_s double precision,
    p_topic_changed boolean
)
returns jsonb
language plproxy
volatile
security invoker
-- The settings of every PL/Proxy function (see the head of this file).
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
set extra_float_digits = 3
set client_min_messages = 'warning'
as $$
    cluster 'bayes_partitions';
    run on hashtext(p_user_id::text);
    target bayes_partition.bayes_process_message;
$$;

comment on function bayes_remote.bayes_process_message is
'Runs bayes_partition.bayes_process_message on the partition of p_user_id (issue 17).';
revoke all on function bayes_remote.bayes_process_message from public;

create or replace function public.bayes_process_message(
    p_user_id uuid,
    p_message text,
    p_sent_at timestamptz default now(),
    p_message_id text default null,
    p_reply_gap_s double precision default null,
    p_topic_changed boolean default null
)
returns jsonb
language plpgsql
volatile
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
        return bayes_remote.bayes_process_message(
            bayes_remote.caller_role(),
            current_setting('request.jwt.claims', true),
            current_setting('bayes.seed', true),
            current_setting('timezone'),
            p_user_id, p_message, p_sent_at, p_message_id, p_reply_gap_s, p_topic_changed
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

comment on function public.bayes_process_message is
'The single node''s public.bayes_process_message on the partitioned mode (issue 17): the same arguments, result and errors, run on the partition of p_user_id as the caller''s API role with the caller''s JWT claims.';
revoke all on function public.bayes_process_message from public, anon, authenticated, service_role;
grant execute on function public.bayes_process_message to service_role;

create or replace function bayes_remote.bayes_apply_llm_scores(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_deltas jsonb,
    p_message_id text,
    p_vices jsonb,
    p_mood text
)
returns jsonb
language plproxy
volatile
security invoker
-- The settings of every PL/Proxy function (see the head of this file).
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
set extra_float_digits = 3
set client_min_messages = 'warning'
as $$
    cluster 'bayes_partitions';
    run on hashtext(p_user_id::text);
    target bayes_partition.bayes_apply_llm_scores;
$$;

comment on function bayes_remote.bayes_apply_llm_scores is
'Runs bayes_partition.bayes_apply_llm_scores on the partition of p_user_id (issue 17).';
revoke all on function bayes_remote.bayes_apply_llm_scores from public;

create or replace function public.bayes_apply_llm_scores(
    p_user_id uuid,
    p_deltas jsonb,
    p_message_id text default null,
    p_vices jsonb default null,
    p_mood text default null
)
returns jsonb
language plpgsql
volatile
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
        return bayes_remote.bayes_apply_llm_scores(
            bayes_remote.caller_role(),
            current_setting('request.jwt.claims', true),
            current_setting('bayes.seed', true),
            current_setting('timezone'),
            p_user_id, p_deltas, p_message_id, p_vices, p_mood
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

comment on function public.bayes_apply_llm_scores is
'The single node''s public.bayes_apply_llm_scores on the partitioned mode (issue 17): the same arguments, result and errors, run on the partition of p_user_id as the caller''s API role with the caller''s JWT claims.';
revoke all on function public.bayes_apply_llm_scores from public, anon, authenticated, service_role;
grant execute on function public.bayes_apply_llm_scores to service_role;

create or replace function bayes_remote.bayes_record_outcome(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_decision text,
    p_engaged boolean
)
returns jsonb
language plproxy
volatile
security invoker
-- The settings of every PL/Proxy function (see the head of this file).
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
set extra_float_digits = 3
set client_min_messages = 'warning'
as $$
    cluster 'bayes_partitions';
    run on hashtext(p_user_id::text);
    target bayes_partition.bayes_record_outcome;
$$;

comment on function bayes_remote.bayes_record_outcome is
'Runs bayes_partition.bayes_record_outcome on the partition of p_user_id (issue 17).';
revoke all on function bayes_remote.bayes_record_outcome from public;

create or replace function public.bayes_record_outcome(
    p_user_id uuid,
    p_decision text,
    p_engaged boolean
)
returns jsonb
language plpgsql
volatile
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
        return bayes_remote.bayes_record_outcome(
            bayes_remote.caller_role(),
            current_setting('request.jwt.claims', true),
            current_setting('bayes.seed', true),
            current_setting('timezone'),
            p_user_id, p_decision, p_engaged
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

comment on function public.bayes_record_outcome is
'The single node''s public.bayes_record_outcome on the partitioned mode (issue 17): the same arguments, result and errors, run on the partition of p_user_id as the caller''s API role with the caller''s JWT claims.';
revoke all on function public.bayes_record_outcome from public, anon, authenticated, service_role;
grant execute on function public.bayes_record_outcome to service_role;

create or replace function bayes_remote.bayes_advance_chapter(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_chapter integer
)
returns jsonb
language plproxy
volatile
security invoker
-- The settings of every PL/Proxy function (see the head of this file).
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
set extra_float_digits = 3
set client_min_messages = 'warning'
as $$
    cluster 'bayes_partitions';
    run on hashtext(p_user_id::text);
    target bayes_partition.bayes_advance_chapter;
$$;

comment on function bayes_remote.bayes_advance_chapter is
'Runs bayes_partition.bayes_advance_chapter on the partition of p_user_id (issue 17).';
revoke all on function bayes_remote.bayes_advance_chapter from public;

create or replace function public.bayes_advance_chapter(
    p_user_id uuid,
    p_chapter integer
)
returns jsonb
language plpgsql
volatile
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
        return bayes_remote.bayes_advance_chapter(
            bayes_remote.caller_role(),
            current_setting('request.jwt.claims', true),
            current_setting('bayes.seed', true),
            current_setting('timezone'),
            p_user_id, p_chapter
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

comment on function public.bayes_advance_chapter is
'The single node''s public.bayes_advance_chapter on the partitioned mode (issue 17): the same arguments, result and errors, run on the partition of p_user_id as the caller''s API role with the caller''s JWT claims.';
revoke all on function public.bayes_advance_chapter from public, anon, authenticated, service_role;
grant execute on function public.bayes_advance_chapter to service_role;

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
-- The settings of every PL/Proxy function (see the head of this file).
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
-- The settings of every PL/Proxy function (see the head of this file).
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
-- The settings of every PL/Proxy function (see the head of this file).
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
