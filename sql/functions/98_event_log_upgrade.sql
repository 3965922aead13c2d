-- Issue 15: the events of the old layout (bayes.player_event_v1, which
-- schema migration 0011 renamed) converted into the compact log, then the
-- old table dropped. Here, at the end of a functions migration, rather than
-- in the schema migration: the input is packed by bayes_engine.eventlog
-- (bayes.pack_event_input, PL/Python), which this migration installs.
--
-- Each event keeps its event_id (its place in its player's log), its time,
-- kind, message id and the facts of its result; its input is packed exactly
-- (bayes.event_input gives back the same JSON), so bayes.replay of every
-- player is unchanged. The results written within the idempotency window
-- move to bayes.event_result with their first write time (the old
-- created_at), so that a repeated message id still gets its first result
-- until the window ends. Idempotent: once the old table is gone, this does
-- nothing (every later functions migration carries this file again).

do $$
begin
    if to_regclass('bayes.player_event_v1') is null then
        return;
    end if;
    -- This session may have loaded the previous code (the schema migration's
    -- parameter row is checked by it): the new code first.
    perform bayes.py_load();

    insert into bayes.player_event (
        event_id, user_id, occurred_at, message_key, kind, player_mode, n, mood, fallback_reason, fallback_needed,
        message_id, input
    )
    overriding system value
    select
        e.event_id,
        e.user_id,
        e.occurred_at,
        bayes.message_key(e.user_id, e.kind::bayes.event_kind, e.message_id),
        e.kind::bayes.event_kind,
        (e.result ->> 'mode')::bayes.rollout_mode,
        case when e.kind = 'message' then (e.result ->> 'n')::integer end,
        case when e.kind = 'message' then (e.result #>> '{mood,state}')::bayes.mood end,
        case when e.kind = 'message' then (e.result #>> '{fallback,reason}')::bayes.fallback_reason end,
        case when e.kind = 'message' then (e.result #>> '{fallback,needed}')::boolean end,
        e.message_id,
        bayes.pack_event_input(e.kind::bayes.event_kind, e.input)
    from bayes.player_event_v1 as e
    order by e.event_id;

    insert into bayes.event_result (event_id, written_at, result)
    select e.event_id, e.created_at, e.result::json
    from bayes.player_event_v1 as e
    where
        e.message_id is not null
        and e.created_at >= now() - make_interval(
            secs => 3600 * (select (p.value #>> '{}')::float8 from bayes.params as p where p.name = 'idempotency_window_h')
        );

    drop table bayes.player_event_v1;
end
$$;
