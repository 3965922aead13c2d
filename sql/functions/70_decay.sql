-- Absence decay in bulk (MODEL.md section 5): bayes.run_decay, which pg_cron
-- calls every 15 minutes. Each batch of rows goes through one call of
-- bayes.decay_states, which runs the formulas of bayes_engine.model (the ones
-- bayes_process_message applies lazily before every message) over the whole
-- batch; bayes.decay_state does the same for one state.

create or replace function bayes.decay_state(
    p_state jsonb,
    p_params_revision bigint,
    p_last_message_at double precision,
    p_decayed_at double precision,
    p_now double precision
)
returns jsonb
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.decay_state(plpy, p_state, p_params_revision, p_last_message_at, p_decayed_at, p_now)
$$;

comment on function bayes.decay_state is
'A stored state decayed from p_decayed_at up to p_now (epoch seconds; MODEL.md section 5), as bayes.run_decay writes it.';
revoke all on function bayes.decay_state from public;

create or replace function bayes.decay_states(
    p_states text[],
    p_last_message_at double precision[],
    p_decayed_at double precision[],
    p_now double precision,
    p_params_revision bigint,
    out states text[],
    out sqlstates text[],
    out errors text[]
)
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.decay_states(plpy, p_states, p_last_message_at, p_decayed_at, p_now, p_params_revision)
$$;

comment on function bayes.decay_states is
'A batch of stored states (jsonb text) decayed up to p_now (epoch seconds; MODEL.md section 5), one item per input in each array, in order: the step bayes.run_decay runs on each batch. A decayed row has its state (equal to bayes.decay_state of the row) and null sqlstate and error; a row that cannot be decayed (corrupt) has a null state and the SQLSTATE and message a read of it would raise. A row never makes the call fail.';
revoke all on function bayes.decay_states from public;

create or replace function bayes.decay_lock_key()
returns bigint
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
return 7300215847719049216;

comment on function bayes.decay_lock_key is
'The advisory lock key that bayes.run_decay holds while it runs: pg_try_advisory_lock(bayes.decay_lock_key()) keeps runs from starting.';
revoke all on function bayes.decay_lock_key from public;

-- A procedure, because it commits after every batch. PostgreSQL forbids
-- transaction control in a routine that has a SET clause, so this one cannot
-- pin its search_path: instead every name in it is schema-qualified (and
-- pg_catalog is always searched first). Nobody but its owner (the role that
-- runs pg_cron's jobs) may call it.
--
-- Its lock is session-level, so that it outlives the batches' commits; a
-- run that fails must therefore release it itself, or the session would
-- keep it (and every later run would find "another run in progress") until
-- it disconnects. Every step that runs while the lock is held (the run's
-- first statements, each batch, its last statement) runs in the one block
-- with an exception handler below, for every error (OTHERS leaves out
-- QUERY_CANCELED, which a statement timeout or a cancel raises, and
-- ASSERT_FAILURE), which releases the lock and keeps the error. The
-- COMMITs are outside it (PostgreSQL forbids a COMMIT inside a block that
-- has an exception handler), and each step ends with SET CONSTRAINTS ALL
-- IMMEDIATE, so that a deferred constraint or trigger fails in the block
-- rather than at the COMMIT. After a failure the run marks its row
-- 'failed', commits, and raises the error again.
create or replace procedure bayes.run_decay(
    p_now timestamptz default now(),
    p_batch integer default 5000
)
language plpgsql
security invoker
as $$
declare
    v_checked boolean;
    v_skew_s double precision;
    c_lock_key constant bigint := bayes.decay_lock_key();
    v_run_id bigint;
    v_revision bigint;
    v_now_s double precision;
    -- Keyset over user_id, from the smallest uuid up (Supabase Auth never
    -- issues the nil uuid).
    v_after uuid := '00000000-0000-0000-0000-000000000000';
    -- One batch, as read (without a lock), and its decayed states or errors.
    v_ids uuid[];
    v_versions bigint[];
    v_states text[];
    v_last_message_at double precision[];
    v_decayed_at double precision[];
    v_result record;  -- bayes.decay_states: states, sqlstates, errors
    v_decayed jsonb[];
    v_count integer;
    v_skipped_now integer;
    v_players bigint := 0;
    v_skipped bigint := 0;
    v_batches integer := 0;
    v_finished boolean := false;
    v_started timestamptz := pg_catalog.clock_timestamp();
    -- The error that ended the run, if one did.
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
    v_context text;
begin
    v_checked := bayes.check_not_null(p_now, 'p_now', 'omit it to use now()');
    v_checked := bayes.check_not_null(p_batch, 'p_batch', 'omit it for 5000');
    v_checked := bayes.check_time(p_now, 'p_now');
    -- A p_now ahead of the database clock would move decayed_at into the
    -- future, where no later run or message decays the player again (issue
    -- 12): at most clock_skew_s ahead, as for a message's send time.
    v_skew_s := (select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'clock_skew_s');
    if p_now > pg_catalog.now() + pg_catalog.make_interval(secs => v_skew_s) then
        raise exception 'p_now % is % ahead of the database clock (%); at most clock_skew_s = % s ahead is accepted',
            p_now, pg_catalog.date_trunc('second', p_now - pg_catalog.now()), pg_catalog.now(), v_skew_s
            using errcode = '22023', hint = 'Omit p_now to decay up to now(); a past p_now decays up to then.';
    end if;
    if p_batch < 1 or p_batch > 1000000 then
        raise exception 'p_batch must be in 1..1000000, got %', p_batch using errcode = '22023';
    end if;
    -- Called inside a transaction block (or from a function), the run could
    -- not commit its batches: fail here (2D000, invalid transaction
    -- termination), before the lock is taken, rather than at the first
    -- batch, which would leave the lock with the session.
    commit;

    if not pg_catalog.pg_try_advisory_lock(c_lock_key) then
        insert into bayes.decay_run (decay_to, batch_size, status, finished_at)
        values (p_now, p_batch, 'overlapped', pg_catalog.clock_timestamp());
        commit;
        raise notice 'bayes.run_decay: another run is in progress; this one did nothing';
        return;
    end if;

    v_now_s := pg_catalog.date_part('epoch', p_now);
    loop
        begin
            if v_run_id is null then
                -- The run's first statements. Holding the lock, no other run
                -- is alive: a 'running' row is a run that died.
                update bayes.decay_run
                set status = 'interrupted', finished_at = pg_catalog.clock_timestamp()
                where status = 'running';
                insert into bayes.decay_run (decay_to, batch_size)
                values (p_now, p_batch)
                returning run_id into v_run_id;
            else
                v_revision := (select r.revision from bayes.params_revision as r);
                -- 1. The next batch of players due for decay, in user_id
                -- order after the previous batch, read without locking them.
                -- A row without a chapter (its state has no valid "c") is due
                -- as soon as its last message is past: it cannot be decayed,
                -- but it is skipped and recorded rather than never seen.
                select
                    pg_catalog.array_agg(due.user_id order by due.user_id),
                    pg_catalog.array_agg(due.version order by due.user_id),
                    pg_catalog.array_agg(due.state::text order by due.user_id),
                    pg_catalog.array_agg(pg_catalog.date_part('epoch', due.last_message_at) order by due.user_id),
                    pg_catalog.array_agg(pg_catalog.date_part('epoch', due.decayed_at) order by due.user_id)
                into v_ids, v_versions, v_states, v_last_message_at, v_decayed_at
                from (
                    select s.user_id, s.version, s.state, s.last_message_at, s.decayed_at
                    from public.user_bayesian_state as s
                    left join bayes.chapter_params as cp on s.chapter = cp.chapter
                    where s.user_id > v_after
                      and s.last_message_at is not null
                      and s.last_message_at + pg_catalog.make_interval(
                          secs => 3600 * coalesce(least(cp.decay_grace_h, cp.vice_decay_grace_h), 0)
                      ) < p_now
                      and (s.decayed_at is null or s.decayed_at < p_now)
                    order by s.user_id
                    limit p_batch
                ) as due;

                if v_ids is null then
                    -- The run's last statement.
                    update bayes.decay_run
                    set status = 'done', finished_at = pg_catalog.clock_timestamp()
                    where run_id = v_run_id;
                    v_finished := true;
                else
                    v_after := v_ids[pg_catalog.array_length(v_ids, 1)];

                    -- 2. Decay the batch, and parse the new states, still
                    -- without a lock: live messages are never kept waiting by
                    -- this, the longest step. A row that cannot be decayed
                    -- comes back with a null state and its error instead of
                    -- failing the batch.
                    v_result := bayes.decay_states(v_states, v_last_message_at, v_decayed_at, v_now_s, v_revision);
                    v_decayed := v_result.states::jsonb[];

                    -- 3. Write the rows that are still as read. A row locked
                    -- by a live message is skipped, and so is one that a
                    -- message has changed since step 1 (its version moved):
                    -- that message decayed it lazily. A row that could not be
                    -- decayed (its state is null) is left as it is.
                    -- The states come from the codec: skip the table's check of
                    -- each row (trigger user_bayesian_state_valid), for this
                    -- batch's transaction only.
                    perform pg_catalog.set_config('bayes.state_writer', 'engine', true);
                    with batch as (
                        select b.user_id, b.version, b.state
                        from rows from (pg_catalog.unnest(v_ids), pg_catalog.unnest(v_versions), pg_catalog.unnest(v_decayed))
                            as b (user_id, version, state)
                    ),
                    unchanged as (
                        select s.user_id, batch.state
                        from public.user_bayesian_state as s
                        inner join batch on s.user_id = batch.user_id and s.version = batch.version
                        where batch.state is not null
                        for no key update of s skip locked
                    ),
                    decayed as (
                        update public.user_bayesian_state as s
                        set state = unchanged.state,
                            version = s.version + 1,
                            decayed_at = p_now,
                            updated_at = pg_catalog.now()
                        from unchanged
                        where s.user_id = unchanged.user_id
                        returning 1
                    )
                    select pg_catalog.count(*)::integer into v_count from decayed;

                    -- 4. Record the rows that could not be decayed, with their errors.
                    v_skipped_now := pg_catalog.cardinality(pg_catalog.array_remove(v_result.errors, null));
                    if v_skipped_now > 0 then
                        insert into bayes.decay_skipped (run_id, user_id, sqlstate, error)
                        select v_run_id, e.user_id, e.sqlstate, e.error
                        from rows from (
                            pg_catalog.unnest(v_ids), pg_catalog.unnest(v_result.sqlstates), pg_catalog.unnest(v_result.errors)
                        ) as e (user_id, sqlstate, error)
                        where e.error is not null;
                    end if;

                    v_players := v_players + v_count;
                    v_skipped := v_skipped + v_skipped_now;
                    v_batches := v_batches + 1;
                    update bayes.decay_run
                    set players = v_players, batches = v_batches, skipped = v_skipped
                    where run_id = v_run_id;
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
        exit when v_finished;
        if v_batches > 0 then
            raise notice 'bayes.run_decay: batch %: % players decayed, % skipped, % in all, % s',
                v_batches, v_count, v_skipped_now, v_players,
                pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - v_started)::numeric, 1);
        end if;
    end loop;

    if v_sqlstate is not null then
        -- The lock is released already. Say why the run failed, then raise
        -- its error again, for the caller (and pg_cron's job_run_details).
        if v_run_id is not null then
            begin
                update bayes.decay_run
                set status = 'failed', sqlstate = v_sqlstate, error = v_message,
                    finished_at = pg_catalog.clock_timestamp()
                where run_id = v_run_id;
            exception when others or query_canceled or assert_failure then
                raise warning 'bayes.run_decay: run % could not be marked failed (%); the next run marks it interrupted',
                    v_run_id, sqlerrm;
            end;
            commit;
        end if;
        raise log 'bayes.run_decay: run % failed after % batches: % %; context: %',
            v_run_id, v_batches, v_sqlstate, v_message, v_context;
        if v_detail <> '' then
            raise exception using errcode = v_sqlstate, message = v_message, detail = v_detail,
                hint = coalesce(nullif(v_hint, ''), 'bayes.decay_run says which run failed; its lock is released.');
        end if;
        raise exception using errcode = v_sqlstate, message = v_message,
            hint = coalesce(nullif(v_hint, ''), 'bayes.decay_run says which run failed; its lock is released.');
    end if;

    perform pg_catalog.pg_advisory_unlock(c_lock_key);
    raise log 'bayes.run_decay: run % decayed % players up to % in % batches, skipped %',
        v_run_id, v_players, p_now, v_batches, v_skipped;
    if v_skipped > 0 then
        raise warning 'bayes.run_decay: run % skipped % players whose state cannot be decayed: see bayes.decay_skipped',
            v_run_id, v_skipped;
    end if;
    raise notice 'bayes.run_decay: done: % players decayed up to % in % batches, % skipped (run %)',
        v_players, p_now, v_batches, v_skipped, v_run_id;
end
$$;

comment on procedure bayes.run_decay is  -- noqa: LT01
'Decays every player due for it up to p_now (MODEL.md section 5), p_batch players per committed transaction, skipping rows locked by live messages; one run at a time (advisory lock). A row whose state cannot be decayed (corrupt) is skipped and recorded in bayes.decay_skipped. A run that fails releases its lock, marks its row failed with the error and raises the error. Progress: a NOTICE per batch and the row of bayes.decay_run. Call it outside a transaction block. Called by pg_cron (job bayes-run-decay).';
revoke all on procedure bayes.run_decay from public;

create or replace function bayes.schedule_decay(p_schedule text default '*/15 * * * *')
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
    return cron.schedule('bayes-run-decay', p_schedule, 'call bayes.run_decay()');
end
$$;

comment on function bayes.schedule_decay is
'(Re)schedules the pg_cron job bayes-run-decay (call bayes.run_decay()) with a cron schedule, every 15 minutes by default; returns the job id. There is only ever one such job.';
revoke all on function bayes.schedule_decay from public;
