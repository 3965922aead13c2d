-- What the per-message path needs from the schema (issue 3).

-------------------------------------------------------------------------------
-- A revision number of the parameter tables, bumped by any change to them.
-- The PL/Python code caches the parsed parameters per backend and re-reads
-- them only when this number moves, so the per-message path does not rebuild
-- the parameter snapshot, and a changed row still changes the next call.
-------------------------------------------------------------------------------

create table bayes.params_revision (
    singleton boolean primary key default true,
    revision bigint not null,
    changed_at timestamptz not null default now(),
    constraint params_revision_one_row check (singleton)
);

comment on table bayes.params_revision is
'One row: revision of bayes.chapter_params and bayes.params, bumped by a statement trigger on any change.';

insert into bayes.params_revision (singleton, revision) values (true, 1);

create function bayes.bump_params_revision()
returns trigger
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    update bayes.params_revision
    set revision = revision + 1, changed_at = now();
    return null;
end
$$;

comment on function bayes.bump_params_revision() is
'Statement trigger of the parameter tables: bumps bayes.params_revision so that every backend re-reads the parameters.';
revoke all on function bayes.bump_params_revision() from public;

create trigger chapter_params_bump_revision
after insert or update or delete or truncate on bayes.chapter_params
for each statement execute function bayes.bump_params_revision();

create trigger params_bump_revision
after insert or update or delete or truncate on bayes.params
for each statement execute function bayes.bump_params_revision();

alter table bayes.params_revision enable row level security;
create policy params_revision_readable on bayes.params_revision
for select to authenticated, service_role using (true);
revoke all on table bayes.params_revision from public, anon, authenticated, service_role;
grant select on table bayes.params_revision to authenticated, service_role;

-------------------------------------------------------------------------------
-- The event log, leaner to write: every message appends one row, so each
-- index and check on it is paid per message.
-- * The foreign key to auth.users made every insert lock the auth.users row
--   (FOR KEY SHARE, itself a write). Events belong to the player's state row
--   instead: deleting the state (directly, or through the cascade from
--   auth.users) deletes its events, by trigger.
-- * The primary key becomes (user_id, event_id), which is also the index that
--   replay reads a player's log by; the separate index goes.
-------------------------------------------------------------------------------
alter table bayes.player_event drop constraint player_event_user_id_fkey;
alter table bayes.player_event drop constraint player_event_pkey;
drop index bayes.player_event_user_event_idx;
alter table bayes.player_event add primary key (user_id, event_id);

-- SECURITY DEFINER, the one exception in the engine: the log is append-only
-- for every API role (service_role may not delete events), yet deleting a
-- state must take its events with it. The function does only that, for the
-- rows of the deleting statement; nobody is granted EXECUTE (a trigger needs
-- none), and its search_path is pinned like every other function's.
create function bayes.delete_player_events()
returns trigger
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    delete from bayes.player_event as e
    using old_states as o
    where e.user_id = o.user_id;
    return null;
end
$$;

comment on function bayes.delete_player_events() is
'Statement trigger of public.user_bayesian_state: deletes the events of deleted states. SECURITY DEFINER because the event log is append-only for the API roles.';
revoke all on function bayes.delete_player_events() from public;

create trigger user_bayesian_state_delete_events
after delete on public.user_bayesian_state
referencing old table as old_states
for each statement execute function bayes.delete_player_events();
