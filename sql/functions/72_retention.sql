-- Retention of the event log (issue 15): bayes.run_retention, which pg_cron
-- calls hourly, folds each player's events older than the horizon
-- (event_retention_days) into his checkpoint (bayes.player_checkpoint) and
-- deletes them; its step, lock key and schedule are in 71_retention_steps.sql.
-- docs/operations.md describes the job.

-- A procedure, because it commits after every batch: like bayes.run_decay
-- (70_decay.sql, whose comment explains the shape), it cannot pin its
-- search_path, so every name in it is schema-qualified; its session-level
-- lock is released by the one exception handler around every step, and a
-- failure marks its row 'failed' and raises the error again.
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
create or replace procedure bayes.run_retention(
    p_now timestamptz default now(),
    p_batch integer default 1000
)
language plpgsql
security invoker
as $$
declare
    v_checked boolean;
    v_skew_s double precision;
    c_lock_key constant bigint := bayes.retention_lock_key();
    v_run_id bigint;
    v_revision bigint;
    v_horizon timestamptz;
    v_horizon_s double precision;
    -- A lower bound of the occurred_at of any event written from now on
    -- (a message's send time may be max_message_age_h in the past).
    v_max_age interval;
    -- Keyset over user_id, from the smallest uuid up.
    v_after uuid := '00000000-0000-0000-0000-000000000000';
    -- One batch, as read (without a lock), and what bayes.fold_events made of it.
    v_ids uuid[];
    v_after_ids bigint[];
    v_states text[];
    v_last_message_at double precision[];
    v_decayed_at double precision[];
    v_events_folded bigint[];
    v_has_checkpoint boolean[];
    v_result record;
    v_count integer;
    v_deleted bigint;
    v_partial integer;
    v_skipped_now integer;
    v_expired_now bigint;
    v_window_h double precision;
    v_players bigint := 0;
    v_events bigint := 0;
    v_expired bigint := 0;
    v_skipped bigint := 0;
    v_batches integer := 0;
    v_phase text := 'start';  -- start, players, results, done
    v_started timestamptz := pg_catalog.clock_timestamp();
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
    v_context text;
begin
    v_checked := bayes.check_not_null(p_now, 'p_now', 'omit it to use now()');
    v_checked := bayes.check_not_null(p_batch, 'p_batch', 'omit it for 1000');
    v_checked := bayes.check_time(p_now, 'p_now');
    -- A p_now ahead of the database clock would move the horizon over
    -- events that are not old yet: at most clock_skew_s ahead, as for decay.
    v_skew_s := (select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'clock_skew_s');
    if p_now > pg_catalog.now() + pg_catalog.make_interval(secs => v_skew_s) then
        raise exception 'p_now % is % ahead of the database clock (%); at most clock_skew_s = % s ahead is accepted',
            p_now, pg_catalog.date_trunc('second', p_now - pg_catalog.now()), pg_catalog.now(), v_skew_s
            using errcode = '22023', hint = 'Omit p_now to prune up to now() - event_retention_days.';
    end if;
    if p_batch < 1 or p_batch > 100000 then
        raise exception 'p_batch must be in 1..100000, got %', p_batch using errcode = '22023';
    end if;
    v_horizon := p_now - pg_catalog.make_interval(days => (
        select (p.value #>> '{}')::integer from bayes.params as p where p.name = 'event_retention_days'
    ));
    v_horizon_s := pg_catalog.date_part('epoch', v_horizon);
    v_max_age := pg_catalog.make_interval(secs => 3600 * (
        select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'max_message_age_h'
    ));
    -- Outside a transaction block only (2D000 here, before the lock is taken).
    commit;

    if not pg_catalog.pg_try_advisory_lock(c_lock_key) then
        insert into bayes.retention_run (horizon, batch_size, status, finished_at)
        values (v_horizon, p_batch, 'overlapped', pg_catalog.clock_timestamp());
        commit;
        raise notice 'bayes.run_retention: another run is in progress; this one did nothing';
        return;
    end if;

    loop
        begin
            if v_phase = 'start' then
                -- Holding the lock, no other run is alive: a 'running' row is a run that died.
                update bayes.retention_run
                set status = 'interrupted', finished_at = pg_catalog.clock_timestamp()
                where status = 'running';
                insert into bayes.retention_run (horizon, batch_size)
                values (v_horizon, p_batch)
                returning run_id into v_run_id;
                v_phase := 'players';
            elsif v_phase = 'players' then
                v_revision := (select r.revision from bayes.params_revision as r);
                -- 1. The next batch of players that may have events older than
                -- the horizon, in user_id order, read without a lock. A
                -- player's retained_since is a lower bound of his kept events'
                -- occurred_at; a player retention never looked at has none
                -- older than his state's creation less max_message_age_h.
                -- One pass over the states per run, never over the log.
                select
                    pg_catalog.array_agg(due.user_id order by due.user_id),
                    pg_catalog.array_agg(coalesce(due.last_event_id, 0) order by due.user_id),
                    pg_catalog.array_agg(due.state::text order by due.user_id),
                    pg_catalog.array_agg(due.last_message_epoch order by due.user_id),
                    pg_catalog.array_agg(due.decayed_epoch order by due.user_id),
                    pg_catalog.array_agg(coalesce(due.events_folded, 0) order by due.user_id),
                    pg_catalog.array_agg(due.has_checkpoint order by due.user_id)
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
                    where s.user_id > v_after
                      and coalesce(c.retained_since, s.created_at - v_max_age) < v_horizon
                    order by s.user_id
                    limit p_batch
                ) as due;

                if v_ids is null then
                    v_phase := 'results';
                else
                    v_after := v_ids[pg_catalog.array_length(v_ids, 1)];

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
                            pg_catalog.unnest(v_ids),
                            pg_catalog.unnest(v_after_ids),
                            pg_catalog.unnest(v_result.last_event_ids),
                            pg_catalog.unnest(v_result.folded),
                            pg_catalog.unnest(v_result.states),
                            pg_catalog.unnest(v_result.last_message_at),
                            pg_catalog.unnest(v_result.decayed_at),
                            pg_catalog.unnest(v_result.events_folded),
                            pg_catalog.unnest(v_result.kept_from)
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
                        select p.user_id, pg_catalog.count(*) as n from pruned as p group by p.user_id
                    ),

                    written as (
                        insert into bayes.player_checkpoint as c (
                            user_id, state, last_message_epoch, decayed_epoch, last_event_id, events_folded,
                            retained_since, params_revision, run_id, made_at
                        )
                        select
                            f.user_id, f.state::jsonb, f.last_message_epoch, f.decayed_epoch, f.last_id, f.total,
                            coalesce(pg_catalog.to_timestamp(f.kept_from), pg_catalog.now() - v_max_age),
                            v_revision, v_run_id, pg_catalog.now()
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
                        (select pg_catalog.count(*)::integer from written),
                        (select coalesce(pg_catalog.sum(k.n), 0)::bigint from counted as k),
                        (
                            select pg_catalog.count(*)::integer
                            from folded as f inner join counted as k on f.user_id = k.user_id
                            where f.n <> k.n
                        )
                    into v_count, v_deleted, v_partial;
                    if v_partial > 0 then
                        -- Only an event deleted by hand can do this; the batch is undone.
                        raise exception 'bayes.run_retention: % players lost folded events to another delete during the batch',
                            v_partial using errcode = '40001', hint = 'Run it again.';
                    end if;

                    -- 4. Players with nothing old enough: only retained_since
                    -- moves (a row with no state for one never looked at), so
                    -- that later runs skip them until it is passed.
                    update bayes.player_checkpoint as c
                    set retained_since = coalesce(pg_catalog.to_timestamp(f.kept_from), pg_catalog.now() - v_max_age)
                    from rows from (
                        pg_catalog.unnest(v_ids), pg_catalog.unnest(v_result.folded),
                        pg_catalog.unnest(v_result.kept_from), pg_catalog.unnest(v_result.errors)
                    ) as f (user_id, n, kept_from, error)
                    where c.user_id = f.user_id and f.n = 0 and f.error is null;
                    insert into bayes.player_checkpoint (user_id, retained_since, params_revision, run_id)
                    select
                        f.user_id,
                        coalesce(pg_catalog.to_timestamp(f.kept_from), pg_catalog.now() - v_max_age),
                        v_revision,
                        v_run_id
                    from rows from (
                        pg_catalog.unnest(v_ids), pg_catalog.unnest(v_has_checkpoint), pg_catalog.unnest(v_result.folded),
                        pg_catalog.unnest(v_result.kept_from), pg_catalog.unnest(v_result.errors)
                    ) as f (user_id, has_checkpoint, n, kept_from, error)
                    where not f.has_checkpoint and f.n = 0 and f.error is null
                    on conflict (user_id) do nothing;

                    -- 5. A log that cannot be replayed keeps all its events.
                    v_skipped_now := pg_catalog.cardinality(pg_catalog.array_remove(v_result.errors, null));
                    if v_skipped_now > 0 then
                        raise warning 'bayes.run_retention: % players skipped, their logs cannot be replayed: %',
                            v_skipped_now, pg_catalog.array_to_string(pg_catalog.array_remove(v_result.errors, null), '; ');
                    end if;

                    v_players := v_players + v_count;
                    v_events := v_events + v_deleted;
                    v_skipped := v_skipped + v_skipped_now;
                    v_batches := v_batches + 1;
                    update bayes.retention_run
                    set players = v_players, events_deleted = v_events, skipped = v_skipped, batches = v_batches
                    where run_id = v_run_id;
                end if;
            elsif v_phase = 'results' then
                -- The stored first results past the idempotency window
                -- (bayes.event_result), one batch per transaction.
                v_window_h := (
                    select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'idempotency_window_h'
                );
                v_expired_now := bayes.expire_event_results(
                    p_now - pg_catalog.make_interval(secs => 3600 * v_window_h), p_batch
                );
                v_expired := v_expired + v_expired_now;
                update bayes.retention_run set results_expired = v_expired where run_id = v_run_id;
                if v_expired_now < p_batch then
                    update bayes.retention_run
                    set status = 'done', finished_at = pg_catalog.clock_timestamp()
                    where run_id = v_run_id;
                    v_phase := 'done';
                end if;
            end if;
            set constraints all immediate;
        exception when others or query_canceled or assert_failure then
            perform pg_catalog.pg_advisory_unlock(c_lock_key);
            get stacked diagnostics
                v_sqlstate = returned_sqlstate,
                v_message = message_text,
                v_detail = pg_exception_detail,
                v_hint = pg_exception_hint,
                v_context = pg_exception_context;
        end;
        exit when v_sqlstate is not null;
        commit;
        exit when v_phase = 'done';
        if v_phase = 'players' and v_batches > 0 then
            raise notice 'bayes.run_retention: batch %: % players, % events folded and deleted, % s',
                v_batches, v_players, v_events,
                pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - v_started)::numeric, 1);
        end if;
    end loop;

    if v_sqlstate is not null then
        if v_run_id is not null then
            begin
                update bayes.retention_run
                set status = 'failed', sqlstate = v_sqlstate, error = v_message,
                    finished_at = pg_catalog.clock_timestamp()
                where run_id = v_run_id;
            exception when others or query_canceled or assert_failure then
                raise warning 'bayes.run_retention: run % could not be marked failed (%); the next run marks it interrupted',
                    v_run_id, sqlerrm;
            end;
            commit;
        end if;
        raise log 'bayes.run_retention: run % failed after % batches: % %; context: %',
            v_run_id, v_batches, v_sqlstate, v_message, v_context;
        if v_detail <> '' then
            raise exception using errcode = v_sqlstate, message = v_message, detail = v_detail,
                hint = coalesce(nullif(v_hint, ''), 'bayes.retention_run says which run failed; its lock is released.');
        end if;
        raise exception using errcode = v_sqlstate, message = v_message,
            hint = coalesce(nullif(v_hint, ''), 'bayes.retention_run says which run failed; its lock is released.');
    end if;

    perform pg_catalog.pg_advisory_unlock(c_lock_key);
    raise log 'bayes.run_retention: run % pruned % events of % players before % in % batches, skipped %',
        v_run_id, v_events, v_players, v_horizon, v_batches, v_skipped;
    raise notice 'bayes.run_retention: done: % events of % players before % folded and deleted in % batches, % results expired, % skipped (run %)',
        v_events, v_players, v_horizon, v_batches, v_expired, v_skipped, v_run_id;
end
$$;

comment on procedure bayes.run_retention is  -- noqa: LT01
'Folds every player''s events that occurred before p_now - event_retention_days into his checkpoint (bayes.player_checkpoint, the state a replay of them gives) and deletes them, p_batch players per committed transaction, locking no state row; then deletes the kept first results past the idempotency window (bayes.expire_event_results). One run at a time (advisory lock bayes.retention_lock_key()). A run that fails releases its lock, marks its row failed with the error and raises the error. Progress: a NOTICE per batch and the row of bayes.retention_run. Call it outside a transaction block. Called by pg_cron (job bayes-run-retention).';
revoke all on procedure bayes.run_retention from public;
