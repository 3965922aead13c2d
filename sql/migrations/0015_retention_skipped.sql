-- Retention of the event log (issue 15): a player whose log cannot be
-- replayed is skipped by a retention run (his events stay) and recorded here,
-- as bayes.decay_skipped records the rows the bulk decay skips, so that an
-- operator finds him without reading the server log.

create table bayes.retention_skipped (
    run_id bigint not null references bayes.retention_run (run_id) on delete cascade,
    user_id uuid not null,
    error text not null,
    skipped_at timestamptz not null default clock_timestamp(),
    primary key (run_id, user_id)
);

comment on table bayes.retention_skipped is
'Players whose events a retention run could not fold into a checkpoint because their log cannot be replayed (their events stay): one row per run and player. Deleting a run deletes its rows; a deleted player keeps his (it is a log).';
comment on column bayes.retention_skipped.run_id is
'The run (bayes.retention_run) that skipped the player.';
comment on column bayes.retention_skipped.user_id is
'The player whose old events were left in bayes.player_event.';
comment on column bayes.retention_skipped.error is
'Why his log cannot be replayed: the engine''s message, naming the event (bayes.replay(user_id) raises the same).';
comment on column bayes.retention_skipped.skipped_at is
'When the run skipped the player (its batch).';

create index retention_skipped_user_id_idx on bayes.retention_skipped (user_id);

alter table bayes.retention_skipped enable row level security;
revoke all on table bayes.retention_skipped from public, anon, authenticated, service_role;
grant select on table bayes.retention_skipped to service_role;
create policy retention_skipped_readable on bayes.retention_skipped
for select to service_role using (true);
