-- Retention of the event log with checkpoints (issue 15, item 2).
--
-- Nothing ever removed an event: every message leaves a row in
-- bayes.player_event for as long as the player exists. A retention run
-- (pg_cron, hourly; bayes.run_retention_command) folds each player's events
-- older than the horizon (event_retention_days) into his checkpoint, the
-- state a replay of those events gives, and deletes them in the same
-- transaction; bayes.replay and the shadow tools start from the checkpoint
-- and read only the events after it. docs/design.md says why plain batched deletes and not partitions.
--
-- The parameter row is added before the code that reads it (the functions
-- migration follows): bayes.check_params of the older code warns that it
-- does not read it, which is expected here.

insert into bayes.params (name, value, description) values
(
    'event_retention_days',
    '90',
    'Days an event stays in bayes.player_event: a retention run folds older ones into the player''s checkpoint'
    ' (bayes.player_checkpoint) and deletes them; in [1, 36500]'
);

-------------------------------------------------------------------------------
-- One row per player whose log retention has looked at: where his log now
-- starts. A replay starts from `state` (with the row clock beside it) and
-- applies the events after last_event_id; a null state means no event was
-- folded yet (the replay starts from a new player's state), and the row only
-- keeps retained_since, so that the next runs skip the player until his
-- events are old enough.
-------------------------------------------------------------------------------
create table bayes.player_checkpoint (
    user_id uuid primary key,
    state jsonb,
    last_message_epoch double precision,
    decayed_epoch double precision,
    last_event_id bigint not null default 0,
    events_folded bigint not null default 0,
    retained_since timestamptz not null,
    params_revision bigint not null,
    run_id bigint,
    made_at timestamptz not null default now(),
    constraint player_checkpoint_state_when_folded
    check ((state is null) = (events_folded = 0) and (events_folded = 0) = (last_event_id = 0))
);

comment on table bayes.player_checkpoint is
'Where each player''s event log starts since retention (bayes.run_retention_command): the state after the events it folded and deleted. bayes.replay = this state + the events after last_event_id. Deleting a state deletes its row (trigger user_bayesian_state_delete_events).';
comment on column bayes.player_checkpoint.state is
'The encoded state after the folded events, replayed with the parameters of the run that folded them (params_revision); null when no event was folded yet (a replay starts from a new player''s state).';
comment on column bayes.player_checkpoint.last_message_epoch is
'The row clock after the folded events as a replay tracks it: the last message''s send time, epoch seconds (null: no message).';
comment on column bayes.player_checkpoint.decayed_epoch is
'The row clock after the folded events as a replay tracks it: decayed up to, epoch seconds (null: no message).';
comment on column bayes.player_checkpoint.last_event_id is
'The last event folded and deleted (0: none); the player''s log is his events after it.';
comment on column bayes.player_checkpoint.events_folded is
'How many events were folded into state, in all runs.';
comment on column bayes.player_checkpoint.retained_since is
'No event of the player after last_event_id occurred before this (a lower bound, as of the last run that looked at him): runs look at the player again only once their horizon has passed it.';
comment on column bayes.player_checkpoint.params_revision is
'bayes.params_revision when the row was written: the parameters state was replayed with.';
comment on column bayes.player_checkpoint.run_id is
'The run of bayes.retention_run that wrote the row.';
comment on column bayes.player_checkpoint.made_at is
'When the row was written.';

alter table bayes.player_checkpoint enable row level security;
revoke all on table bayes.player_checkpoint from public, anon, authenticated, service_role;
grant select on table bayes.player_checkpoint to service_role;
create policy player_checkpoint_readable on bayes.player_checkpoint
for select to service_role using (true);

-------------------------------------------------------------------------------
-- Deleting a state deletes its events (migration 0002) and now its
-- checkpoint. A retention batch that races with the delete never leaves a
-- checkpoint with state behind: it writes one only for a player whose folded
-- events it deleted itself in the same statement (the delete of the state
-- takes them first, or waits for the batch and then deletes its checkpoint,
-- a statement later).
-------------------------------------------------------------------------------
create or replace function bayes.delete_player_events()
returns trigger
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    with deleted as (
        delete from bayes.player_event as e
        using old_states as o
        where e.user_id = o.user_id
        returning e.event_id
    )
    delete from bayes.event_result as r
    using deleted as d
    where r.event_id = d.event_id;
    delete from bayes.player_checkpoint as c
    using old_states as o
    where c.user_id = o.user_id;
    return null;
end
$$;

comment on function bayes.delete_player_events() is
'Statement trigger of public.user_bayesian_state: deletes the events, their kept results (bayes.event_result) and the checkpoint (bayes.player_checkpoint) of deleted states. SECURITY DEFINER because the event log is append-only for the API roles.';

-------------------------------------------------------------------------------
-- One row per retention run, like bayes.decay_run: committed
-- first, updated after every batch; a run whose server died stays 'running'
-- until the next run marks it 'interrupted'.
-------------------------------------------------------------------------------
create table bayes.retention_run (
    run_id bigint generated always as identity primary key,
    horizon timestamptz not null,
    batch_size integer not null,
    status text not null default 'running',
    players bigint not null default 0,
    events_deleted bigint not null default 0,
    results_expired bigint not null default 0,
    skipped bigint not null default 0,
    batches integer not null default 0,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    sqlstate text,
    error text,
    constraint retention_run_status_known
    check (status in ('running', 'done', 'interrupted', 'overlapped', 'failed')),
    constraint retention_run_finished_when_not_running
    check ((status = 'running') = (finished_at is null)),
    constraint retention_run_error_when_failed
    check ((status = 'failed') = (error is not null) and (error is null) = (sqlstate is null))
);

comment on table bayes.retention_run is
'Log of the retention runs (bayes.run_retention_command): one row per run, updated after every batch. status: running (in progress, or its server died: the next run marks it interrupted), done, failed (sqlstate and error say why; its lock was released), interrupted, overlapped (another run held the lock; it did nothing).';
comment on column bayes.retention_run.horizon is
'p_now - event_retention_days: the run folded and deleted events that occurred before this instant.';
comment on column bayes.retention_run.status is
'running, done, failed, interrupted (the server or the session died during the run; set by the next run) or overlapped.';
comment on column bayes.retention_run.players is
'Players whose checkpoint moved (committed batches).';
comment on column bayes.retention_run.events_deleted is
'Events folded into checkpoints and deleted (committed batches).';
comment on column bayes.retention_run.results_expired is
'Stored first results removed by bayes.expire_event_results, when the database has it.';
comment on column bayes.retention_run.skipped is
'Players whose log could not be replayed (DATA_CORRUPTED): nothing of theirs was deleted; the run''s WARNINGs name them.';
comment on column bayes.retention_run.sqlstate is
'SQLSTATE of the error that ended a failed run; null unless status is failed.';
comment on column bayes.retention_run.error is
'Message of the error that ended a failed run (the caller got the same error); null unless status is failed.';

alter table bayes.retention_run enable row level security;
revoke all on table bayes.retention_run from public, anon, authenticated, service_role;
grant select on table bayes.retention_run to service_role;
create policy retention_run_readable on bayes.retention_run
for select to service_role using (true);

-------------------------------------------------------------------------------
-- The pg_cron job, hourly (at 7 past, away from the decay's quarter hours).
-- Set `bayes.retention_schedule` on the database before this migration runs,
-- or call bayes.schedule_retention('<schedule>') later; cron.schedule updates
-- the job of the same name. Its command is the DO block of
-- bayes.run_retention_command(), which the functions migration that follows
-- this one installs and gives the job (the end of
-- sql/functions/72_retention.sql); until then the job only fails, saying so.
-------------------------------------------------------------------------------
select cron.schedule(
    'bayes-run-retention',
    coalesce(nullif(current_setting('bayes.retention_schedule', true), ''), '7 * * * *'),
    $job$do $pending$ begin raise exception 'its command comes with the functions migration'; end $pending$$job$
);
