-- The snapshots of the partitioned mode's health (issue 17): the proxy's
-- pg_cron job bayes-record-health (scheduled by the migrations, every
-- minute) records the combined signals of bayes.health (sql/proxy/31_health.sql);
-- bayes.alerts() and public.bayes_metrics() read them unchanged. Each
-- partition keeps its own job, snapshots and alerts of its own players.
--
-- A partition that does not answer: bayes.health raises (08006, naming it),
-- and the snapshot holds only the rows of partition_up, 0 for each partition
-- that does not answer and 1 for the others. No other signal is recorded
-- then (each adds up all the partitions: a sum without one would be a wrong
-- number, not a smaller one), so bayes.alerts() says partition_up critical
-- and the metrics say bayes_partition_up{partition="<i>"} 0.

-- The signal partition_up, the proxy's own: critical below 1.
insert into bayes.health_threshold (
    signal, warn, critical, direction, min_samples, unit, label_name, description, metric_name, metric_scale
) values (
    'partition_up', null, 1, 'below', 0, 'answered', 'partition',
    'Whether the partition answered the proxy''s health query (1) or not (0), by partition index (the partitioned'
    || ' mode: the proxy only). With a partition down, the snapshot holds no other signal: each adds up all the'
    || ' partitions.',
    'bayes_partition_up', 1
)
on conflict (signal) do update set
    direction = excluded.direction,
    unit = excluded.unit,
    label_name = excluded.label_name,
    description = excluded.description,
    metric_name = excluded.metric_name,
    metric_scale = excluded.metric_scale;

-- What a snapshot records: bayes.health, or with a partition down the rows
-- of partition_up alone.
create or replace function bayes_remote.health_for_snapshot()
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
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    return query select * from bayes.health();
exception when sqlstate '08006' then
    return query
    select *
    from bayes_remote.health_judged(
        array(
            select row('partition_up', null, a.partition_index::text, a.answered::integer, null)::bayes_remote.health_measure
            from bayes_remote.partitions_answering() as a
        )
    );
end
$$;

comment on function bayes_remote.health_for_snapshot is
'The rows of a snapshot of the proxy''s health (issue 17): bayes.health(), or, when a partition does not answer (08006), partition_up alone: 0 for each partition that does not answer as itself, 1 for the others, with their status. Any other error is raised.';
revoke all on function bayes_remote.health_for_snapshot from public;

-- The single node's bayes.record_health (sql/functions/92_health_alerts.sql),
-- word for word but for the rows it inserts: bayes_remote.health_for_snapshot()
-- instead of bayes.health().
create or replace function bayes.record_health()
returns integer
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_previous timestamptz;
    v_kept_from timestamptz;
    v_change record;
    v_changes integer := 0;
begin
    -- one snapshot at a time: a run that finds another under way leaves
    if not pg_try_advisory_xact_lock(bayes.health_lock_key()) then
        raise notice 'bayes.record_health: another snapshot is being recorded; this one is skipped';
        return null;
    end if;
    -- a second call in the transaction that took this instant's snapshot
    -- (the lock is the transaction's): recorded and announced already
    if exists (select from bayes.health_snapshot as h where h.taken_at = now()) then
        return 0;
    end if;
    select max(h.taken_at) into v_previous from bayes.health_snapshot as h where h.taken_at < now();

    insert into bayes.health_snapshot (taken_at, signal, window_s, label, value, samples, status)
    select now(), h.signal, h.window_s, h.label, h.value, h.samples, h.status
    from bayes_remote.health_for_snapshot() as h
    on conflict on constraint health_snapshot_key do nothing;

    -- every change of status since the previous snapshot (a signal never
    -- seen before starts from ok), recorded and announced
    for v_change in
        insert into bayes.health_change (changed_at, signal, window_s, label, status_from, status_to, value, samples)
        select now(), h.signal, h.window_s, h.label, coalesce(p.status, 'ok'), h.status, h.value, h.samples
        from bayes.health_snapshot as h
        left join bayes.health_snapshot as p
            on
                p.taken_at = v_previous
                and p.signal = h.signal
                and p.window_s is not distinct from h.window_s
                and p.label is not distinct from h.label
        where h.taken_at = now()
            and h.status is distinct from coalesce(p.status, 'ok')
        returning *
    loop
        v_changes := v_changes + 1;
        perform pg_notify(
            'bayes_health',
            json_build_object(
                'signal', v_change.signal,
                'window_s', v_change.window_s,
                'label', v_change.label,
                'from', v_change.status_from,
                'to', v_change.status_to,
                'value', v_change.value,
                'samples', v_change.samples,
                'changed_at', v_change.changed_at
            )::text
        );
    end loop;

    -- the snapshots' own retention (the horizon computed once: in the
    -- conditions, the parameter would be read again for every row scanned)
    v_kept_from := now() - make_interval(days => bayes.health_param('health_snapshot_retention_days')::integer);
    delete from bayes.health_snapshot as h where h.taken_at < v_kept_from;
    delete from bayes.health_change as c where c.changed_at < v_kept_from;
    return v_changes;
end
$$;

comment on function bayes.record_health is
'The single node''s bayes.record_health on the partitioned mode''s proxy (issue 17): one snapshot of the combined bayes.health into bayes.health_snapshot (taken_at now()), or, when a partition does not answer, of partition_up alone (0 for it: bayes_remote.health_for_snapshot); every change of status from the previous snapshot recorded in bayes.health_change and announced with NOTIFY on bayes_health; snapshots and changes older than health_snapshot_retention_days deleted. One at a time (advisory lock bayes.health_lock_key(); null when another holds it, 0 for a second call in the transaction). Returns the number of changes. The proxy''s pg_cron job bayes-record-health calls it every minute.';
revoke all on function bayes.record_health from public;
