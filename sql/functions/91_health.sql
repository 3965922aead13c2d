-- Health of the engine (issue 16): bayes.health computes every signal of
-- bayes.health_threshold over the short and the long window (5 minutes and
-- 1 hour by default) from the measurements the message path leaves in the
-- event log (migration 0016) and from the state table; bayes.record_health,
-- the pg_cron job bayes-record-health, keeps a snapshot a minute and
-- announces every change of status on the channel bayes_health;
-- bayes.alerts lists what fires and since when. docs/operations.md explains
-- each signal and what to do about it.
--
-- Who may call: the database owner and service_role (the backend's key, a
-- dashboard's, an analyst's role granted it): the signals are about every
-- player. They are plain SQL and plpgsql: the job runs in a fresh backend
-- every minute and starts no Python unless there are shadow or audit pairs
-- to compare.

create or replace function bayes.event_id_at(p_at timestamptz)
returns bigint
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_low bigint;
    v_high bigint;
    v_middle bigint;
    v_recorded_at timestamptz;
begin
    -- A binary search of the primary key: recorded_at grows with event_id
    -- (up to the jitter of concurrent writes), so the events recorded from
    -- p_at on are the ids from the answer on. About log2(ids) index probes;
    -- no index on recorded_at is needed (nor paid on every message).
    select min(e.event_id), max(e.event_id) + 1 into v_low, v_high from bayes.player_event as e;
    if v_low is null then
        return 1;
    end if;
    -- invariant: every event before v_low was recorded before p_at (or has no
    -- recorded_at: older than issue 16); from v_high on, none exists or all
    -- were recorded from p_at on
    while v_low < v_high loop
        v_middle := v_low + (v_high - v_low) / 2;
        select e.recorded_at into v_recorded_at
        from bayes.player_event as e
        where e.event_id >= v_middle
        order by e.event_id
        limit 1;
        if coalesce(v_recorded_at >= p_at, false) then
            v_high := v_middle;
        else
            v_low := v_middle + 1;
        end if;
    end loop;
    return v_low;
end
$$;

comment on function bayes.event_id_at is
'The first event_id recorded at or after p_at (bayes.player_event.recorded_at), by a binary search of the primary key: the events of a window are the ids from it on. Exact up to the jitter of concurrent writes (recorded_at grows with event_id); events older than issue 16 count as older than any p_at.';
revoke all on function bayes.event_id_at from public;
grant execute on function bayes.event_id_at to service_role;

create or replace function bayes.health_param(p_name text)
returns double precision
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    return (select (p.value #>> '{}')::float8 from bayes.params as p where p.name = p_name);
end
$$;

comment on function bayes.health_param is
'A scalar row of bayes.params as a number (the windows and retention of the health signals), null when absent.';
revoke all on function bayes.health_param from public;
grant execute on function bayes.health_param to service_role;

create or replace function bayes.sign_agreement(p_messages bytea[], p_answers bytea[])
returns double precision
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.sign_agreement(plpy, p_messages, p_answers)
$$;

comment on function bayes.sign_agreement is
'Over pairs (p_messages[i]: a message event''s packed input, p_answers[i]: the packed LLM scores of that message), the share of (pair, metric) in which the engine''s net evidence and the LLM''s delta have the same sign, 0 counting as a sign (bayes.shadow_report''s sign_agreement pooled over the four metrics); pairs with a null side are left out; null without pairs.';
revoke all on function bayes.sign_agreement from public;
grant execute on function bayes.sign_agreement to service_role;

create or replace function bayes.health_windows(p_windows_s integer[])
returns integer[]
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_window integer;
begin
    if p_windows_s is null then
        return array(
            select distinct w.window_s
            from unnest(array[
                bayes.health_param('health_window_short_s')::integer,
                bayes.health_param('health_window_long_s')::integer
            ]) as w (window_s)
            order by w.window_s
        );
    end if;
    foreach v_window in array p_windows_s loop
        if v_window is null or v_window not between 10 and 604800 then
            raise exception 'p_windows_s must hold windows in [10, 604800] seconds (a week), got %', p_windows_s
            using errcode = '22023', hint = 'null: health_window_short_s and health_window_long_s of bayes.params';
        end if;
    end loop;
    return array(select distinct w.window_s from unnest(p_windows_s) as w (window_s) order by w.window_s);
end
$$;

comment on function bayes.health_windows is
'The windows of bayes.health, seconds, each once and in order: p_windows_s, or health_window_short_s and health_window_long_s of bayes.params when null. A null window or one outside [10, 604800] (the range of the parameters) raises 22023.';
revoke all on function bayes.health_windows from public;
grant execute on function bayes.health_windows to service_role;

create or replace function bayes.health(
    p_windows_s integer[] default null
)
returns table (
    signal text,
    window_s integer,
    label text,
    value double precision,
    samples bigint,
    warn double precision,
    critical double precision,
    status bayes.health_status,
    unit text
)
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
-- the latency percentiles sort the window's times: in memory up to a few
-- million messages rather than in temporary files
set work_mem = '64MB'
as $$
    with windows as materialized (
        select
            w.window_s,
            now() - make_interval(secs => w.window_s) as since,
            bayes.event_id_at(now() - make_interval(secs => w.window_s)) as first_id
        from unnest(bayes.health_windows(p_windows_s)) as w (window_s)
    ),

    -- the messages of the longest window, read once by primary key range
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

    -- each window's aggregates, one pass over its messages (a lateral
    -- aggregate: no sort of the messages by window)
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
                percentile_cont(array[0.5, 0.99]) within group (order by m.db_time_us) as latency_us,
                -- granted by cold_start, no_signals, uncertain, audit; refused by
                -- no_signals, uncertain, audit (the order of per_reason below)
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

    per_reason as (
        select
            p.window_s,
            r.outcome,
            r.reason,
            p.outcome_hits[r.i] as hits
        from per_window as p
        cross join (
            values
            (1, 'llm_granted', 'cold_start'),
            (2, 'llm_granted', 'no_signals'),
            (3, 'llm_granted', 'uncertain'),
            (4, 'llm_granted', 'audit'),
            (5, 'llm_refused', 'no_signals'),
            (6, 'llm_refused', 'uncertain'),
            (7, 'llm_refused', 'audit')
        ) as r (i, outcome, reason)
    ),

    -- the players who sent a message in the window, and their posterior now
    variance as (
        select
            w.window_s,
            count(*) as players,
            avg(v.metric_variance) as mean_variance
        from windows as w
        inner join (select m.user_id, max(m.recorded_at) as last_at from messages as m group by m.user_id) as u
            on u.last_at >= w.since
        inner join public.user_bayesian_state as s on s.user_id = u.user_id
        -- past the cold start: a new player's posterior is his chapter's
        -- prior (variance 0.030 on average in chapter 1, at the warn
        -- threshold), and the cold_start rule asks the LLM for him anyway.
        -- The Beta variance is bayes.metric_variance's formula, written out:
        -- a call of that SQL function is planned again for every metric.
        cross join lateral (
            select avg(
                (b.ab ->> 0)::float8 * (b.ab ->> 1)::float8
                / (((b.ab ->> 0)::float8 + (b.ab ->> 1)::float8) ^ 2 * ((b.ab ->> 0)::float8 + (b.ab ->> 1)::float8 + 1))
            ) as metric_variance
            from jsonb_each(s.state -> 'm') as b (metric, ab)
        ) as v
        -- (a scalar subquery: read once, not for every player)
        where (s.state ->> 'n')::integer >= (select bayes.health_param('cold_start_messages'))
        group by w.window_s
    ),

    -- the last day's shadow and audit messages with the LLM's answer (the
    -- pairs of bayes.shadow_pairs), the newest health_agreement_pairs of
    -- them: the LLM's answers newest first through their partial index
    -- (player_event_llm_scores_idx), each one's message looked up by its key
    -- (a lateral subquery: a join lets the planner hash every message of the
    -- log), until that many are pairs (an answer to a bayes player's message
    -- that no audit chose is not one)
    agreement_window as materialized (
        select
            now() - make_interval(secs => 3600 * bayes.health_param('health_agreement_window_h')) as since,
            bayes.health_param('health_agreement_pairs')::bigint as pairs
    ),

    answered as materialized (
        select
            case when m.player_mode = 'shadow' then 'shadow' else 'audit' end as sample,
            m.input as message_input,
            l.input as answer_input
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
            and l.event_id >= bayes.event_id_at((select a.since from agreement_window as a))
            and l.recorded_at >= (select a.since from agreement_window as a)
        order by l.event_id desc
        limit (select a.pairs from agreement_window as a)
    ),

    pairs as (
        select
            a.sample,
            a.message_input as message,
            a.answer_input as answer
        from answered as a
    ),

    -- one call of the engine's Python per sample, not one per event
    agreement as (
        select
            s.sample,
            count(p.sample) as pairs,
            bayes.sign_agreement(array_agg(p.message), array_agg(p.answer)) as agreement
        from (values ('shadow'), ('audit')) as s (sample)
        left join pairs as p on p.sample = s.sample
        group by s.sample
    ),

    retention as (
        select greatest(
            extract(
                epoch from now() - make_interval(days => bayes.health_param('event_retention_days')::integer)
                - coalesce(
                    (select max(r.horizon) from bayes.retention_run as r where r.status = 'done'),
                    (select e.occurred_at from bayes.player_event as e order by e.event_id limit 1)
                )
            )::float8,
            0
        ) as lag_s
    ),

    measured (signal, window_s, label, value, samples) as (
        select 'messages_per_second', p.window_s, null::text, p.messages::float8 / p.window_s, p.messages
        from per_window as p
        union all
        select 'fallback_rate', p.window_s, null, p.granted::float8 / nullif(p.messages, 0), p.messages
        from per_window as p
        union all
        select r.outcome, r.window_s, r.reason, r.hits::float8 / nullif(p.messages, 0), p.messages
        from per_reason as r
        inner join per_window as p on p.window_s = r.window_s
        union all
        select 'llm_budget_exhaustion', p.window_s, null, p.refused::float8 / nullif(p.budgeted, 0), p.budgeted
        from per_window as p
        union all
        select 'no_signal_share', p.window_s, null, p.no_signal::float8 / nullif(p.observed, 0), p.observed
        from per_window as p
        union all
        select 'posterior_variance', w.window_s, null, v.mean_variance, coalesce(v.players, 0)
        from windows as w
        left join variance as v on v.window_s = w.window_s
        union all
        select 'latency_p50_ms', p.window_s, null, p.latency_us[1] / 1000, p.timed
        from per_window as p
        union all
        select 'latency_p99_ms', p.window_s, null, p.latency_us[2] / 1000, p.timed
        from per_window as p
        union all
        select
            'decay_lag_s',
            null,
            null,
            coalesce(
                (
                    -- overdue since its due time, or since its write when that
                    -- came later (a message sent long before it reached the
                    -- engine leaves a due time in the past)
                    select extract(epoch from now() - min(greatest(s.decay_due_at, s.updated_at)))::float8
                    from public.user_bayesian_state as s
                    where s.decay_due_at <= now()
                ),
                0
            ),
            null
        union all
        select 'retention_lag_s', null, null, r.lag_s, null
        from retention as r
        union all
        select
            'event_log_bytes',
            null,
            null,
            (pg_total_relation_size('bayes.player_event') + pg_total_relation_size('bayes.event_result'))::float8,
            null
        union all
        select 'state_table_bytes', null, null, pg_total_relation_size('public.user_bayesian_state')::float8, null
        union all
        select
            'shadow_agreement',
            (3600 * bayes.health_param('health_agreement_window_h'))::integer,
            a.sample,
            a.agreement,
            a.pairs
        from agreement as a
    )

    select
        m.signal,
        m.window_s,
        m.label,
        m.value,
        m.samples,
        t.warn,
        t.critical,
        case
            when m.value is null or coalesce(m.samples, t.min_samples) < t.min_samples then 'ok'
            when t.direction = 'above' and m.value > t.critical then 'critical'
            when t.direction = 'below' and m.value < t.critical then 'critical'
            when t.direction = 'above' and m.value > t.warn then 'warn'
            when t.direction = 'below' and m.value < t.warn then 'warn'
            else 'ok'
        end::bayes.health_status,
        t.unit
    from measured as m
    inner join bayes.health_threshold as t on t.signal = m.signal
    order by m.signal, m.window_s nulls first, m.label nulls first
$$;

comment on function bayes.health is
'The engine''s health now: one row per signal of bayes.health_threshold (and label: a fallback reason, a sample) over each window of p_windows_s (seconds, each in [10, 604800], 22023 otherwise; default health_window_short_s and health_window_long_s, 5 minutes and 1 hour), or of the instant (window_s null: lags, sizes), or of the last health_agreement_window_h hours (shadow_agreement): its value (null: no data), the samples it rests on, its thresholds and its status (ok, warn, critical). Reads the messages of the window by primary key range (bayes.event_id_at) and the states of the players who sent them.';
revoke all on function bayes.health from public;
grant execute on function bayes.health to service_role;
