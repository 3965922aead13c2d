-- The proxy's writer RPCs (issue 17): bayes_process_message,
-- bayes_apply_llm_scores, bayes_record_outcome, bayes_advance_chapter, each a
-- PL/Proxy function bayes_remote.<rpc> and the public wrapper with the single
-- node's signature (sql/proxy/10_rpc.sql says how, and the settings every
-- PL/Proxy function pins).

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
-- The settings of every PL/Proxy function (see the head of sql/proxy/10_rpc.sql).
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
-- The settings of every PL/Proxy function (see the head of sql/proxy/10_rpc.sql).
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
-- The settings of every PL/Proxy function (see the head of sql/proxy/10_rpc.sql).
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
-- The settings of every PL/Proxy function (see the head of sql/proxy/10_rpc.sql).
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
