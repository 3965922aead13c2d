-- Retention of the event log (issue 15): the pieces of a retention run
-- (72_retention.sql, bayes.run_retention_command): bayes.fold_events, its
-- PL/Python step (bayes_engine.events.fold, the replay of bayes.replay), its
-- lock key, and the schedule of its pg_cron job.

create or replace function bayes.fold_events(
    p_users uuid[],
    p_after bigint[],
    p_states text[],
    p_last_message_at double precision[],
    p_decayed_at double precision[],
    p_events_folded bigint[],
    p_horizon double precision,
    p_params_revision bigint,
    out last_event_ids bigint[],
    out folded integer[],
    out states text[],
    out last_message_at double precision[],
    out decayed_at double precision[],
    out events_folded bigint[],
    out kept_from double precision[],
    out errors text[]
)
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.fold_events(plpy, p_users, p_after, p_states, p_last_message_at, p_decayed_at, p_events_folded, p_horizon, p_params_revision)
$$;

comment on function bayes.fold_events is
'Retention''s step for a batch of players, one item per player in every array: from his checkpoint (p_states null: a new player''s state; p_after the last event it folded, the clock in epoch seconds), the longest prefix of the events after it that occurred before p_horizon (epoch seconds), replayed: the last folded event id (null: none), how many, the new checkpoint (state, clock, events folded in all), the occurred_at of the first event kept (null: none) and the error of a log that cannot be replayed (then nothing is folded). Writes nothing.';
revoke all on function bayes.fold_events from public;

create or replace function bayes.retention_lock_key()
returns bigint
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
return 7300215847719049217;

comment on function bayes.retention_lock_key is
'The advisory lock key that a retention run (bayes.run_retention_command) holds while it runs: pg_try_advisory_lock(bayes.retention_lock_key()) keeps runs from starting.';
revoke all on function bayes.retention_lock_key from public;

create or replace function bayes.schedule_retention(p_schedule text default '7 * * * *')
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
    return cron.schedule('bayes-run-retention', p_schedule, bayes.run_retention_command());
end
$$;

comment on function bayes.schedule_retention is
'(Re)schedules the pg_cron job bayes-run-retention (the DO block of bayes.run_retention_command()) with a cron schedule, hourly at 7 past by default; returns the job id. There is only ever one such job.';
revoke all on function bayes.schedule_retention from public;
