-- The health signals of the partitioned mode (issue 17): the proxy's
-- bayes.health, with the single node's signature and result columns,
-- combines what every partition returns to one RUN ON ALL
-- (bayes_partition.health_parts, sql/functions/97_partition_health.sql) as
-- one log holding all their rows would give it:
--
--   messages_per_second    the messages of all partitions, summed, / window;
--   fallback_rate, llm_granted, llm_refused, llm_budget_exhaustion,
--   no_signal_share        a ratio of sums: sum(numerators) / sum(denominators)
--                          (never an average of the partitions' ratios), its
--                          samples the summed denominator;
--   posterior_variance     sum of the players' mean variances / number of
--                          players (a player lives on one partition: the mean
--                          over all of them), samples the players;
--   latency_p50_ms, latency_p99_ms
--                          percentile_cont (linear, as the single node's SQL)
--                          of the union of the partitions' messages: each
--                          sends its exact histogram (messages per distinct
--                          db_time_us), the proxy adds the counts and reads
--                          the order statistics of the merged distribution
--                          (never an average of percentiles);
--   decay_lag_s, retention_lag_s
--                          the greatest of the partitions' lags (the most
--                          overdue player, the log furthest behind);
--   event_log_bytes, state_table_bytes
--                          sums;
--   shadow_agreement       each partition sends its newest
--                          health_agreement_pairs pairs; the proxy keeps the
--                          newest health_agreement_pairs of all of them (by
--                          the answer's recorded_at: event ids do not order
--                          two partitions) and compares them in one call;
--   partition_up           (proxy only, label partition) 1 for each
--                          partition that answered: in bayes.health always 1
--                          (a partition that does not answer is an error,
--                          never a partial sum); the snapshot job records 0
--                          for the ones that do not (sql/proxy/32_health_snapshot.sql).
--
-- min_samples and the thresholds apply to the combined values, from the
-- proxy's bayes.health_threshold; the windows and the agreement's window and
-- pairs are the proxy's bayes.params; the instant is the proxy's now(),
-- against which each partition measures its windows (found with its own
-- bayes.event_id_at) and its lags.

-- The signals of all partitions combined (the rules at the top of this
-- file), before their thresholds; 08006 when a partition does not answer.
create or replace function bayes_remote.health_measured(p_windows_s integer[])
returns bayes_remote.health_measure[]
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now timestamptz := now();
    v_windows integer[] := bayes.health_windows(p_windows_s);
    v_agreement_h double precision := bayes.health_param('health_agreement_window_h');
    v_pairs bigint := bayes.health_param('health_agreement_pairs')::bigint;
    v_partitions integer[] := array(select p.partition_index from bayes_remote.partitions() as p order by 1);
    v_parts bayes_remote.health_part[];
    v_answered integer[];
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
begin
    if cardinality(v_partitions) = 0 then
        perform bayes.raise_error('55000', 'bayes.health: the foreign server bayes_partitions lists no partition');
    end if;
    begin
        v_parts := array(
            select p
            from bayes_remote.health_parts(
                v_now, v_windows, v_now - make_interval(secs => 3600 * v_agreement_h), v_pairs
            ) as p
        );
    exception when others then
        get stacked diagnostics
            v_sqlstate = returned_sqlstate, v_message = message_text,
            v_detail = pg_exception_detail, v_hint = pg_exception_hint;
        -- the partitions that do not answer, by name; when all do, the
        -- partition's own error as it raised it
        perform bayes_remote.raise_partitions_down('bayes.health');
        perform bayes_remote.raise_partition_error(v_sqlstate, v_message, v_detail, v_hint);
    end;
    -- one answer from each partition, each as itself
    v_answered := array(select p.partition_index from unnest(v_parts) as p where p.kind = 'instant' order by 1);
    if v_answered is distinct from v_partitions then
        perform bayes_remote.raise_partitions_down('bayes.health');
        perform bayes.raise_error(
            '55000',
            format('bayes.health: the partitions %s answered as %s', v_partitions, v_answered)
        );
    end if;

    return array(
        with parts as materialized (
            select p.* from unnest(v_parts) as p
        ),

        -- every count of each window, added up over the partitions
        per_window as (
            select
                w.window_s,
                coalesce(sum(p.messages), 0)::bigint as messages,
                coalesce(sum(p.granted), 0)::bigint as granted,
                coalesce(sum(p.budgeted), 0)::bigint as budgeted,
                coalesce(sum(p.refused), 0)::bigint as refused,
                coalesce(sum(p.observed), 0)::bigint as observed,
                coalesce(sum(p.no_signal), 0)::bigint as no_signal,
                coalesce(sum(p.timed), 0)::bigint as timed,
                coalesce(sum(p.players), 0)::bigint as players,
                sum(p.variance_sum) as variance_sum
            from unnest(v_windows) as w (window_s)
            left join parts as p on p.kind = 'window' and p.window_s = w.window_s
            group by w.window_s
        ),

        per_reason as (
            select
                p.window_s,
                r.outcome,
                r.reason,
                sum(p.outcome_hits[r.i])::bigint as hits
            from parts as p
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
            where p.kind = 'window'
            group by p.window_s, r.outcome, r.reason
        ),

        -- the merged histogram of db_time_us: for each distinct time, how
        -- many messages of all partitions took at most that long
        merged as (
            select
                h.window_s,
                h.db_time_us,
                sum(sum(h.messages)) over (partition by h.window_s order by h.db_time_us) as through,
                sum(sum(h.messages)) over (partition by h.window_s) as timed
            from parts as h
            where h.kind = 'latency'
            group by h.window_s, h.db_time_us
        ),

        -- percentile_cont of the union: position f * (n - 1) of the n times
        -- in order (0-based), between its floor and ceiling order
        -- statistics, linearly (PostgreSQL's float8 percentile_cont: lo +
        -- (hi - lo) * (position - floor))
        latency as (
            select
                q.window_s,
                q.fraction,
                lo.db_time_us::float8
                + (hi.db_time_us::float8 - lo.db_time_us::float8) * (q.position - floor(q.position)) as value_us
            from (
                select distinct
                    m.window_s,
                    f.fraction,
                    f.fraction * (m.timed - 1)::float8 as position
                from merged as m
                cross join (values (0.5::float8), (0.99::float8)) as f (fraction)
            ) as q
            cross join lateral (
                select m.db_time_us from merged as m
                where m.window_s = q.window_s and m.through > floor(q.position)
                order by m.db_time_us
                limit 1
            ) as lo
            cross join lateral (
                select m.db_time_us from merged as m
                where m.window_s = q.window_s and m.through > ceil(q.position)
                order by m.db_time_us
                limit 1
            ) as hi
        ),

        -- the newest pairs of all partitions, then one comparison per sample
        pairs as (
            select
                p.sample,
                p.message,
                p.answer
            from parts as p
            where p.kind = 'pair'
            order by p.recorded_at desc, p.partition_index, p.event_id desc
            limit v_pairs
        ),

        agreement as (
            select
                s.sample,
                count(p.sample) as pairs,
                bayes.sign_agreement(array_agg(p.message), array_agg(p.answer)) as agreement
            from (values ('shadow'), ('audit')) as s (sample)
            left join pairs as p on p.sample = s.sample
            group by s.sample
        ),

        instant as (
            select
                max(p.decay_lag_s) as decay_lag_s,
                max(p.retention_lag_s) as retention_lag_s,
                sum(p.event_log_bytes)::float8 as event_log_bytes,
                sum(p.state_table_bytes)::float8 as state_table_bytes
            from parts as p
            where p.kind = 'instant'
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
            select 'posterior_variance', p.window_s, null, p.variance_sum / nullif(p.players, 0), p.players
            from per_window as p
            union all
            select 'latency_p50_ms', p.window_s, null, l.value_us / 1000, p.timed
            from per_window as p
            left join latency as l on l.window_s = p.window_s and l.fraction = 0.5
            union all
            select 'latency_p99_ms', p.window_s, null, l.value_us / 1000, p.timed
            from per_window as p
            left join latency as l on l.window_s = p.window_s and l.fraction = 0.99
            union all
            select 'decay_lag_s', null, null, i.decay_lag_s, null
            from instant as i
            union all
            select 'retention_lag_s', null, null, i.retention_lag_s, null
            from instant as i
            union all
            select 'event_log_bytes', null, null, i.event_log_bytes, null
            from instant as i
            union all
            select 'state_table_bytes', null, null, i.state_table_bytes, null
            from instant as i
            union all
            select 'shadow_agreement', (3600 * v_agreement_h)::integer, a.sample, a.agreement, a.pairs
            from agreement as a
            union all
            select 'partition_up', null, p.partition_index::text, 1, null
            from unnest(v_partitions) as p (partition_index)
        )

        select row(m.signal, m.window_s, m.label, m.value, m.samples)::bayes_remote.health_measure
        from measured as m
    );
end
$$;

comment on function bayes_remote.health_measured is
'The signals of bayes.health over the windows p_windows_s (bayes.health_windows), combined over every partition from one RUN ON ALL of bayes_partition.health_parts at the proxy''s now() (issue 17; the rules: sql/proxy/30_health.sql and docs/operations.md), before their thresholds; one partition_up row (1) per partition. 08006 naming the partitions that do not answer; a partition''s own error as it raised it.';
revoke all on function bayes_remote.health_measured from public;

-- Signals against the proxy's thresholds: bayes.health's last step.
create or replace function bayes_remote.health_judged(p_measured bayes_remote.health_measure[])
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
as $$
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
    from unnest(p_measured) as m
    inner join bayes.health_threshold as t on t.signal = m.signal
    order by m.signal, m.window_s nulls first, m.label nulls first
$$;

comment on function bayes_remote.health_judged is
'Signals (signal, window_s, label, value, samples) with their thresholds from bayes.health_threshold and their status (bayes.health''s rule: ok without a value or under min_samples samples, else critical or warn beyond the threshold in its direction), in bayes.health''s order (issue 17).';
revoke all on function bayes_remote.health_judged from public;

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
language plpgsql
-- stable, as on a single node: it writes nothing (the PL/Proxy functions it
-- calls are volatile, as PL/Proxy requires, but only read the partitions)
stable
-- Definer: so that no API role may execute bayes_remote (the proxy's calls
-- of the partitions, executable by none); EXECUTE on this function is
-- granted as on a single node (service_role).
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    return query select * from bayes_remote.health_judged(bayes_remote.health_measured(p_windows_s));
end
$$;

comment on function bayes.health is
'The single node''s bayes.health on the partitioned mode''s proxy (issue 17): the same arguments and result columns, every signal combined over all partitions from one RUN ON ALL (counts and sums added, ratios as a ratio of sums, latency percentiles of the union of the partitions'' messages, lags as the greatest, the newest pairs of all partitions; docs/operations.md), thresholds and windows from the proxy''s tables, now() the proxy''s; plus partition_up (label partition, 1) for each partition. 08006 naming the partitions when one does not answer: no partial value.';
revoke all on function bayes.health from public;
grant execute on function bayes.health to service_role;
