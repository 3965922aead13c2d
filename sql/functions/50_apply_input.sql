-- What every writer RPC does once its arguments are checked, written once:
-- bayes.apply_input locks (or creates) the player's row, answers a repeated
-- message id with the first result, applies the input with bayes.step (the
-- PL/Python math: bayes_engine.events.apply) and writes the new state and
-- its event in one statement. One transaction, one row lock: concurrent
-- writers of a player queue on the row lock, and nothing is written when any
-- step raises. Times are epoch seconds on the Python side.
--
-- Who writes public.user_bayesian_state: bayes.apply_input (for the writer
-- RPCs) and bayes.run_decay (pg_cron), nothing else. The API roles may not
-- insert or update the table, nor append to bayes.player_event, themselves:
-- a direct write would bypass the event log (bayes.replay would no longer
-- rebuild the state), could store a state the engine never wrote, or move a
-- player's clock past the checks of the RPCs. So the four writer RPCs run
-- with their owner's rights (security definer) after checking their
-- arguments, and everything in this file is their owner's alone. Every
-- other write (an operator's UPDATE) goes through the table's trigger
-- user_bayesian_state_valid, which refuses a state the codec refuses;
-- bayes.apply_input skips that check (its states come from the codec,
-- which validated them) by setting bayes.state_writer for its duration.

create or replace function bayes.lock_state(p_user_id uuid, p_create boolean)
returns public.user_bayesian_state
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row public.user_bayesian_state;
begin
    select s.* into v_row
    from public.user_bayesian_state as s
    where s.user_id = p_user_id
    for update;
    if found then
        return v_row;
    end if;
    if not p_create then
        perform bayes.raise_error(
            'P0002',
            format('no Bayesian state for player %s', p_user_id),
            'A state is created by the first bayes_process_message of the player.'
        );
    end if;
    begin
        insert into public.user_bayesian_state (user_id, state)
        values (p_user_id, bayes.default_state(1))
        on conflict (user_id) do nothing;
    exception when foreign_key_violation then
        perform bayes.raise_error(
            'P0002',
            format('no player %s in auth.users', p_user_id),
            'Players are created by Supabase Auth; pass the id of an existing auth.users row.'
        );
    end;
    select s.* into strict v_row
    from public.user_bayesian_state as s
    where s.user_id = p_user_id
    for update;
    return v_row;
end
$$;

comment on function bayes.lock_state is
'Locks the state row of player p_user_id FOR UPDATE and returns it; when absent, creates it with chapter 1 priors (p_create) or raises P0002.';
revoke all on function bayes.lock_state from public, service_role;

-- Issue 15 gave bayes.save_state the compact event row (the message key, the
-- packed input) and its due time (p_decay_due_at): the older signature goes
-- first.
drop function if exists bayes.save_state(uuid, jsonb, text, text, timestamptz, jsonb, jsonb, timestamptz);
-- Issue 16 gave it the start of the RPC (p_started_at): the event row keeps
-- the message's time inside the database.
drop function if exists bayes.save_state(
    uuid, jsonb, text, text, uuid, timestamptz, bytea, jsonb, json, timestamptz, double precision
);

create or replace function bayes.save_state(
    p_user_id uuid,
    p_state jsonb,
    p_kind text,
    p_message_id text,
    p_message_key uuid,
    p_occurred_at timestamptz,
    p_input bytea,
    p_result jsonb,
    p_kept_result json,
    p_message_at timestamptz,
    p_decay_due_at double precision,
    p_started_at timestamptz
)
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_now timestamptz := clock_timestamp();
begin
    -- plpgsql, not a SQL function: PostgreSQL 15 plans a SQL function's
    -- statements again on every call, plpgsql keeps the plan per session.
    -- One statement: the state, its event, and (for an input with a message
    -- id) the result kept for the idempotency window.
    with updated as (
        update public.user_bayesian_state as s
        set state = p_state,
            version = s.version + 1,
            last_message_at = greatest(s.last_message_at, p_message_at),
            decayed_at = greatest(s.decayed_at, p_message_at),
            decay_due_at = to_timestamp(p_decay_due_at),
            updated_at = now()
        where s.user_id = p_user_id
        returning s.user_id
    ),

    event as (
        insert into bayes.player_event (
            user_id, occurred_at, message_key, kind, player_mode, n, mood, fallback_reason, fallback_needed, message_id, input,
            recorded_at, db_time_us, observations
        )
        select
            u.user_id,
            p_occurred_at,
            p_message_key,
            p_kind::bayes.event_kind,
            (p_result ->> 'mode')::bayes.rollout_mode,
            -- the facts of a message's result that outlive it (bayes.event_result)
            case when p_kind = 'message' then (p_result ->> 'n')::integer end,
            case when p_kind = 'message' then (p_result #>> '{mood,state}')::bayes.mood end,
            case when p_kind = 'message' then (p_result #>> '{fallback,reason}')::bayes.fallback_reason end,
            case when p_kind = 'message' then (p_result #>> '{fallback,needed}')::boolean end,
            p_message_id,
            p_input,
            -- the measurements of the health queries (issue 16): one clock
            -- read, the time inside the database up to here, and the
            -- message's feature count (bayes.health)
            v_now,
            case when p_started_at is not null then (extract(epoch from v_now - p_started_at) * 1e6)::integer end,
            case when p_kind = 'message' then (p_result ->> 'observations')::smallint end
        from updated as u
        returning event_id
    )

    insert into bayes.event_result (event_id, written_at, result)
    select e.event_id, now(), p_kept_result
    from event as e
    where p_message_key is not null;
end
$$;

comment on function bayes.save_state is
'Writes a new state of a locked row (version + 1; last_message_at and decayed_at advanced to p_message_at when given; decay_due_at set from p_decay_due_at, epoch seconds, null for never), appends its event to bayes.player_event (the packed input p_input, the facts of a message''s result) and, with a message id (p_message_key), keeps p_kept_result (p_result as the text bayes.step wrote) in bayes.event_result for the idempotency window. The event records when it was written (recorded_at), the time since p_started_at in microseconds (db_time_us; null when p_started_at is) and a message''s feature count (observations), for bayes.health.';
revoke all on function bayes.save_state from public, service_role;

drop function if exists bayes.previous_result(uuid, text, text);

create or replace function bayes.previous_result(
    p_row public.user_bayesian_state,
    p_message_id text,
    p_message_key uuid
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_written_at timestamptz;
    v_result json;
begin
    select r.written_at, r.result into v_written_at, v_result
    from bayes.player_event as e
    left join bayes.event_result as r on r.event_id = e.event_id
    where e.message_key = p_message_key and e.user_id = p_row.user_id;
    if not found then
        return null;
    end if;
    if v_result is not null
        and v_written_at >= now() - make_interval(
            secs => 3600 * (select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'idempotency_window_h')
        ) then
        return v_result::jsonb || '{"duplicate": true}'::jsonb;
    end if;
    return bayes.expired_duplicate(
        p_row.user_id,
        p_message_id,
        p_row.state,
        p_row.version,
        extract(epoch from p_row.last_message_at)::float8,
        extract(epoch from p_row.decayed_at)::float8,
        extract(epoch from now())::float8,
        coalesce((select r.bayes_percent::float8 from bayes.rollout as r), 0)
    );
end
$$;

comment on function bayes.previous_result is
'The answer to an input already applied (p_message_key = bayes.message_key of the player, kind and message id): within the idempotency window its first result marked "duplicate": true; after it "duplicate", "result_expired" and the current summary (bayes.expired_duplicate); null when that input was never applied.';
revoke all on function bayes.previous_result from public, service_role;

create or replace function bayes.session_seed()
returns text
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    return nullif(current_setting('bayes.seed', true), '');
end
$$;

comment on function bayes.session_seed is
'The optional session seed of the random draws (setting bayes.seed), or null.';
revoke all on function bayes.session_seed from public;
grant execute on function bayes.session_seed to service_role;

-- Issue 14 gave bayes.step its rollout argument: the older signature goes
-- first, else bayes.apply_input would find two candidates. Issue 15 made its
-- input OUT parameter bytea (the packed input) and gave it a last OUT
-- parameter (decay_due_at): a new return type, which create or replace cannot
-- change, so it is dropped and created again (it has no grant to keep, and
-- bayes.apply_input names it at run time).
drop function if exists bayes.step(
    text, uuid, text, json, jsonb, bigint, double precision, double precision, bigint
);
drop function if exists bayes.step(
    text, uuid, text, json, jsonb, bigint, double precision, double precision, bigint, double precision
);

create or replace function bayes.step(
    p_kind text,
    p_user_id uuid,
    p_message_id text,
    p_input json,
    p_state jsonb,
    p_version bigint,
    p_last_message_at double precision,
    p_decayed_at double precision,
    p_params_revision bigint,
    p_bayes_percent double precision,
    out state jsonb,
    out result json,
    out input bytea,
    out decay_due_at double precision
)
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.step(plpy, p_kind, p_user_id, p_message_id, p_input, p_state, p_version, p_last_message_at, p_decayed_at, p_params_revision, p_bayes_percent)
$$;

comment on function bayes.step is
'One writer''s input (p_kind message, llm_scores, outcome or chapter; MODEL.md sections 4, 7, 8) applied to a row''s state: the new state (null when unchanged), the result for the caller (with the player''s mode under p_bayes_percent, bayes.rollout''s), the input logged in bayes.player_event, packed (bayes.event_input reads it), and the new state''s decay due time (epoch seconds, bayes_engine.decay_due; null: never).';
revoke all on function bayes.step from public, service_role;

-- Issue 16 gave it the start of the calling RPC (p_started_at).
drop function if exists bayes.apply_input(text, uuid, text, json, timestamptz, timestamptz);

create or replace function bayes.apply_input(
    p_kind text,
    p_user_id uuid,
    p_message_id text,
    p_input json,
    p_occurred_at timestamptz,
    p_message_at timestamptz default null,
    p_started_at timestamptz default null
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
-- (quoted: sqlfluff does not parse a dotted setting name here)
set "bayes.state_writer" = 'engine'
as $$
declare
    v_row public.user_bayesian_state;
    v_message_key uuid;
    v_previous jsonb;
    v_step record;
    v_result jsonb;
begin
    -- A message or a chapter creates the state of a new player; the other
    -- writers need one (P0002).
    v_row := bayes.lock_state(p_user_id, p_kind in ('message', 'chapter'));
    if p_message_id is not null then
        -- bayes.message_key's expression, written out: a call of a SQL
        -- function with a pinned search_path is planned again every time.
        v_message_key := md5(p_user_id::text || '/' || p_kind || '/' || p_message_id)::uuid;
        v_previous := bayes.previous_result(v_row, p_message_id, v_message_key);
        if v_previous is not null then
            return v_previous;
        end if;
    end if;

    select s.* into v_step
    from bayes.step(
        p_kind,
        p_user_id,
        p_message_id,
        p_input,
        v_row.state,
        v_row.version,
        extract(epoch from v_row.last_message_at)::float8,
        extract(epoch from v_row.decayed_at)::float8,
        (select r.revision from bayes.params_revision as r),
        -- Every writer's result says the player's mode (issue 14), as it was
        -- when the input was applied (a repeated message id returns it as
        -- well): bayes.player_mode's rule, computed by bayes.step (a call of
        -- bayes.player_mode here cost about 150 us a message); no row: shadow.
        coalesce((select r.bayes_percent::float8 from bayes.rollout as r), 0)
    ) as s;
    -- The result as bayes.step wrote it (json: its text, kept as such for
    -- the idempotency window, about a third smaller than its jsonb) and
    -- parsed once, for the caller and the facts of the event row.
    v_result := v_step.result::jsonb;
    if v_step.state is not null then
        perform bayes.save_state(
            p_user_id,
            v_step.state,
            p_kind,
            p_message_id,
            v_message_key,
            p_occurred_at,
            v_step.input,
            v_result,
            v_step.result,
            p_message_at,
            v_step.decay_due_at,
            p_started_at
        );
    end if;
    return v_result;
end
$$;

comment on function bayes.apply_input is
'The shared sequence of the writer RPCs: lock (or create) the row, answer a repeated (player, kind, message id) (bayes.previous_result: its first result within the idempotency window, else the current summary), apply p_input with bayes.step, write the state and its event (occurred at p_occurred_at; p_message_at advances last_message_at and decayed_at; p_started_at, the start of the calling RPC, gives the event''s db_time_us).';
revoke all on function bayes.apply_input from public, service_role;

create or replace function bayes.replay(p_user_id uuid)
returns jsonb
language plpython3u
stable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.replay(plpy, p_user_id)
$$;

comment on function bayes.replay is
'The state of player p_user_id rebuilt from bayes.player_event with the current parameters; equals the stored state while the parameters are unchanged.';
revoke all on function bayes.replay from public;
grant execute on function bayes.replay to service_role;

-- The four per-writer steps that bayes.step replaced (issue 11). Dropped here,
-- in the same migration that replaces their callers, so that no call ever
-- finds the new RPCs without their step or the old ones without theirs.
drop function if exists bayes.step_message(
    jsonb, bigint, bigint, uuid, text, text, double precision, double precision, double precision, double precision,
    boolean, text
);
drop function if exists bayes.step_llm_scores(jsonb, bigint, bigint, uuid, text, jsonb);
drop function if exists bayes.step_outcome(jsonb, bigint, bigint, uuid, text, boolean);
drop function if exists bayes.step_chapter(jsonb, bigint, bigint, uuid, integer);

-- The API roles write public.user_bayesian_state only through the writer
-- RPCs (see the top of this file). Revoked here rather than in a schema
-- migration: in the migration that makes the RPCs definers, so that no call
-- ever finds the one change without the other. service_role
-- keeps select and delete on the states (deleting a row resets the player)
-- and select on the events, which only bayes.apply_input appends.
revoke insert, update on table public.user_bayesian_state from service_role;
revoke insert on table bayes.player_event from service_role;
