-- The compact event log (issue 15): the identity of a message id, the JSON
-- of a packed input, the answer to a message id sent again after the
-- idempotency window, and the expiry of the kept results. The layout and
-- why: sql/migrations/0011_compact_event_log.sql and docs/design.md.

create or replace function bayes.message_key(p_user_id uuid, p_kind bayes.event_kind, p_message_id text)
returns uuid
language sql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
return md5(p_user_id::text || '/' || p_kind::text || '/' || p_message_id)::uuid;

comment on function bayes.message_key is
'The identity of a (player, kind, message id) in bayes.player_event.message_key: md5 of the three joined by / as a uuid. bayes.apply_input computes the same expression inline.';
revoke all on function bayes.message_key from public;
grant execute on function bayes.message_key to service_role;

create or replace function bayes.event_input(p_kind bayes.event_kind, p_input bytea)
returns jsonb
language plpython3u
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.event_input(plpy, p_kind, p_input)
$$;

comment on function bayes.event_input is
'The input of an event of kind p_kind (bayes.player_event.input, packed) as the JSON the engine applies: for a message its send time, reply gap, topic change, seed and observation (plus, minus, features, vices, symbols); for LLM scores the deltas and the optional vices and mood; for an outcome the decision and engaged; for a chapter the chapter. "v": the engine''s schema (absent: v1). Raises XX001 for bytes the engine did not write.';
revoke all on function bayes.event_input from public;
grant execute on function bayes.event_input to service_role;

create or replace function bayes.pack_event_input(p_kind bayes.event_kind, p_input jsonb)
returns bytea
language plpython3u
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.pack_event_input(plpy, p_kind, p_input)
$$;

comment on function bayes.pack_event_input is
'The inverse of bayes.event_input: an input in the engine''s JSON packed as bayes.player_event.input stores it (the conversion of old events uses it). Owner only: the log is written by the engine alone.';
revoke all on function bayes.pack_event_input from public;

create or replace function bayes.expired_duplicate(
    p_user_id uuid,
    p_message_id text,
    p_state jsonb,
    p_version bigint,
    p_last_message_at double precision,
    p_decayed_at double precision,
    p_now double precision,
    p_bayes_percent double precision
)
returns jsonb
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.expired_duplicate(plpy, p_user_id, p_message_id, p_state, p_version, p_last_message_at, p_decayed_at, p_now, p_bayes_percent)
$$;

comment on function bayes.expired_duplicate is
'The answer to a message id sent again after the idempotency window: the player''s current summary (n, chapter, composite, metrics, fallback, boss) of the stored state decayed up to p_now (epoch seconds; nothing is written), with user_id, message_id, version, mode (under p_bayes_percent), "duplicate": true and "result_expired": true.';
revoke all on function bayes.expired_duplicate from public, service_role;

create or replace function bayes.expire_event_results(p_before timestamptz, p_batch integer)
returns bigint
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_deleted bigint;
begin
    v_checked := bayes.check_not_null(p_before, 'p_before');
    v_checked := bayes.check_not_null(p_batch, 'p_batch');
    if p_batch < 1 then
        raise exception 'p_batch must be at least 1, got %', p_batch using errcode = '22023';
    end if;
    -- The p_batch oldest results by event_id (the order they were written
    -- in, up to concurrent transactions): those written before p_before are
    -- deleted. A read of the head of the primary key, never a scan of the
    -- window: a straggler (written before p_before behind a newer one) goes
    -- at a later call.
    with head as (
        select r.event_id, r.written_at
        from bayes.event_result as r
        order by r.event_id
        limit p_batch
    ),

    deleted as (
        delete from bayes.event_result as r
        using head as h
        where r.event_id = h.event_id and h.written_at < p_before
        returning 1
    )

    select count(*) into v_deleted from deleted;
    return v_deleted;
end
$$;

comment on function bayes.expire_event_results is
'Deletes the kept first results (bayes.event_result) written before p_before among the p_batch oldest; returns how many. Fewer than p_batch: nothing more to expire for now. The retention job calls it with p_before = now() - idempotency_window_h, one batch per transaction. Owner only.';
revoke all on function bayes.expire_event_results from public, service_role;
