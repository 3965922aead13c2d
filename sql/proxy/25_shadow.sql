-- The shadow analyses across partitions (issue 17): at the proxy,
-- bayes.shadow_pairs and bayes.evaluate_policy replace the single node's
-- with the same signatures, results and grants. The pairs are one row per
-- message, each on the partition of its player: the proxy unions every
-- partition's pairs (RUN ON ALL), computed there, where the event log and
-- its indexes are. A replay is per player: each partition replays its
-- shadow players, and the proxy adds up the reports' counts and computes the
-- shares from the sums (never an average of the partitions' shares).
-- bayes.shadow_report, SQL over these two, is the single node's, unchanged.
--
-- Without this file the single node's functions would still give the same
-- results at the proxy, reading the gathered bayes.player_event
-- (sql/proxy/22_views.sql), but every call would bring the whole event log
-- to the proxy (and evaluate_policy would read it once per player). A
-- functions migration that carries sql/functions/88_shadow.sql puts the
-- single node's back; scripts/stack applies this file again after it.

create or replace function bayes_remote.shadow_pairs(
    p_role text, p_claims text, p_from timestamptz, p_to timestamptz
)
returns table (
    user_id uuid,
    message_id text,
    sent_at timestamptz,
    sample text,
    n integer,
    features text[],
    engine_evidence double precision[],
    llm_evidence double precision[],
    engine_vices double precision[],
    llm_vices jsonb,
    engine_mood text,
    llm_mood text
)
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    target bayes_partition.shadow_pairs;
$$;

comment on function bayes_remote.shadow_pairs is
'Every partition''s bayes.shadow_pairs(p_from, p_to), as API role p_role with JWT claims p_claims (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.shadow_pairs from public;

create or replace function bayes.shadow_pairs(
    p_from timestamptz default null,
    p_to timestamptz default null
)
returns table (
    user_id uuid,
    message_id text,
    sent_at timestamptz,
    sample text,
    n integer,
    features text[],
    engine_evidence double precision[],
    llm_evidence double precision[],
    engine_vices double precision[],
    llm_vices jsonb,
    engine_mood text,
    llm_mood text
)
language plpgsql
stable
-- Definer: only it may pass a role and claims to the partitions
-- (bayes_remote); the caller's own are read from his session
-- (bayes_remote.reader_role), and EXECUTE is granted as on a single node.
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_role text := bayes_remote.reader_role('bayes.player_event');
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
begin
    if v_role is not null then
        return query
        select * from bayes_remote.shadow_pairs(v_role, current_setting('request.jwt.claims', true), p_from, p_to);
    end if;
exception when others then
    get stacked diagnostics
        v_sqlstate = returned_sqlstate, v_message = message_text,
        v_detail = pg_exception_detail, v_hint = pg_exception_hint;
    perform bayes_remote.raise_partition_error(v_sqlstate, v_message, v_detail, v_hint);
end
$$;

comment on function bayes.shadow_pairs is
'The partitioned mode''s bayes.shadow_pairs (issue 17): every partition''s pairs of the messages sent in [p_from, p_to) (RUN ON ALL), the rows a single node holding all the players gives; read as the caller reads bayes.player_event. The columns as on a single node: sample shadow or audit, arrays in metric order intimacy, passion, trust, secureness (engine_evidence = plus - minus, llm_evidence = the LLM''s delta / 10), the 8 vice increments, the moods.';

create or replace function bayes_remote.evaluate_policy(
    p_role text, p_claims text, p_overrides jsonb, p_users uuid[], p_from timestamptz, p_to timestamptz
)
returns setof jsonb
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    target bayes_partition.evaluate_policy;
$$;

comment on function bayes_remote.evaluate_policy is
'Every partition''s bayes.evaluate_policy report over its own shadow players, as API role p_role with JWT claims p_claims (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.evaluate_policy from public;

-- The reports of evaluate_policy added up: the counts summed, the shares
-- computed from the sums (a mean absolute difference times its count is the
-- partition's sum of differences), in double precision, as the engine
-- computes them. NULL where nothing was counted, as the engine reports.
create or replace function bayes_remote.combine_policy_reports(p_reports jsonb[], p_overrides jsonb)
returns jsonb
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    with r as (
        select x.report from unnest(p_reports) as x (report)
    ),

    f as (
        select
            sum((r.report #>> '{fidelity,compared}')::bigint) as compared,
            sum(round(
                (r.report #>> '{fidelity,boss_ready_agreement}')::float8 * (r.report #>> '{fidelity,compared}')::bigint
            )) as agree,
            sum(round(
                (r.report #>> '{fidelity,reference_ready_share}')::float8 * (r.report #>> '{fidelity,compared}')::bigint
            )) as reference_ready,
            sum((r.report #>> '{fidelity,composite_mad}')::float8 * (r.report #>> '{fidelity,compared}')::bigint)
                as composite,
            sum((r.report #>> '{fidelity,p_ready_mad}')::float8 * (r.report #>> '{fidelity,compared}')::bigint)
                as p_ready,
            max((r.report #>> '{fidelity,after_message}')::bigint) as after_message
        from r
    ),

    t as (
        select
            sum((r.report ->> 'players')::bigint) as players,
            sum((r.report ->> 'messages')::bigint) as messages,
            sum((r.report ->> 'llm_calls')::bigint) as calls,
            sum((r.report ->> 'unanswered')::bigint) as unanswered
        from r
    ),

    b as (
        select
            x.ord,
            min(x.bucket ->> 'messages') as label,
            sum((x.bucket ->> 'count')::bigint) as messages,
            sum((x.bucket ->> 'llm_calls')::bigint) as calls
        from r
        cross join lateral jsonb_array_elements(r.report -> 'buckets') with ordinality as x (bucket, ord)
        group by x.ord
    ),

    reasons as (
        select x.key, sum(x.value::bigint) as n
        from r
        cross join lateral jsonb_each_text(r.report -> 'reasons') as x
        group by x.key
    )

    select jsonb_build_object(
        'players', t.players,
        'messages', t.messages,
        'llm_calls', t.calls,
        'lifetime_rate', t.calls::float8 / nullif(t.messages, 0)::float8,
        'buckets', (
            select coalesce(jsonb_agg(
                jsonb_build_object(
                    'messages', b.label, 'count', b.messages, 'llm_calls', b.calls,
                    'rate', b.calls::float8 / nullif(b.messages, 0)::float8
                )
                order by b.ord
            ), '[]')
            from b
        ),
        'reasons', coalesce((select jsonb_object_agg(reasons.key, reasons.n) from reasons), '{}'),
        'unanswered', t.unanswered,
        'fidelity', jsonb_build_object(
            'compared', f.compared,
            'after_message', f.after_message,
            'boss_ready_agreement', f.agree::float8 / nullif(f.compared, 0)::float8,
            'composite_mad', f.composite / nullif(f.compared, 0)::float8,
            'p_ready_mad', f.p_ready / nullif(f.compared, 0)::float8,
            'reference_ready_share', f.reference_ready::float8 / nullif(f.compared, 0)::float8
        ),
        'overrides', coalesce(p_overrides, '{}')
    )
    from t, f
$$;

comment on function bayes_remote.combine_policy_reports is
'One bayes.evaluate_policy report from the partitions'' reports (issue 17): players, messages, LLM calls, reasons, buckets and the fidelity counts summed; every rate, share and mean difference computed from the sums.';
revoke all on function bayes_remote.combine_policy_reports from public;

create or replace function bayes.evaluate_policy(
    p_overrides jsonb default '{}',
    p_users uuid[] default null,
    p_from timestamptz default null,
    p_to timestamptz default null
)
returns jsonb
language plpgsql
stable
-- Definer: only it may pass a role and claims to the partitions
-- (bayes_remote); the caller's own are read from his session
-- (bayes_remote.reader_role), and EXECUTE is granted as on a single node.
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_role text := bayes_remote.reader_role('bayes.player_event');
    v_users uuid[] := p_users;
    v_reports jsonb[];
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
begin
    if v_role is null then
        -- A role that reads no event (it does not bypass row-level security):
        -- the engine's report over no player, as a single node gives him.
        v_role := 'service_role';
        v_users := '{}';
    end if;
    select array_agg(r.report) into v_reports
    from bayes_remote.evaluate_policy(
        v_role, current_setting('request.jwt.claims', true), p_overrides, v_users, p_from, p_to
    ) as r (report);
    return bayes_remote.combine_policy_reports(v_reports, p_overrides);
exception when others then
    -- a partition's error (22023 for an override the engine refuses) as a
    -- single node raises it, without PL/Proxy's prefixes
    get stacked diagnostics
        v_sqlstate = returned_sqlstate, v_message = message_text,
        v_detail = pg_exception_detail, v_hint = pg_exception_hint;
    perform bayes_remote.raise_partition_error(v_sqlstate, v_message, v_detail, v_hint);
    return null;  -- not reached: raise_partition_error raises
end
$$;

comment on function bayes.evaluate_policy is
'The partitioned mode''s bayes.evaluate_policy (issue 17): each partition replays its own shadow players (all, or those of p_users) under the stored parameters with p_overrides, over the shadow messages sent in [p_from, p_to); the reports'' counts are summed and the rates, agreement and mean differences computed from the sums (bayes_remote.combine_policy_reports): the report a single node holding all the players gives. Read as the caller reads bayes.player_event.';
