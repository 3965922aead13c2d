-- Alerts on the health signals (issue 16): bayes.record_health, the pg_cron
-- job bayes-record-health, keeps a snapshot of bayes.health a minute in
-- bayes.health_snapshot, records every change of status in
-- bayes.health_change and announces it with NOTIFY on the channel
-- bayes_health, for a listener (or Supabase Realtime on
-- bayes.health_change) to page someone; bayes.alerts lists what fires and
-- since when.

create or replace function bayes.health_lock_key()
returns bigint
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
return 7300215847719049218;

comment on function bayes.health_lock_key is
'The advisory lock key a snapshot of the health signals (bayes.record_health) holds for its transaction: two snapshots never run at once.';
revoke all on function bayes.health_lock_key from public;

-- What a snapshot records: bayes.health() at its defaults. A function of
-- its own so that the proxy of the partitioned mode (issue 17) can replace
-- it (sql/proxy/32_health_snapshot.sql: with a partition down, the rows of
-- partition_up alone), and bayes.record_health stays one.
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
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    return query select * from bayes.health();
end
$$;

comment on function bayes.health_for_snapshot is
'The rows a snapshot of the health signals records (bayes.record_health): bayes.health() at its default windows. The partitioned mode''s proxy replaces it (issue 17).';
revoke all on function bayes.health_for_snapshot from public;

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
    from bayes.health_for_snapshot() as h
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
'One snapshot of bayes.health into bayes.health_snapshot (taken_at now()); every signal whose status differs from the previous snapshot''s (ok when it had none) is recorded in bayes.health_change and announced with NOTIFY on the channel bayes_health (payload JSON: signal, window_s, label, from, to, value, samples, changed_at; delivered at commit). Deletes snapshots and changes older than health_snapshot_retention_days. One at a time (transaction advisory lock bayes.health_lock_key(); a call while another transaction holds it returns null and writes nothing; a second call in the same transaction records nothing and returns 0). Returns the number of changes. The pg_cron job bayes-record-health calls it every minute.';
revoke all on function bayes.record_health from public;

create or replace function bayes.schedule_health(p_schedule text default '* * * * *')
returns bigint
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
begin
    v_checked := bayes.check_not_null(p_schedule, 'p_schedule');
    return cron.schedule('bayes-record-health', p_schedule, 'select bayes.record_health()');
end
$$;

comment on function bayes.schedule_health is
'(Re)schedules the pg_cron job bayes-record-health (select bayes.record_health()) with a cron schedule, every minute by default; returns the job id. There is only ever one such job.';
revoke all on function bayes.schedule_health from public;

create or replace function bayes.alerts()
returns table (
    signal text,
    window_s integer,
    label text,
    status bayes.health_status,
    value double precision,
    samples bigint,
    warn double precision,
    critical double precision,
    firing_since timestamptz,
    status_since timestamptz
)
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select
        h.signal,
        h.window_s,
        h.label,
        h.status,
        h.value,
        h.samples,
        t.warn,
        t.critical,
        coalesce(
            (
                select max(c.changed_at)
                from bayes.health_change as c
                where c.signal = h.signal
                    and c.window_s is not distinct from h.window_s
                    and c.label is not distinct from h.label
                    and c.status_from = 'ok'
            ),
            (select min(o.taken_at) from bayes.health_snapshot as o)
        ),
        coalesce(
            (
                select max(c.changed_at)
                from bayes.health_change as c
                where c.signal = h.signal
                    and c.window_s is not distinct from h.window_s
                    and c.label is not distinct from h.label
                    and c.status_to = h.status
            ),
            (select min(o.taken_at) from bayes.health_snapshot as o)
        )
    from bayes.health_snapshot as h
    inner join bayes.health_threshold as t on t.signal = h.signal
    where h.taken_at = (select max(l.taken_at) from bayes.health_snapshot as l)
        and h.status <> 'ok'
    order by h.status desc, h.signal, h.window_s nulls first, h.label nulls first
$$;

comment on function bayes.alerts is
'What fires now, as the last snapshot (bayes.record_health) found it: every signal that is warn or critical, its value and thresholds, since when it fires (its last change from ok) and since when it has its current status (both from bayes.health_change; the first snapshot kept when the change is older than the retention).';
revoke all on function bayes.alerts from public;
grant execute on function bayes.alerts to service_role;
