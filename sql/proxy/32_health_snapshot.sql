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

-- What a snapshot records (the single node's bayes.record_health reads it:
-- sql/functions/92_health_alerts.sql): bayes.health, or with a partition
-- down the rows of partition_up alone.
create or replace function bayes.health_for_snapshot()
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

comment on function bayes.health_for_snapshot is
'The rows a snapshot of the health signals records (bayes.record_health), at the partitioned mode''s proxy (issue 17): bayes.health(), or, when a partition does not answer (08006), partition_up alone: 0 for each partition that does not answer as itself, 1 for the others, with their status. Any other error is raised.';
revoke all on function bayes.health_for_snapshot from public;
