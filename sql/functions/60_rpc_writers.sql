-- RPCs that write a player's state (MODEL.md section 9), for the game's
-- backend (service_role). Each validates its arguments here, so that a bad
-- input is a clean 22xxx error (HTTP 400 through PostgREST) raised before
-- anything is locked or written; then it locks the row, applies the
-- PL/Python step and writes the state and its event, in one transaction.

create or replace function bayes.check_message_id(p_message_id text)
returns void
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_message_id = '' or length(p_message_id) > 200 then
        raise exception 'p_message_id must be null or 1 to 200 characters, got % characters', length(p_message_id)
            using errcode = '22023';
    end if;
end
$$;

comment on function bayes.check_message_id(text) is
'Raises 22023 unless p_message_id is null or 1 to 200 characters.';
revoke all on function bayes.check_message_id(text) from public;
grant execute on function bayes.check_message_id(text) to service_role;

create or replace function public.bayes_process_message(
    p_user_id uuid,
    p_message text,
    p_sent_at timestamptz default now(),
    p_message_id text default null,
    p_reply_gap_s double precision default null,
    p_topic_changed boolean default null
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row public.user_bayesian_state;
    v_previous jsonb;
    v_step record;
begin
    if p_user_id is null then
        raise exception 'p_user_id must not be null' using errcode = '22004';
    end if;
    if p_message is null then
        raise exception 'p_message must not be null' using errcode = '22004';
    end if;
    if p_sent_at is null then
        raise exception 'p_sent_at must not be null (omit it to use now())' using errcode = '22004';
    end if;
    if octet_length(p_message) > 65536 then
        raise exception 'p_message is % bytes; the limit is 64 KiB (65536 bytes)', octet_length(p_message)
            using errcode = '22001';
    end if;
    if not isfinite(p_sent_at) then
        raise exception 'p_sent_at must be a finite time, got %', p_sent_at using errcode = '22023';
    end if;
    if p_reply_gap_s = 'NaN'::float8 or p_reply_gap_s in ('Infinity'::float8, '-Infinity'::float8) then
        raise exception 'p_reply_gap_s must be a finite number of seconds, got %', p_reply_gap_s
            using errcode = '22023';
    end if;
    if p_reply_gap_s < 0 then
        raise exception 'p_reply_gap_s must be >= 0 seconds, got %', p_reply_gap_s using errcode = '22023';
    end if;
    perform bayes.check_message_id(p_message_id);

    v_row := bayes.lock_state(p_user_id, true);
    if p_message_id is not null then
        v_previous := bayes.previous_result(p_user_id, 'message', p_message_id);
        if v_previous is not null then
            return v_previous;
        end if;
    end if;

    select s.* into v_step
    from bayes.step_message(
        v_row.state,
        (select r.revision from bayes.params_revision as r),
        v_row.version,
        p_user_id,
        p_message_id,
        p_message,
        extract(epoch from p_sent_at)::float8,
        extract(epoch from v_row.last_message_at)::float8,
        extract(epoch from v_row.decayed_at)::float8,
        p_reply_gap_s,
        p_topic_changed,
        bayes.session_seed()
    ) as s;
    perform bayes.save_state(
        p_user_id, v_step.state, 'message', p_message_id, p_sent_at, v_step.input, v_step.result, p_sent_at
    );
    return v_step.result;
end
$$;

comment on function public.bayes_process_message(uuid, text, timestamptz, text, double precision, boolean) is
'Scores one player message (MODEL.md section 4): creates the state if absent, decays, encodes, updates, decides skip and delay, checks fallback and boss readiness, writes the state and an event. A repeated (user, message_id) returns the first result with "duplicate": true. service_role only.';
revoke all on function public.bayes_process_message(uuid, text, timestamptz, text, double precision, boolean)
from public, anon, authenticated, service_role;
grant execute on function public.bayes_process_message(uuid, text, timestamptz, text, double precision, boolean)
to service_role;

create or replace function public.bayes_apply_llm_scores(
    p_user_id uuid,
    p_deltas jsonb,
    p_message_id text default null
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row public.user_bayesian_state;
    v_previous jsonb;
    v_step record;
    v_key text;
    v_value jsonb;
begin
    if p_user_id is null then
        raise exception 'p_user_id must not be null' using errcode = '22004';
    end if;
    if p_deltas is null then
        raise exception 'p_deltas must not be null' using errcode = '22004';
    end if;
    if jsonb_typeof(p_deltas) <> 'object' or p_deltas = '{}'::jsonb then
        raise exception 'p_deltas must be a non-empty JSON object of metric deltas, got %', left(p_deltas::text, 80)
            using errcode = '22023',
                  hint = 'For example {"intimacy": 4, "trust": -2}; each delta is in [-10, 10].';
    end if;
    for v_key, v_value in select d.key, d.value from jsonb_each(p_deltas) as d loop
        if v_key not in ('intimacy', 'passion', 'trust', 'secureness') then
            raise exception 'unknown metric "%" in p_deltas', v_key
                using errcode = '22023', hint = 'The metrics are intimacy, passion, trust, secureness.';
        end if;
        if jsonb_typeof(v_value) <> 'number' then
            raise exception 'p_deltas.% must be a number, got %', v_key, left(v_value::text, 80)
                using errcode = '22023';
        end if;
        if v_value::numeric not between -10 and 10 then
            raise exception 'p_deltas.% must be in [-10, 10], got %', v_key, v_value using errcode = '22023';
        end if;
    end loop;
    perform bayes.check_message_id(p_message_id);

    v_row := bayes.lock_state(p_user_id, false);
    if p_message_id is not null then
        v_previous := bayes.previous_result(p_user_id, 'llm_scores', p_message_id);
        if v_previous is not null then
            return v_previous;
        end if;
    end if;

    select s.* into v_step
    from bayes.step_llm_scores(
        v_row.state,
        (select r.revision from bayes.params_revision as r),
        v_row.version,
        p_user_id,
        p_message_id,
        p_deltas
    ) as s;
    perform bayes.save_state(
        p_user_id, v_step.state, 'llm_scores', p_message_id, now(), v_step.input, v_step.result, null
    );
    return v_step.result;
end
$$;

comment on function public.bayes_apply_llm_scores(uuid, jsonb, text) is
'Applies the LLM''s per-metric deltas in [-10, 10] as evidence (MODEL.md section 7), e.g. {"intimacy": 4, "trust": -2}. A repeated (user, message_id) returns the first result with "duplicate": true. service_role only.';
revoke all on function public.bayes_apply_llm_scores(uuid, jsonb, text) from public, anon, authenticated, service_role;
grant execute on function public.bayes_apply_llm_scores(uuid, jsonb, text) to service_role;

create or replace function public.bayes_record_outcome(p_user_id uuid, p_decision text, p_engaged boolean)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row public.user_bayesian_state;
    v_step record;
begin
    if p_user_id is null then
        raise exception 'p_user_id must not be null' using errcode = '22004';
    end if;
    if p_decision is null then
        raise exception 'p_decision must not be null' using errcode = '22004';
    end if;
    if p_engaged is null then
        raise exception 'p_engaged must not be null' using errcode = '22004';
    end if;
    if p_decision not in ('skip', 'reply') then
        raise exception 'unknown decision "%": expected skip or reply', left(p_decision, 80) using errcode = '22023';
    end if;

    v_row := bayes.lock_state(p_user_id, false);
    select s.* into v_step
    from bayes.step_outcome(
        v_row.state,
        (select r.revision from bayes.params_revision as r),
        v_row.version,
        p_user_id,
        p_decision,
        p_engaged
    ) as s;
    perform bayes.save_state(p_user_id, v_step.state, 'outcome', null, now(), v_step.input, v_step.result, null);
    return v_step.result;
end
$$;

comment on function public.bayes_record_outcome(uuid, text, boolean) is
'Records whether the player was engaged after a skip or a reply (MODEL.md section 4.4), updating the skip Beta. service_role only.';
revoke all on function public.bayes_record_outcome(uuid, text, boolean) from public, anon, authenticated, service_role;
grant execute on function public.bayes_record_outcome(uuid, text, boolean) to service_role;

create or replace function public.bayes_advance_chapter(p_user_id uuid, p_chapter integer)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row public.user_bayesian_state;
    v_step record;
begin
    if p_user_id is null then
        raise exception 'p_user_id must not be null' using errcode = '22004';
    end if;
    if p_chapter is null then
        raise exception 'p_chapter must not be null' using errcode = '22004';
    end if;
    if p_chapter not between 1 and 5 then
        raise exception 'unknown chapter %: chapters are 1..5', p_chapter using errcode = '22023';
    end if;

    v_row := bayes.lock_state(p_user_id, true);
    if p_chapter < v_row.chapter then
        raise exception 'cannot go back from chapter % to chapter %', v_row.chapter, p_chapter
            using errcode = '22023', hint = 'Chapters only advance.';
    end if;
    select s.* into v_step
    from bayes.step_chapter(
        v_row.state,
        (select r.revision from bayes.params_revision as r),
        v_row.version,
        p_user_id,
        p_chapter
    ) as s;
    if v_step.state is not null then
        perform bayes.save_state(p_user_id, v_step.state, 'chapter', null, now(), v_step.input, v_step.result, null);
    end if;
    return v_step.result;
end
$$;

comment on function public.bayes_advance_chapter(uuid, integer) is
'Moves a player to a later chapter (MODEL.md section 8); the current chapter again is a no-op ("changed": false), an earlier one is 22023. Creates the state if absent. service_role only.';
revoke all on function public.bayes_advance_chapter(uuid, integer) from public, anon, authenticated, service_role;
grant execute on function public.bayes_advance_chapter(uuid, integer) to service_role;
