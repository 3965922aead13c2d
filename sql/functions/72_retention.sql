-- Retention of the event log (issue 15): a run, which pg_cron starts hourly,
-- folds each player's events older than the horizon (event_retention_days)
-- into his checkpoint (bayes.player_checkpoint) and deletes them, then
-- deletes the kept first results past the idempotency window
-- (bayes.expire_event_results); its step, lock key and schedule are in
-- 71_retention_steps.sql. docs/operations.md describes the job.
--
-- The shape of a run is the bulk decay's (70_decay.sql, whose comment says
-- why): a run commits after every batch, so the loop that commits is not a
-- routine but a DO block, the text that bayes.run_retention_command
-- returns, which pg_cron runs as its job's command (and an operator with
-- psql's \gexec); every statement that reads or writes the tables runs in
-- one of two functions that pin their search_path:
-- bayes.begin_retention_run (checks, the lock, the run's row) and
-- bayes.retention_batch (one batch). Issue 15 first wrote it as the
-- procedure bayes.run_retention, which could not pin its search_path.
--
-- Live messages are never kept waiting by a run: it locks no state row.
-- That is safe because a message only ever appends an event, with a new
-- event_id (the row lock that writers take orders a player's events, so a
-- new event's id is above every committed one) and an occurred_at within
-- max_message_age_h of now, while a batch deletes a prefix of a player's log
-- (event ids up to the last one it folded, all read committed before it
-- started); the checkpoint is read by replay and the shadow tools only,
-- never by a message. A batch's write is one statement: the delete of the
-- folded events (row locks on those events only, which nothing else
-- touches but the delete of the whole state) and the upsert of their
-- checkpoints, committed at once.
drop procedure if exists bayes.run_retention(timestamptz, integer);

-- The first step of a run. Its lock is session-level, so that it outlives
-- the batches' commits: a step that fails while the lock is held releases
-- it (every handler below), or the session would keep it, and every later
-- run would find "another run in progress", until it disconnects.
create or replace function bayes.begin_retention_run(p_now timestamptz, p_batch integer)
returns bigint
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_skew_s double precision;
    v_horizon timestamptz;
    v_run_id bigint;
begin
    v_checked := bayes.check_not_null(p_now, 'p_now', 'omit it to use now()');
    v_checked := bayes.check_not_null(p_batch, 'p_batch', 'omit it for 1000');
    v_checked := bayes.check_time(p_now, 'p_now');
    -- A p_now ahead of the database clock would move the horizon over
    -- events that are not old yet: at most clock_skew_s ahead, as for decay.
    v_skew_s := (select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'clock_skew_s');
    if p_now > now() + make_interval(secs => v_skew_s) then
        raise exception 'p_now % is % ahead of the database clock (%); at most clock_skew_s = % s ahead is accepted',
            p_now, date_trunc('second', p_now - now()), now(), v_skew_s
            using errcode = '22023', hint = 'Omit p_now to prune up to now() - event_retention_days.';
    end if;
    if p_batch < 1 or p_batch > 100000 then
        raise exception 'p_batch must be in 1..100000, got %', p_batch using errcode = '22023';
    end if;
    v_horizon := p_now - make_interval(days => (
        select (p.value #>> '{}')::integer from bayes.params as p where p.name = 'event_retention_days'
    ));

    if not pg_try_advisory_lock(bayes.retention_lock_key()) then
        insert into bayes.retention_run (horizon, batch_size, status, finished_at)
        values (v_horizon, p_batch, 'overlapped', clock_timestamp());
        raise notice 'bayes.run_retention: another run is in progress; this one did nothing';
        return null;
    end if;
    begin
        -- Holding the lock, no other run is alive: a 'running' row is a run
        -- that died.
        update bayes.retention_run
        set status = 'interrupted', finished_at = clock_timestamp()
        where status = 'running';
        insert into bayes.retention_run (horizon, batch_size)
        values (v_horizon, p_batch)
        returning run_id into v_run_id;
        set constraints all immediate;
    exception when others or query_canceled or assert_failure then
        perform pg_advisory_unlock(bayes.retention_lock_key());
        raise;
    end;
    return v_run_id;
end
$$;

comment on function bayes.begin_retention_run is
'The first step of a retention run (the DO block of bayes.run_retention_command): checks p_now (not null, finite, at most clock_skew_s ahead) and p_batch (1..100000), takes the session-level advisory lock bayes.retention_lock_key(), marks runs that died interrupted and inserts the run''s row of bayes.retention_run (its horizon: p_now - event_retention_days); returns its run_id. When another run holds the lock it records an overlapped run, says so in a NOTICE and returns null.';
revoke all on function bayes.begin_retention_run from public;

-- One batch of a run, in the run's transaction for that batch (the DO block
-- commits after it): in phase 'players', the next p_batch players after
-- p_after; once none is left, phase 'results', the next p_batch kept first
-- results past the idempotency window. It never raises: an error rolls
-- back what the batch did, releases the run's lock, marks the run failed
-- and comes back in the error_* columns, so that the DO block commits that
-- and raises the error again. OTHERS leaves out QUERY_CANCELED (a statement
-- timeout, a cancel) and ASSERT_FAILURE: they are caught too. SET
-- CONSTRAINTS ALL IMMEDIATE makes a deferred constraint or trigger fail
-- here rather than at the block's COMMIT.
create or replace function bayes.retention_batch(
    p_run_id bigint,
    p_now timestamptz,
    p_batch integer,
    p_phase text,
    p_after uuid,
    out phase text,
    out after uuid,
    out finished boolean,
    out horizon timestamptz,
    out players integer,
    out events_deleted bigint,
    out results_expired bigint,
    out skipped integer,
    out error_sqlstate text,
    out error_message text,
    out error_detail text,
    out error_hint text
)
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_revision bigint;
    v_horizon_s double precision;
    -- A lower bound of the occurred_at of any event written from now on
    -- (a message's send time may be max_message_age_h in the past).
    v_max_age interval;
    -- One batch, as read (without a lock), and what bayes.fold_events made of it.
    v_ids uuid[];
    v_after_ids bigint[];
    v_states text[];
    v_last_message_at double precision[];
    v_decayed_at double precision[];
    v_events_folded bigint[];
    v_has_checkpoint boolean[];
    v_result record;  -- bayes.fold_events
    v_partial integer;
    v_window_h double precision;
    v_context text;
begin
    phase := p_phase;
    after := p_after;
    finished := false;
    players := 0;
    events_deleted := 0;
    results_expired := 0;
    skipped := 0;
    begin
        horizon := (select r.horizon from bayes.retention_run as r where r.run_id = p_run_id and r.status = 'running');
        if horizon is null then
            raise exception 'bayes.run_retention: run % is not running', p_run_id using errcode = '22023';
        end if;
        if p_phase is distinct from 'players' and p_phase is distinct from 'results' then
            raise exception 'p_phase must be players or results, got %', coalesce(p_phase, 'null')
                using errcode = '22023';
        end if;

        if p_phase = 'players' then
            v_revision := (select r.revision from bayes.params_revision as r);
            v_horizon_s := date_part('epoch', horizon);
            v_max_age := make_interval(secs => 3600 * (
                select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'max_message_age_h'
            ));
            -- 1. The next batch of players that may have events older than
            -- the horizon, in user_id order after p_after, read without a
            -- lock. A player's retained_since is a lower bound of his kept
            -- events' occurred_at; a player retention never looked at has
            -- none older than his state's creation less max_message_age_h.
            -- One pass over the states per run, never over the log.
            select
                array_agg(due.user_id order by due.user_id),
                array_agg(coalesce(due.last_event_id, 0) order by due.user_id),
                array_agg(due.state::text order by due.user_id),
                array_agg(due.last_message_epoch order by due.user_id),
                array_agg(due.decayed_epoch order by due.user_id),
                array_agg(coalesce(due.events_folded, 0) order by due.user_id),
                array_agg(due.has_checkpoint order by due.user_id)
            into v_ids, v_after_ids, v_states, v_last_message_at, v_decayed_at, v_events_folded, v_has_checkpoint
            from (
                select
                    s.user_id,
                    c.last_event_id,
                    c.state,
                    c.last_message_epoch,
                    c.decayed_epoch,
                    c.events_folded,
                    c.user_id is not null as has_checkpoint
                from public.user_bayesian_state as s
                left join bayes.player_checkpoint as c on s.user_id = c.user_id
                where s.user_id > p_after
                  and coalesce(c.retained_since, s.created_at - v_max_age) < horizon
                order by s.user_id
                limit p_batch
            ) as due;

            if v_ids is null then
                -- No player left: the results phase starts in this batch.
                phase := 'results';
                after := null;
            else
                after := v_ids[cardinality(v_ids)];

                -- 2. Replay each player's old events from his checkpoint,
                -- still without a lock (the longest step).
                v_result := bayes.fold_events(
                    v_ids, v_after_ids, v_states, v_last_message_at, v_decayed_at, v_events_folded,
                    v_horizon_s, v_revision
                );

                -- 3. One statement: delete the folded events and write the
                -- checkpoints. A checkpoint is written only for a player
                -- whose folded events this statement deleted, all of them:
                -- when his state was deleted meanwhile (its trigger took
                -- his events and checkpoint), there is nothing to write.
                with folded as (
                    select f.*
                    from rows from (
                        unnest(v_ids),
                        unnest(v_after_ids),
                        unnest(v_result.last_event_ids),
                        unnest(v_result.folded),
                        unnest(v_result.states),
                        unnest(v_result.last_message_at),
                        unnest(v_result.decayed_at),
                        unnest(v_result.events_folded),
                        unnest(v_result.kept_from)
                    ) as f (user_id, after_id, last_id, n, state, last_message_epoch, decayed_epoch, total, kept_from)
                    where f.n > 0
                ),

                pruned as (
                    delete from bayes.player_event as e
                    using folded as f
                    where e.user_id = f.user_id and e.event_id > f.after_id and e.event_id <= f.last_id
                    returning e.user_id, e.event_id
                ),

                -- A kept result of a pruned event (only when the
                -- idempotency window is longer than the horizon) goes with it.
                results_pruned as (
                    delete from bayes.event_result as r
                    using pruned as p
                    where r.event_id = p.event_id
                ),

                counted as (
                    select p.user_id, count(*) as n from pruned as p group by p.user_id
                ),

                written as (
                    insert into bayes.player_checkpoint as c (
                        user_id, state, last_message_epoch, decayed_epoch, last_event_id, events_folded,
                        retained_since, params_revision, run_id, made_at
                    )
                    select
                        f.user_id, f.state::jsonb, f.last_message_epoch, f.decayed_epoch, f.last_id, f.total,
                        coalesce(to_timestamp(f.kept_from), now() - v_max_age),
                        v_revision, p_run_id, now()
                    from folded as f
                    inner join counted as k on f.user_id = k.user_id and f.n = k.n
                    on conflict (user_id) do update
                        set state = excluded.state,
                            last_message_epoch = excluded.last_message_epoch,
                            decayed_epoch = excluded.decayed_epoch,
                            last_event_id = excluded.last_event_id,
                            events_folded = excluded.events_folded,
                            retained_since = excluded.retained_since,
                            params_revision = excluded.params_revision,
                            run_id = excluded.run_id,
                            made_at = excluded.made_at
                    returning 1
                )

                select
                    (select count(*)::integer from written),
                    (select coalesce(sum(k.n), 0)::bigint from counted as k),
                    (
                        select count(*)::integer
                        from folded as f inner join counted as k on f.user_id = k.user_id
                        where f.n <> k.n
                    )
                into players, events_deleted, v_partial;
                if v_partial > 0 then
                    -- Only an event deleted by hand can do this; the batch is undone.
                    raise exception 'bayes.run_retention: % players lost folded events to another delete during the batch',
                        v_partial using errcode = '40001', hint = 'Run it again.';
                end if;

                -- 4. Players with nothing old enough: only retained_since
                -- moves (a row with no state for one never looked at), so
                -- that later runs skip them until it is passed.
                update bayes.player_checkpoint as c
                set retained_since = coalesce(to_timestamp(f.kept_from), now() - v_max_age)
                from rows from (
                    unnest(v_ids), unnest(v_result.folded), unnest(v_result.kept_from), unnest(v_result.errors)
                ) as f (user_id, n, kept_from, error)
                where c.user_id = f.user_id and f.n = 0 and f.error is null;
                insert into bayes.player_checkpoint (user_id, retained_since, params_revision, run_id)
                select
                    f.user_id,
                    coalesce(to_timestamp(f.kept_from), now() - v_max_age),
                    v_revision,
                    p_run_id
                from rows from (
                    unnest(v_ids), unnest(v_has_checkpoint), unnest(v_result.folded),
                    unnest(v_result.kept_from), unnest(v_result.errors)
                ) as f (user_id, has_checkpoint, n, kept_from, error)
                where not f.has_checkpoint and f.n = 0 and f.error is null
                on conflict (user_id) do nothing;

                -- 5. A log that cannot be replayed keeps all its events; the
                -- player is recorded in bayes.retention_skipped.
                skipped := cardinality(array_remove(v_result.errors, null));
                if skipped > 0 then
                    insert into bayes.retention_skipped (run_id, user_id, error)
                    select p_run_id, f.user_id, f.error
                    from rows from (unnest(v_ids), unnest(v_result.errors)) as f (user_id, error)
                    where f.error is not null;
                    raise warning 'bayes.run_retention: % players skipped, their logs cannot be replayed: %',
                        skipped, array_to_string(array_remove(v_result.errors, null), '; ')
                        using hint = 'bayes.retention_skipped lists them; bayes.replay(user_id) raises the same error.';
                end if;

                update bayes.retention_run as r
                set players = r.players + retention_batch.players,
                    events_deleted = r.events_deleted + retention_batch.events_deleted,
                    skipped = r.skipped + retention_batch.skipped,
                    batches = r.batches + 1
                where r.run_id = p_run_id;
            end if;
        end if;

        if phase = 'results' then
            -- The stored first results past the idempotency window
            -- (bayes.event_result), one batch per transaction. Fewer than
            -- p_batch: none is left, and this is the run's last statement
            -- (the DO block releases the lock once it is committed).
            v_window_h := (
                select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'idempotency_window_h'
            );
            results_expired := bayes.expire_event_results(p_now - make_interval(secs => 3600 * v_window_h), p_batch);
            finished := results_expired < p_batch;
            update bayes.retention_run as r
            set results_expired = r.results_expired + retention_batch.results_expired,
                status = case when finished then 'done' else r.status end,
                finished_at = case when finished then clock_timestamp() end
            where r.run_id = p_run_id;
        end if;
        set constraints all immediate;
    exception when others or query_canceled or assert_failure then
        perform pg_advisory_unlock(bayes.retention_lock_key());
        get stacked diagnostics
            error_sqlstate = returned_sqlstate,
            error_message = message_text,
            error_detail = pg_exception_detail,
            error_hint = pg_exception_hint,
            v_context = pg_exception_context;
        finished := true;
        players := 0;
        events_deleted := 0;
        results_expired := 0;
        skipped := 0;
        raise log 'bayes.run_retention: run % failed: % %; context: %', p_run_id, error_sqlstate, error_message, v_context;
        begin
            update bayes.retention_run
            set status = 'failed', sqlstate = error_sqlstate, error = error_message, finished_at = clock_timestamp()
            where run_id = p_run_id and status = 'running';
        exception when others or query_canceled or assert_failure then
            raise warning 'bayes.run_retention: run % could not be marked failed (%); the next run marks it interrupted',
                p_run_id, sqlerrm;
        end;
    end;
end
$$;

comment on function bayes.retention_batch is
'One batch of a retention run (the DO block of bayes.run_retention_command). Phase players: the next p_batch players after p_after (user_id order) that may have events before the run''s horizon; each one''s events before it are replayed from his checkpoint (bayes.fold_events), deleted and folded into his checkpoint in one statement, locking no state row; a log that cannot be replayed is skipped (its events stay), recorded in bayes.retention_skipped, with a WARNING. When no player is left, phase results: the next p_batch kept first results past the idempotency window (bayes.expire_event_results); fewer than p_batch: the run is marked done and finished is true. Returns the phase and p_after for the next batch, the run''s horizon and what the batch did; never raises: an error releases the run''s lock, marks the run failed and is returned in the error_* columns.';
revoke all on function bayes.retention_batch from public;

create or replace function bayes.run_retention_command(
    p_now timestamptz default null,
    p_batch integer default 1000
)
returns text
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $body$
begin
    return format(
        $cmd$do $bayes_run_retention$
-- A retention run (bayes.run_retention_command; docs/operations.md, Retention of the event log).
declare
    v_now constant timestamptz := coalesce(%s::timestamptz, pg_catalog.now());
    v_batch constant integer := %s::integer;
    v_run_id bigint;
    v_step record;
    v_phase text := 'players';
    v_after uuid := '00000000-0000-0000-0000-000000000000';
    v_players bigint := 0;
    v_events bigint := 0;
    v_expired bigint := 0;
    v_skipped bigint := 0;
    v_batches integer := 0;
    v_started timestamptz := pg_catalog.clock_timestamp();
begin
    -- Inside a transaction block the run could not commit its batches:
    -- fail here (2D000), before the lock is taken.
    commit;
    v_run_id := bayes.begin_retention_run(v_now, v_batch);
    commit;
    if v_run_id is null then
        return;
    end if;
    loop
        v_step := bayes.retention_batch(v_run_id, v_now, v_batch, v_phase, v_after);
        commit;
        if v_step.error_sqlstate is not null and v_step.error_detail <> '' then
            raise exception using errcode = v_step.error_sqlstate, message = v_step.error_message,
                detail = v_step.error_detail,
                hint = coalesce(nullif(v_step.error_hint, ''), 'bayes.retention_run says which run failed; its lock is released.');
        elsif v_step.error_sqlstate is not null then
            raise exception using errcode = v_step.error_sqlstate, message = v_step.error_message,
                hint = coalesce(nullif(v_step.error_hint, ''), 'bayes.retention_run says which run failed; its lock is released.');
        end if;
        v_players := v_players + v_step.players;
        v_events := v_events + v_step.events_deleted;
        v_expired := v_expired + v_step.results_expired;
        v_skipped := v_skipped + v_step.skipped;
        if v_phase = 'players' and v_step.after is not null then
            v_batches := v_batches + 1;
            raise notice 'bayes.run_retention: batch %%: %% players, %% events folded and deleted, %% s',
                v_batches, v_players, v_events,
                pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - v_started)::numeric, 1);
        end if;
        exit when v_step.finished;
        v_phase := v_step.phase;
        v_after := v_step.after;
    end loop;
    perform pg_catalog.pg_advisory_unlock(bayes.retention_lock_key());
    raise log 'bayes.run_retention: run %% pruned %% events of %% players before %% in %% batches, skipped %%',
        v_run_id, v_events, v_players, v_step.horizon, v_batches, v_skipped;
    raise notice 'bayes.run_retention: done: %% events of %% players before %% folded and deleted in %% batches, %% results expired, %% skipped (run %%)',
        v_events, v_players, v_step.horizon, v_batches, v_expired, v_skipped, v_run_id;
end
$bayes_run_retention$
$cmd$,
        coalesce(quote_literal(p_now), 'null'),
        coalesce(p_batch::text, 'null')
    );
end
$body$;

comment on function bayes.run_retention_command is
'The command of a retention run of the event log, as text: a DO block that folds every player''s events that occurred before p_now - event_retention_days (p_now default: now() when the block starts) into his checkpoint (bayes.player_checkpoint) and deletes them, p_batch players per committed transaction, locking no state row, then deletes the kept first results past the idempotency window, p_batch per transaction (bayes.begin_retention_run, then bayes.retention_batch until it says finished); one run at a time (advisory lock bayes.retention_lock_key()). A run that fails releases its lock, marks its row failed and raises the error. Progress: a NOTICE per batch and the row of bayes.retention_run. pg_cron''s job bayes-run-retention runs it; by hand, in psql outside a transaction block: select bayes.run_retention_command() \gexec. It is a DO block and not a procedure because a routine that commits cannot pin its search_path (docs/operations.md).';
revoke all on function bayes.run_retention_command from public;

-- The job (migration 0012) runs the DO block from now on, on its schedule.
select bayes.schedule_retention(j.schedule)
from cron.job as j
where j.jobname = 'bayes-run-retention';
