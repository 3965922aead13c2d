-- The two halves of every writer around its math: lock (or create) the
-- player's row, then write the new state and its event in one statement.
-- One transaction, one row lock: concurrent writers of a player queue on
-- the row lock, and nothing is written when any step raises.

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

comment on function bayes.lock_state(uuid, boolean) is
'Locks the state row of player p_user_id FOR UPDATE and returns it; when absent, creates it with chapter 1 priors (p_create) or raises P0002.';
revoke all on function bayes.lock_state(uuid, boolean) from public;
grant execute on function bayes.lock_state(uuid, boolean) to service_role;

create or replace function bayes.save_state(
    p_user_id uuid,
    p_state jsonb,
    p_kind text,
    p_message_id text,
    p_occurred_at timestamptz,
    p_input jsonb,
    p_result jsonb,
    p_message_at timestamptz
)
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    -- plpgsql, not a SQL function: PostgreSQL 15 plans a SQL function's
    -- statements again on every call, plpgsql keeps the plan per session.
    with updated as (
        update public.user_bayesian_state as s
        set state = p_state,
            version = s.version + 1,
            last_message_at = greatest(s.last_message_at, p_message_at),
            decayed_at = greatest(s.decayed_at, p_message_at),
            updated_at = now()
        where s.user_id = p_user_id
        returning s.version
    )
    insert into bayes.player_event (user_id, kind, message_id, occurred_at, input, result, state_version)
    select p_user_id, p_kind, p_message_id, p_occurred_at, p_input, p_result, u.version
    from updated as u;
end
$$;

comment on function bayes.save_state(uuid, jsonb, text, text, timestamptz, jsonb, jsonb, timestamptz) is
'Writes a new state of a locked row (version + 1; last_message_at and decayed_at advanced to p_message_at when given) and appends its event to bayes.player_event.';
revoke all on function bayes.save_state(uuid, jsonb, text, text, timestamptz, jsonb, jsonb, timestamptz) from public;
grant execute on function bayes.save_state(uuid, jsonb, text, text, timestamptz, jsonb, jsonb, timestamptz) to service_role;

create or replace function bayes.previous_result(p_user_id uuid, p_kind text, p_message_id text)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    return (
        select e.result || '{"duplicate": true}'::jsonb
        from bayes.player_event as e
        where e.user_id = p_user_id and e.kind = p_kind and e.message_id = p_message_id
    );
end
$$;

comment on function bayes.previous_result(uuid, text, text) is
'The result first returned for (player, kind, message id), marked "duplicate": true; null when that input was never applied.';
revoke all on function bayes.previous_result(uuid, text, text) from public;
grant execute on function bayes.previous_result(uuid, text, text) to service_role;

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

comment on function bayes.session_seed() is
'The optional session seed of the random draws (setting bayes.seed), or null.';
revoke all on function bayes.session_seed() from public;
grant execute on function bayes.session_seed() to service_role;
