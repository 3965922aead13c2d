-- Hardening of the bulk decay (issue 12): a corrupt row is skipped and
-- recorded instead of stopping the run for everyone, and a run that fails
-- says so (status 'failed', with its error) instead of staying 'running'.

-------------------------------------------------------------------------------
-- bayes.decay_run: how many rows a run skipped, and why a failed run failed.
-------------------------------------------------------------------------------
alter table bayes.decay_run
add column skipped bigint not null default 0,
add column sqlstate text,
add column error text;

alter table bayes.decay_run drop constraint decay_run_status_known;
alter table bayes.decay_run add constraint decay_run_status_known
check (status in ('running', 'done', 'interrupted', 'overlapped', 'failed'));
alter table bayes.decay_run add constraint decay_run_error_when_failed
check ((status = 'failed') = (error is not null) and (error is null) = (sqlstate is null));

comment on table bayes.decay_run is
'Log of bayes.run_decay: one row per call, updated after every batch. status: running (in progress, or its server died: the next run marks it interrupted), done, failed (sqlstate and error say why; its lock was released), interrupted, overlapped (another run held the lock; it did nothing).';
comment on column bayes.decay_run.status is
'running, done, failed, interrupted (the server or the session died during the run; set by the next run) or overlapped.';
comment on column bayes.decay_run.skipped is
'Rows skipped so far because their state could not be decayed (corrupt): one row each in bayes.decay_skipped.';
comment on column bayes.decay_run.sqlstate is
'SQLSTATE of the error that ended a failed run; null unless status is failed.';
comment on column bayes.decay_run.error is
'Message of the error that ended a failed run (the caller got the same error); null unless status is failed.';

-------------------------------------------------------------------------------
-- One row per row that a run skipped: which player, which error, when. A
-- corrupt row is skipped (and recorded) by every run until it is repaired.
-------------------------------------------------------------------------------
create table bayes.decay_skipped (
    run_id bigint not null references bayes.decay_run (run_id) on delete cascade,
    user_id uuid not null,
    sqlstate text not null,
    error text not null,
    skipped_at timestamptz not null default clock_timestamp(),
    primary key (run_id, user_id)
);

comment on table bayes.decay_skipped is
'Rows that bayes.run_decay skipped because their state could not be decayed: one row per run and player. Deleting a run deletes its rows; a deleted player keeps his (it is a log).';
comment on column bayes.decay_skipped.run_id is
'The run (bayes.decay_run) that skipped the row.';
comment on column bayes.decay_skipped.user_id is
'The player whose row of public.user_bayesian_state was skipped and left as it was.';
comment on column bayes.decay_skipped.sqlstate is
'What a read of the state raises: XX001 (corrupt), 0A000 (a schema newer than the code), XX000 (anything else).';
comment on column bayes.decay_skipped.error is
'The codec''s error message, naming the JSON path of the first problem; bayes.state_problem(state) says the same of the row now.';
comment on column bayes.decay_skipped.skipped_at is
'When the run skipped the row (its batch).';

create index decay_skipped_user_id_idx on bayes.decay_skipped (user_id);

alter table bayes.decay_skipped enable row level security;
revoke all on table bayes.decay_skipped from public, anon, authenticated, service_role;
grant select on table bayes.decay_skipped to service_role;
create policy decay_skipped_readable on bayes.decay_skipped
for select to service_role using (true);

-------------------------------------------------------------------------------
-- bayes.decay_states returns each row's error beside its decayed state (the
-- functions migration that follows creates it again with its new result).
-------------------------------------------------------------------------------
drop function if exists bayes.decay_states(text[], double precision[], double precision[], double precision, bigint);
