-- The read RPCs' common first step, and bayes_get_state (MODEL.md section 9).

create or replace function bayes.readable_state(p_user_id uuid)
returns public.user_bayesian_state
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_row public.user_bayesian_state;
begin
    v_checked := bayes.check_not_null(p_user_id, 'p_user_id');
    perform bayes.assert_may_read(p_user_id);

    select s.* into v_row
    from public.user_bayesian_state as s
    where s.user_id = p_user_id;
    if not found then
        perform bayes.raise_error(
            'P0002',
            format('no Bayesian state for player %s', p_user_id),
            'A state is created by the first bayes_process_message of the player.'
        );
    end if;
    -- Decay on read (issue 15): the stored state is decayed up to its
    -- decayed_at, which the bulk decay moves only when the state has moved
    -- by a tolerance; a read answers exactly as of now(), whatever the bulk
    -- cadence, and writes nothing. Only once a decay window has opened
    -- (after the shorter of the chapter's metric and vice graces, and past
    -- decayed_at): before that there is nothing to decay, and the row, with
    -- its own decayed_at, is the answer. A corrupt state (no chapter) is
    -- decayed, and raises the codec's error here (XX001 or 0A000), as the
    -- read would.
    if v_row.last_message_at is not null and now() > greatest(
        v_row.decayed_at,
        v_row.last_message_at + make_interval(secs => 3600 * coalesce((
            select least(cp.decay_grace_h, cp.vice_decay_grace_h)
            from bayes.chapter_params as cp
            where cp.chapter = v_row.chapter
        ), 0))
    ) then
        v_row.state := bayes.decay_state(
            v_row.state,
            (select r.revision from bayes.params_revision as r),
            extract(epoch from v_row.last_message_at)::float8,
            extract(epoch from v_row.decayed_at)::float8,
            extract(epoch from now())::float8
        );
        v_row.decayed_at := now();
    end if;
    return v_row;
end
$$;

comment on function bayes.readable_state is
'The state row of player p_user_id for a read RPC, its state decayed up to now() once a decay window has opened (decayed_at then says now(); nothing is written): 22004 for null, 42501 unless the caller may read it (bayes.assert_may_read), P0002 when absent, the codec''s error (XX001, 0A000) for a corrupt state.';
revoke all on function bayes.readable_state from public;
grant execute on function bayes.readable_state to authenticated, service_role;

create or replace function public.bayes_get_state(p_user_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row public.user_bayesian_state := bayes.readable_state(p_user_id);
begin
    return bayes.describe_state(v_row.state) || jsonb_build_object(
        'user_id', v_row.user_id,
        'version', v_row.version,
        'last_message_at', v_row.last_message_at,
        'decayed_at', v_row.decayed_at,
        'updated_at', v_row.updated_at
    );
end
$$;

comment on function public.bayes_get_state is
'The decoded state of a player: metric means, variances, 95% intervals, composite, mood, vices. Callable by service_role or by the player himself; P0002 for an unknown player.';
revoke all on function public.bayes_get_state from public, anon, authenticated, service_role;
grant execute on function public.bayes_get_state to authenticated, service_role;
