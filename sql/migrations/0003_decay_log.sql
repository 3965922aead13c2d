-- Bulk decay (issue 4): the log of bayes.run_decay.

-------------------------------------------------------------------------------
-- One row per call of bayes.run_decay. A run commits its row first and
-- updates it after every batch, so any session can watch a run in progress;
-- a run whose server died stays 'running' until the next run marks it
-- 'interrupted'.
-------------------------------------------------------------------------------
create table bayes.decay_run (
    run_id bigint generated always as identity primary key,
    decay_to timestamptz not null,
    batch_size integer not null,
    status text not null default 'running',
    players bigint not null default 0,
    batches integer not null default 0,
    started_at timestamptz not null default clock_timestamp(),
    finished_at timestamptz,
    constraint decay_run_status_known
    check (status in ('running', 'done', 'interrupted', 'overlapped')),
    constraint decay_run_finished_when_not_running
    check ((status = 'running') = (finished_at is null))
);

comment on table bayes.decay_run is
'Log of bayes.run_decay: one row per call (''overlapped'' when another run held the lock), updated after every batch.';
comment on column bayes.decay_run.decay_to is
'The p_now of the run: every decayed player was decayed up to this instant.';
comment on column bayes.decay_run.players is
'Players decayed so far (committed batches).';

alter table bayes.decay_run enable row level security;
revoke all on table bayes.decay_run from public, anon, authenticated, service_role;
grant select on table bayes.decay_run to service_role;
create policy decay_run_readable on bayes.decay_run
for select to service_role using (true);
