-- Absence decay in bulk (MODEL.md section 5), which pg_cron runs every 15
-- minutes: a run rewrites only the rows whose due time has passed
-- (decay_due_at, bayes_engine.decay_due: the first instant at which the
-- exactly decayed state could be further than a tolerance from the stored
-- one). Each batch of rows goes through one call of bayes.decay_states,
-- which runs the formulas of bayes_engine.model (the ones
-- bayes_process_message applies lazily before every message) over the whole
-- batch and computes each row's next due time; bayes.decay_state does the
-- same for one state (the read RPCs decay on read with it).
--
-- The shape of a run (issue 15): a run commits after every batch, and
-- PostgreSQL forbids transaction control in a routine that has a SET clause
-- (a procedure with SET runs atomically), so no procedure can both commit
-- and pin its search_path, and Supabase's linter flags every routine that
-- does not pin it (function_search_path_mutable). So the loop that commits
-- is not a routine: it is a DO block, the text that
-- bayes.run_decay_command returns, which pg_cron runs as its job's command
-- (and an operator with psql's \gexec). The block only loops and commits;
-- every statement that reads or writes the tables runs in one of two
-- functions that pin their search_path: bayes.begin_decay_run (checks, the
-- lock, the run's row) and bayes.decay_batch (one batch).
drop procedure if exists bayes.run_decay(timestamptz, integer);

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
'A stored state decayed from p_decayed_at up to p_now (epoch seconds; MODEL.md section 5), as the bulk decay writes it and the read RPCs read it.';
revoke all on function bayes.decay_state from public;
-- The read RPCs (security invoker) decay on read with it: a pure function of
-- its arguments and the parameters.
grant execute on function bayes.decay_state to authenticated, service_role;

-- Issue 15 gave bayes.decay_states its due times (a new result type).
drop function if exists bayes.decay_states(text[], double precision[], double precision[], double precision, bigint);

create or replace function bayes.decay_states(
    p_states text[],
    p_last_message_at double precision[],
    p_decayed_at double precision[],
    p_now double precision,
    p_params_revision bigint,
    out states text[],
    out sqlstates text[],
    out errors text[],
    out due_at double precision[]
)
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.decay_states(plpy, p_states, p_last_message_at, p_decayed_at, p_now, p_params_revision)
$$;

comment on function bayes.decay_states is
'A batch of stored states (jsonb text) decayed up to p_now (epoch seconds; MODEL.md section 5), one item per input in each array, in order: the step bayes.decay_batch runs on each batch. A decayed row has its state (equal to bayes.decay_state of the row), null sqlstate and error, and the due time of the decayed state stored with decayed_at = p_now (epoch seconds, null: never; bayes.decay_due_at); a row that cannot be decayed (corrupt) has a null state and due time and the SQLSTATE and message a read of it would raise. A row never makes the call fail.';
revoke all on function bayes.decay_states from public;

create or replace function bayes.decay_lock_key()
returns bigint
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
return 7300215847719049216;

comment on function bayes.decay_lock_key is
'The advisory lock key that a bulk decay run (bayes.run_decay_command) holds while it runs: pg_try_advisory_lock(bayes.decay_lock_key()) keeps runs from starting.';
revoke all on function bayes.decay_lock_key from public;

create or replace function bayes.decay_due_at(
    p_state jsonb,
    p_last_message_at double precision,
    p_decayed_at double precision
)
returns double precision
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.decay_due_at(plpy, p_state, p_last_message_at, p_decayed_at)
$$;

comment on function bayes.decay_due_at is
'When the bulk decay next rewrites a row with this stored state and these times (epoch seconds; null: never): the first instant at which its exactly decayed composite is more than decay_tolerance_composite from the stored one, or its P_ready could be more than decay_tolerance_p_ready from it (bayes_engine.decay_due). Every write stores it in decay_due_at; after a change of the decay parameters, docs/operations.md says how to apply them to the stored rows with it. XX001 for a corrupt state.';
revoke all on function bayes.decay_due_at from public;
grant execute on function bayes.decay_due_at to service_role;

-- The first step of a run. Its lock is session-level, so that it outlives
-- the batches' commits: a step that fails while the lock is held releases
-- it (every handler below), or the session would keep it, and every later
-- run would find "another run in progress", until it disconnects.
create or replace function bayes.begin_decay_run(p_now timestamptz, p_batch integer)
returns bigint
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_skew_s double precision;
    v_run_id bigint;
begin
    v_checked := bayes.check_not_null(p_now, 'p_now', 'omit it to use now()');
    v_checked := bayes.check_not_null(p_batch, 'p_batch', 'omit it for 5000');
    v_checked := bayes.check_time(p_now, 'p_now');
    -- A p_now ahead of the database clock would move decayed_at into the
    -- future, where no later run or message decays the player again (issue
    -- 12): at most clock_skew_s ahead, as for a message's send time.
    v_skew_s := (select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'clock_skew_s');
    if p_now > now() + make_interval(secs => v_skew_s) then
        raise exception 'p_now % is % ahead of the database clock (%); at most clock_skew_s = % s ahead is accepted',
            p_now, date_trunc('second', p_now - now()), now(), v_skew_s
            using errcode = '22023', hint = 'Omit p_now to decay up to now(); a past p_now decays up to then.';
    end if;
    if p_batch < 1 or p_batch > 1000000 then
        raise exception 'p_batch must be in 1..1000000, got %', p_batch using errcode = '22023';
    end if;

    if not pg_try_advisory_lock(bayes.decay_lock_key()) then
        insert into bayes.decay_run (decay_to, batch_size, status, finished_at)
        values (p_now, p_batch, 'overlapped', clock_timestamp());
        raise notice 'bayes.run_decay: another run is in progress; this one did nothing';
        return null;
    end if;
    begin
        -- Holding the lock, no other run is alive: a 'running' row is a run
        -- that died.
        update bayes.decay_run
        set status = 'interrupted', finished_at = clock_timestamp()
        where status = 'running';
        insert into bayes.decay_run (decay_to, batch_size)
        values (p_now, p_batch)
        returning run_id into v_run_id;
        set constraints all immediate;
    exception when others or query_canceled or assert_failure then
        perform pg_advisory_unlock(bayes.decay_lock_key());
        raise;
    end;
    return v_run_id;
end
$$;

comment on function bayes.begin_decay_run is
'The first step of a bulk decay run (the DO block of bayes.run_decay_command): checks p_now (not null, finite, at most clock_skew_s ahead) and p_batch (1..1000000), takes the session-level advisory lock bayes.decay_lock_key(), marks runs that died interrupted and inserts the run''s row of bayes.decay_run; returns its run_id. When another run holds the lock it records an overlapped run, says so in a NOTICE and returns null.';
revoke all on function bayes.begin_decay_run from public;

-- One batch of a run, in the run's transaction for that batch (the DO block
-- commits after it). It never raises: an error rolls back what the batch
-- did, releases the run's lock, marks the run failed and comes back in the
-- error_* columns, so that the DO block commits that and raises the error
-- again. OTHERS leaves out QUERY_CANCELED (a statement timeout, a cancel)
-- and ASSERT_FAILURE: they are caught too. SET CONSTRAINTS ALL IMMEDIATE
-- makes a deferred constraint or trigger fail here rather than at the
-- block's COMMIT.
create or replace function bayes.decay_batch(
    p_run_id bigint,
    p_now timestamptz,
    p_batch integer,
    p_after_due timestamptz,
    p_after_id uuid,
    out after_due timestamptz,
    out after_id uuid,
    out finished boolean,
    out decayed integer,
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
    v_now_s double precision := date_part('epoch', p_now);
    -- The batch, as read (without a lock), and its decayed states or errors.
    v_ids uuid[];
    v_versions bigint[];
    v_states text[];
    v_last_message_at double precision[];
    v_decayed_at double precision[];
    v_dues timestamptz[];
    v_result record;  -- bayes.decay_states: states, sqlstates, errors, due_at
    v_decayed jsonb[];
    v_context text;
begin
    finished := false;
    decayed := 0;
    skipped := 0;
    begin
        v_revision := (select r.revision from bayes.params_revision as r);
        -- 1. The next batch of rows due before p_now (at its due time a
        -- state is exactly at a tolerance, not yet beyond it, as a player
        -- exactly at the grace boundary is not decayed), in (decay_due_at, user_id)
        -- order after the previous batch (the index
        -- user_bayesian_state_decay_due_at_idx), read without locking them.
        -- A row decayed at or after p_now already (a message since) waits
        -- for a later run: decaying it to p_now would move its clock back.
        select
            array_agg(due.user_id order by due.decay_due_at, due.user_id),
            array_agg(due.version order by due.decay_due_at, due.user_id),
            array_agg(due.state::text order by due.decay_due_at, due.user_id),
            array_agg(date_part('epoch', due.last_message_at) order by due.decay_due_at, due.user_id),
            array_agg(date_part('epoch', due.decayed_at) order by due.decay_due_at, due.user_id),
            array_agg(due.decay_due_at order by due.decay_due_at, due.user_id)
        into v_ids, v_versions, v_states, v_last_message_at, v_decayed_at, v_dues
        from (
            select s.user_id, s.version, s.state, s.last_message_at, s.decayed_at, s.decay_due_at
            from public.user_bayesian_state as s
            where s.decay_due_at < p_now
              and (s.decay_due_at, s.user_id) > (p_after_due, p_after_id)
              and (s.decayed_at is null or s.decayed_at < p_now)
            order by s.decay_due_at, s.user_id
            limit p_batch
        ) as due;

        if v_ids is null then
            -- The run's last statement (the DO block releases the lock once
            -- this is committed).
            update bayes.decay_run
            set status = 'done', finished_at = clock_timestamp()
            where run_id = p_run_id;
            finished := true;
        else
            after_due := v_dues[cardinality(v_dues)];
            after_id := v_ids[cardinality(v_ids)];

            -- 2. Decay the batch and compute each row's next due time, still
            -- without a lock: live messages are never kept waiting by this,
            -- the longest step. A row that cannot be decayed comes back
            -- with a null state and its error instead of failing the batch.
            v_result := bayes.decay_states(v_states, v_last_message_at, v_decayed_at, v_now_s, v_revision);
            v_decayed := v_result.states::jsonb[];

            -- 3. Write the rows that are still as read. A row locked by a
            -- live message is skipped, and so is one that a message has
            -- changed since step 1 (its version moved): that message
            -- decayed it lazily and wrote its due time. A row that could
            -- not be decayed (its state is null) is left as it is, still
            -- due: the next run tries it again. The states come from the
            -- codec: skip the table's check of each row (trigger
            -- user_bayesian_state_valid), for this transaction only.
            perform set_config('bayes.state_writer', 'engine', true);
            with batch as (
                select b.user_id, b.version, b.state, b.due_at
                from rows from (unnest(v_ids), unnest(v_versions), unnest(v_decayed), unnest(v_result.due_at))
                    as b (user_id, version, state, due_at)
            ),
            unchanged as (
                select s.user_id, batch.state, batch.due_at
                from public.user_bayesian_state as s
                inner join batch on s.user_id = batch.user_id and s.version = batch.version
                where batch.state is not null
                for no key update of s skip locked
            ),
            written as (
                update public.user_bayesian_state as s
                set state = unchanged.state,
                    version = s.version + 1,
                    decayed_at = p_now,
                    decay_due_at = to_timestamp(unchanged.due_at),
                    updated_at = now()
                from unchanged
                where s.user_id = unchanged.user_id
                returning 1
            )
            select count(*)::integer into decayed from written;

            -- 4. Record the rows that could not be decayed, with their errors.
            skipped := cardinality(array_remove(v_result.errors, null));
            if skipped > 0 then
                insert into bayes.decay_skipped (run_id, user_id, sqlstate, error)
                select p_run_id, e.user_id, e.sqlstate, e.error
                from rows from (unnest(v_ids), unnest(v_result.sqlstates), unnest(v_result.errors))
                    as e (user_id, sqlstate, error)
                where e.error is not null;
            end if;

            update bayes.decay_run
            set players = players + decayed, batches = batches + 1, skipped = decay_run.skipped + decay_batch.skipped
            where run_id = p_run_id;
        end if;
        set constraints all immediate;
    exception when others or query_canceled or assert_failure then
        perform pg_advisory_unlock(bayes.decay_lock_key());
        get stacked diagnostics
            error_sqlstate = returned_sqlstate,
            error_message = message_text,
            error_detail = pg_exception_detail,
            error_hint = pg_exception_hint,
            v_context = pg_exception_context;
        finished := true;
        decayed := 0;
        skipped := 0;
        raise log 'bayes.run_decay: run % failed: % %; context: %', p_run_id, error_sqlstate, error_message, v_context;
        begin
            update bayes.decay_run
            set status = 'failed', sqlstate = error_sqlstate, error = error_message, finished_at = clock_timestamp()
            where run_id = p_run_id;
        exception when others or query_canceled or assert_failure then
            raise warning 'bayes.run_decay: run % could not be marked failed (%); the next run marks it interrupted',
                p_run_id, sqlerrm;
        end;
    end;
end
$$;

comment on function bayes.decay_batch is
'One batch of a bulk decay run (the DO block of bayes.run_decay_command): the next p_batch rows due before p_now (decay_due_at < p_now) after (p_after_due, p_after_id) in (decay_due_at, user_id) order, each decayed exactly up to p_now and written with its new due time (bayes.decay_states), skipping rows locked or changed by live messages; rows that cannot be decayed are recorded in bayes.decay_skipped. Returns where the batch ended, finished (no row left: the run is marked done), the rows decayed and skipped; never raises: an error releases the run''s lock, marks the run failed and is returned in the error_* columns.';
revoke all on function bayes.decay_batch from public;

create or replace function bayes.run_decay_command(
    p_now timestamptz default null,
    p_batch integer default 5000
)
returns text
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $body$
begin
    return format(
        $cmd$do $bayes_run_decay$
-- A bulk decay run (bayes.run_decay_command; docs/operations.md, Decay).
declare
    v_now constant timestamptz := coalesce(%s::timestamptz, pg_catalog.now());
    v_batch constant integer := %s::integer;
    v_run_id bigint;
    v_step record;
    v_after_due timestamptz := '-infinity';
    v_after_id uuid := '00000000-0000-0000-0000-000000000000';
    v_players bigint := 0;
    v_skipped bigint := 0;
    v_batches integer := 0;
    v_started timestamptz := pg_catalog.clock_timestamp();
begin
    -- Inside a transaction block the run could not commit its batches:
    -- fail here (2D000), before the lock is taken.
    commit;
    v_run_id := bayes.begin_decay_run(v_now, v_batch);
    commit;
    if v_run_id is null then
        return;
    end if;
    loop
        v_step := bayes.decay_batch(v_run_id, v_now, v_batch, v_after_due, v_after_id);
        commit;
        if v_step.error_sqlstate is not null and v_step.error_detail <> '' then
            raise exception using errcode = v_step.error_sqlstate, message = v_step.error_message,
                detail = v_step.error_detail,
                hint = coalesce(nullif(v_step.error_hint, ''), 'bayes.decay_run says which run failed; its lock is released.');
        elsif v_step.error_sqlstate is not null then
            raise exception using errcode = v_step.error_sqlstate, message = v_step.error_message,
                hint = coalesce(nullif(v_step.error_hint, ''), 'bayes.decay_run says which run failed; its lock is released.');
        end if;
        exit when v_step.finished;
        v_after_due := v_step.after_due;
        v_after_id := v_step.after_id;
        v_players := v_players + v_step.decayed;
        v_skipped := v_skipped + v_step.skipped;
        v_batches := v_batches + 1;
        raise notice 'bayes.run_decay: batch %%: %% players decayed, %% skipped, %% in all, %% s',
            v_batches, v_step.decayed, v_step.skipped, v_players,
            pg_catalog.round(pg_catalog.date_part('epoch', pg_catalog.clock_timestamp() - v_started)::numeric, 1);
    end loop;
    perform pg_catalog.pg_advisory_unlock(bayes.decay_lock_key());
    raise log 'bayes.run_decay: run %% decayed %% players up to %% in %% batches, skipped %%',
        v_run_id, v_players, v_now, v_batches, v_skipped;
    if v_skipped > 0 then
        raise warning 'bayes.run_decay: run %% skipped %% players whose state cannot be decayed: see bayes.decay_skipped',
            v_run_id, v_skipped;
    end if;
    raise notice 'bayes.run_decay: done: %% players decayed up to %% in %% batches, %% skipped (run %%)',
        v_players, v_now, v_batches, v_skipped, v_run_id;
end
$bayes_run_decay$
$cmd$,
        coalesce(quote_literal(p_now), 'null'),
        coalesce(p_batch::text, 'null')
    );
end
$body$;

comment on function bayes.run_decay_command is
'The command of a bulk decay run (MODEL.md section 5), as text: a DO block that decays every player due by p_now (default: now() when the block starts) exactly up to p_now, p_batch players per committed transaction (bayes.begin_decay_run, then bayes.decay_batch until none is left), skipping rows locked by live messages; one run at a time (advisory lock). Progress: a NOTICE per batch and the row of bayes.decay_run. pg_cron''s job bayes-run-decay runs it; by hand, in psql outside a transaction block: select bayes.run_decay_command() \gexec. It is a DO block and not a procedure because a routine that commits cannot pin its search_path (docs/operations.md).';
revoke all on function bayes.run_decay_command from public;

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
    return cron.schedule('bayes-run-decay', p_schedule, bayes.run_decay_command());
end
$$;

comment on function bayes.schedule_decay is
'(Re)schedules the pg_cron job bayes-run-decay (the DO block of bayes.run_decay_command()) with a cron schedule, every 15 minutes by default; returns the job id. There is only ever one such job.';
revoke all on function bayes.schedule_decay from public;

-- The job that called the procedure bayes.run_decay (dropped above) runs the
-- DO block from now on, on its schedule.
select bayes.schedule_decay(j.schedule)
from cron.job as j
where j.jobname = 'bayes-run-decay';
