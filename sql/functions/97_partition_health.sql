-- The partition's side of the health signals in the partitioned mode
-- (issue 17): what the proxy's bayes.health (sql/proxy/30_health.sql)
-- gathers from every partition with PL/Proxy's RUN ON ALL and combines.
--
-- A partition does not compute its own signals for the proxy (a ratio, a
-- percentile or a mean of one partition cannot be combined with another's):
-- it returns the parts each signal is made of, in a form the proxy adds up
-- exactly (sql/proxy/30_health.sql says how each signal is combined):
--
--   window    per window: the counts behind every ratio (numerators and
--             denominators), and the sum and number of the posterior
--             variances of the players who wrote in it;
--   latency   per window: how many messages took each db_time_us (an exact
--             histogram: the proxy's percentiles are those of the union of
--             the partitions' messages, as one log would give them);
--   pair      the newest health_agreement_pairs shadow and audit pairs of
--             the agreement window, with the packed message and answer (the
--             proxy keeps the newest of all partitions' and compares them);
--   instant   the lags (computed at the proxy's instant) and the sizes.
--
-- Every window is found with this partition's own bayes.event_id_at and
-- measured against the proxy's instant p_now (recorded_at is this
-- partition's clock: docs/operations.md says what a skew between hosts does).
-- The engine's parameters that the signals read (cold_start_messages,
-- event_retention_days) are this partition's, as its own jobs use them.
--
-- Called by the proxy as role bayes_proxy only; it reads as service_role,
-- as bayes.health does on a single node.

create or replace function bayes_partition.health_parts(
    p_now timestamptz,
    p_windows_s integer[],
    p_agreement_since timestamptz,
    p_agreement_pairs bigint
)
returns table (
    partition_index integer,
    kind text,
    window_s integer,
    messages bigint,
    granted bigint,
    budgeted bigint,
    refused bigint,
    observed bigint,
    no_signal bigint,
    timed bigint,
    outcome_hits bigint[],
    players bigint,
    variance_sum double precision,
    db_time_us integer,
    decay_lag_s double precision,
    retention_lag_s double precision,
    event_log_bytes bigint,
    state_table_bytes bigint,
    recorded_at timestamptz,
    event_id bigint,
    sample text,
    message bytea,
    answer bytea
)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
-- the latency histogram groups the window's times: in memory
set work_mem = '64MB'
as $$
declare
    v_index integer;
begin
    -- read as the backend reads its health (until this function returns: its
    -- SET clause reverts the setting)
    perform set_config('role', 'service_role', true);
    v_index := (select p.partition_index from bayes.partition as p);
    if v_index is null then
        perform bayes.raise_error('55000', 'this database is not a partition (bayes.partition is empty)');
    end if;
    if p_now is null or p_windows_s is null or p_agreement_since is null or p_agreement_pairs is null then
        perform bayes.raise_error('22004', 'p_now, p_windows_s, p_agreement_since and p_agreement_pairs must not be null');
    end if;

    return query
    with windows as materialized (
        select
            w.window_s,
            p_now - make_interval(secs => w.window_s) as since,
            bayes.event_id_at(p_now - make_interval(secs => w.window_s)) as first_id
        from unnest(p_windows_s) as w (window_s)
    ),

    -- the messages of the longest window, read once by primary key range
    -- (bayes.health's, with p_now for now())
    messages as materialized (
        select
            e.user_id,
            e.recorded_at,
            e.fallback_reason,
            e.fallback_needed,
            e.observations,
            e.db_time_us
        from bayes.player_event as e
        where e.event_id >= (select min(w.first_id) from windows as w)
            and e.kind = 'message'
            and e.recorded_at >= (select min(w.since) from windows as w)
    ),

    per_window as (
        select
            w.window_s,
            a.*
        from windows as w
        cross join lateral (
            select
                count(*) as messages,
                count(*) filter (where m.fallback_needed) as granted,
                count(*) filter (where m.fallback_reason not in ('cold_start', 'bayesian_sufficient')) as budgeted,
                count(*) filter (
                    where m.fallback_reason not in ('cold_start', 'bayesian_sufficient') and not m.fallback_needed
                ) as refused,
                count(m.observations) as observed,
                count(*) filter (where m.observations = 0) as no_signal,
                count(m.db_time_us) as timed,
                -- bayes.health's order: granted by cold_start, no_signals,
                -- uncertain, audit; refused by no_signals, uncertain, audit
                array[
                    count(*) filter (where m.fallback_needed and m.fallback_reason = 'cold_start'),
                    count(*) filter (where m.fallback_needed and m.fallback_reason = 'no_signals'),
                    count(*) filter (where m.fallback_needed and m.fallback_reason = 'uncertain'),
                    count(*) filter (where m.fallback_needed and m.fallback_reason = 'audit'),
                    count(*) filter (where not m.fallback_needed and m.fallback_reason = 'no_signals'),
                    count(*) filter (where not m.fallback_needed and m.fallback_reason = 'uncertain'),
                    count(*) filter (where not m.fallback_needed and m.fallback_reason = 'audit')
                ] as outcome_hits
            from messages as m
            where m.recorded_at >= w.since
        ) as a
    ),

    -- the players who wrote in the window, past their cold start: how many
    -- and the sum of their mean Beta variances (bayes.health's formula)
    variance as (
        select
            w.window_s,
            count(*) as players,
            sum(v.metric_variance) as variance_sum
        from windows as w
        inner join (select m.user_id, max(m.recorded_at) as last_at from messages as m group by m.user_id) as u
            on u.last_at >= w.since
        inner join public.user_bayesian_state as s on s.user_id = u.user_id
        cross join lateral (
            select avg(
                (b.ab ->> 0)::float8 * (b.ab ->> 1)::float8
                / (((b.ab ->> 0)::float8 + (b.ab ->> 1)::float8) ^ 2 * ((b.ab ->> 0)::float8 + (b.ab ->> 1)::float8 + 1))
            ) as metric_variance
            from jsonb_each(s.state -> 'm') as b (metric, ab)
        ) as v
        where (s.state ->> 'n')::integer >= (select bayes.health_param('cold_start_messages'))
        group by w.window_s
    ),

    -- the exact distribution of the window's times: one row per distinct
    -- db_time_us (far fewer than the messages: microseconds of a few ms)
    latency as (
        select
            w.window_s,
            m.db_time_us,
            count(*) as messages
        from windows as w
        inner join messages as m on m.recorded_at >= w.since
        where m.db_time_us is not null
        group by w.window_s, m.db_time_us
    ),

    -- bayes.health's pairs: the newest p_agreement_pairs LLM answers since
    -- p_agreement_since whose message is a shadow or audited one
    pairs as (
        select
            l.recorded_at,
            l.event_id,
            case when m.player_mode = 'shadow' then 'shadow' else 'audit' end as sample,
            m.input as message,
            l.input as answer
        from bayes.player_event as l
        cross join lateral (
            select q.player_mode, q.input
            from bayes.player_event as q
            where q.message_key = md5(l.user_id::text || '/message/' || l.message_id)::uuid
                and q.user_id = l.user_id
                and q.kind = 'message'
                and (
                    q.player_mode = 'shadow'
                    or (q.player_mode = 'bayes' and q.fallback_reason = 'audit' and q.fallback_needed)
                )
            limit 1
        ) as m
        where l.kind = 'llm_scores'
            and l.message_id is not null
            and l.event_id >= bayes.event_id_at(p_agreement_since)
            and l.recorded_at >= p_agreement_since
        order by l.event_id desc
        limit p_agreement_pairs
    ),

    retention as (
        select greatest(
            extract(
                epoch from p_now - make_interval(days => bayes.health_param('event_retention_days')::integer)
                - coalesce(
                    (select max(r.horizon) from bayes.retention_run as r where r.status = 'done'),
                    (select e.occurred_at from bayes.player_event as e order by e.event_id limit 1)
                )
            )::float8,
            0
        ) as lag_s
    )

    select
        v_index, 'window', p.window_s,
        p.messages, p.granted, p.budgeted, p.refused, p.observed, p.no_signal, p.timed, p.outcome_hits,
        coalesce(v.players, 0), coalesce(v.variance_sum, 0),
        null::integer, null::float8, null::float8, null::bigint, null::bigint,
        null::timestamptz, null::bigint, null::text, null::bytea, null::bytea
    from per_window as p
    left join variance as v on v.window_s = p.window_s
    union all
    select
        v_index, 'latency', l.window_s,
        l.messages, null, null, null, null, null, null, null, null, null,
        l.db_time_us, null, null, null, null,
        null, null, null, null, null
    from latency as l
    union all
    select
        v_index, 'pair', null,
        null, null, null, null, null, null, null, null, null, null,
        null, null, null, null, null,
        p.recorded_at, p.event_id, p.sample, p.message, p.answer
    from pairs as p
    union all
    select
        v_index, 'instant', null,
        null, null, null, null, null, null, null, null, null, null,
        null,
        coalesce(
            (
                -- overdue since its due time, or since its write when that
                -- came later (bayes.health's decay_lag_s at p_now)
                select extract(epoch from p_now - min(greatest(s.decay_due_at, s.updated_at)))::float8
                from public.user_bayesian_state as s
                where s.decay_due_at <= p_now
            ),
            0
        ),
        r.lag_s,
        pg_total_relation_size('bayes.player_event') + pg_total_relation_size('bayes.event_result'),
        pg_total_relation_size('public.user_bayesian_state'),
        null, null, null, null, null
    from retention as r;
end
$$;

comment on function bayes_partition.health_parts is
'This partition''s parts of the proxy''s bayes.health (issue 17), measured at the proxy''s instant p_now over the windows p_windows_s (seconds) and the pairs answered since p_agreement_since (at most p_agreement_pairs, the newest): one row of kind window per window (the counts behind each ratio; players past their cold start who wrote in it and the sum of their mean posterior variances), latency (per window and distinct db_time_us, its number of messages), pair (a shadow or audit pair: the answer''s recorded_at and event_id, the sample, the packed message and answer) and instant (decay and retention lags at p_now, sizes in bytes); every row names partition_index. Reads as service_role. 55000 on a database that is not a partition, 22004 on a null argument. For the proxy (bayes_proxy) only.';
revoke all on function bayes_partition.health_parts from public;
grant execute on function bayes_partition.health_parts to bayes_proxy;

create or replace function bayes_partition.partition_index()
returns integer
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_index integer;
begin
    -- bayes.partition is service_role's to read (until this function returns)
    perform set_config('role', 'service_role', true);
    v_index := (select p.partition_index from bayes.partition as p);
    if v_index is null then
        perform bayes.raise_error('55000', 'this database is not a partition (bayes.partition is empty)');
    end if;
    return v_index;
end
$$;

comment on function bayes_partition.partition_index is
'Which partition this database is (bayes.partition.partition_index): the proxy asks each partition in turn when a RUN ON ALL fails, to name the ones that do not answer (issue 17). 55000 on a database that is not a partition. For the proxy (bayes_proxy) only.';
revoke all on function bayes_partition.partition_index from public;
grant execute on function bayes_partition.partition_index to bayes_proxy;
