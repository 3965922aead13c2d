-- The rules every RPC applies to its arguments, each written once. An RPC
-- calls them before it locks or writes anything, so that a bad argument is a
-- clean 22xxx error (HTTP 400 through PostgREST) and changes nothing. Each
-- returns true or raises: an RPC calls it in an assignment
-- (`v_checked := bayes.check_...`), which plpgsql evaluates as a simple
-- expression, about half the cost of a PERFORM (a query) on the message path.

create or replace function bayes.check_not_null(p_value anyelement, p_name text, p_note text default null)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_value is null then
        raise exception '% must not be null%', p_name, coalesce(' (' || p_note || ')', '') using errcode = '22004';
    end if;
    return true;
end
$$;

comment on function bayes.check_not_null is
'True, or raises 22004 "<p_name> must not be null (<p_note>)" when p_value is null.';
revoke all on function bayes.check_not_null from public;
grant execute on function bayes.check_not_null to authenticated, service_role;

create or replace function bayes.check_message_text(p_message text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_message is null then
        return bayes.check_not_null(p_message, 'p_message');
    end if;
    if octet_length(p_message) > 65536 then
        raise exception 'p_message is % bytes; the limit is 64 KiB (65536 bytes)', octet_length(p_message)
            using errcode = '22001';
    end if;
    return true;
end
$$;

comment on function bayes.check_message_text is
'True, or raises 22004 for a null message and 22001 for one over 64 KiB (65536 bytes of UTF-8).';
revoke all on function bayes.check_message_text from public;
grant execute on function bayes.check_message_text to service_role;

create or replace function bayes.check_time(p_value timestamptz, p_name text, p_note text default null)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_value is null then
        return bayes.check_not_null(p_value, p_name, p_note);
    end if;
    if not isfinite(p_value) then
        raise exception '% must be a finite time, got %', p_name, p_value using errcode = '22023';
    end if;
    return true;
end
$$;

comment on function bayes.check_time is
'True, or raises 22004 for a null time and 22023 for an infinite one.';
revoke all on function bayes.check_time from public;
grant execute on function bayes.check_time to service_role;

create or replace function bayes.check_reply_gap(p_reply_gap_s double precision)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_reply_gap_s = 'NaN'::float8 or p_reply_gap_s in ('Infinity'::float8, '-Infinity'::float8) then
        raise exception 'p_reply_gap_s must be a finite number of seconds, got %', p_reply_gap_s
            using errcode = '22023';
    end if;
    if p_reply_gap_s < 0 then
        raise exception 'p_reply_gap_s must be >= 0 seconds, got %', p_reply_gap_s using errcode = '22023';
    end if;
    return true;
end
$$;

comment on function bayes.check_reply_gap is
'True, or raises 22023 unless p_reply_gap_s is null or a finite number of seconds >= 0.';
revoke all on function bayes.check_reply_gap from public;
grant execute on function bayes.check_reply_gap to service_role;

-- Before issue 11, bayes.check_message_id returned void, and a return type
-- cannot be changed in place: drop that one (only that one), in the
-- migration that also replaces its callers.
do $$
begin
    if (select p.prorettype from pg_proc as p where p.oid = to_regprocedure('bayes.check_message_id(text)'))
        = 'void'::regtype then
        drop function bayes.check_message_id(text);
    end if;
end
$$;

create or replace function bayes.check_message_id(p_message_id text)
returns boolean
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
    return true;
end
$$;

comment on function bayes.check_message_id is
'True, or raises 22023 unless p_message_id is null or 1 to 200 characters.';
revoke all on function bayes.check_message_id from public;
grant execute on function bayes.check_message_id to service_role;

create or replace function bayes.check_deltas(p_deltas jsonb)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_key text;
    v_value jsonb;
begin
    if p_deltas is null then
        return bayes.check_not_null(p_deltas, 'p_deltas');
    end if;
    if jsonb_typeof(p_deltas) <> 'object' or p_deltas = '{}'::jsonb then
        raise exception 'p_deltas must be a non-empty JSON object of metric deltas, got %', left(p_deltas::text, 80)
            using errcode = '22023',
                  hint = 'For example {"intimacy": 4, "trust": -2}; each delta is in [-10, 10].';
    end if;
    for v_key, v_value in select d.key, d.value from jsonb_each(p_deltas) as d loop
        if v_key not in (@METRIC_NAMES@) then
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
    return true;
end
$$;

comment on function bayes.check_deltas is
'True, or raises 22004 for null and 22023 unless p_deltas is a non-empty JSON object {metric: number in [-10, 10]}.';
revoke all on function bayes.check_deltas from public;
grant execute on function bayes.check_deltas to service_role;

create or replace function bayes.check_llm_judgement(p_vices jsonb, p_mood text, p_message_id text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_key text;
    v_value jsonb;
begin
    if p_vices is null and p_mood is null then
        return true;
    end if;
    if p_message_id is null then
        return bayes.check_not_null(
            p_message_id, 'p_message_id', 'The LLM''s vices and mood describe one message: pass its p_message_id.'
        );
    end if;
    if p_vices is not null then
        if jsonb_typeof(p_vices) <> 'object' then
            raise exception 'p_vices must be a JSON object of vice weights, got %', left(p_vices::text, 80)
                using errcode = '22023',
                      hint = 'For example {"risk_taking": 0.5, "dark_humor": 1}: each weight in [0, 1], {} for none.';
        end if;
        for v_key, v_value in select d.key, d.value from jsonb_each(p_vices) as d loop
            if v_key not in (@VICES@) then
                raise exception 'unknown vice "%" in p_vices', left(v_key, 80)
                    using errcode = '22023',
                          hint = 'The vices are ' || array_to_string(array[@VICES@], ', ') || '.';
            end if;
            if jsonb_typeof(v_value) <> 'number' then
                raise exception 'p_vices.% must be a number, got %', v_key, left(v_value::text, 80)
                    using errcode = '22023';
            end if;
            if v_value::numeric not between 0 and 1 then
                raise exception 'p_vices.% must be in [0, 1], got %', v_key, v_value using errcode = '22023';
            end if;
        end loop;
    end if;
    if p_mood is not null and p_mood not in (@MOODS@) then
        raise exception 'unknown mood "%" in p_mood', left(p_mood, 80)
            using errcode = '22023',
                  hint = 'The moods are ' || array_to_string(array[@MOODS@], ', ') || '.';
    end if;
    return true;
end
$$;

comment on function bayes.check_llm_judgement is
'True, or raises 22023 unless p_vices is null or a JSON object {vice: number in [0, 1]} and p_mood null or a mood name, and 22004 when either is given without p_message_id.';
revoke all on function bayes.check_llm_judgement from public;
grant execute on function bayes.check_llm_judgement to service_role;

create or replace function bayes.check_chapter(p_chapter integer)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_chapter is null then
        return bayes.check_not_null(p_chapter, 'p_chapter');
    end if;
    if p_chapter not between 1 and 5 then
        raise exception 'unknown chapter %: chapters are 1..5', p_chapter using errcode = '22023';
    end if;
    return true;
end
$$;

comment on function bayes.check_chapter is
'True, or raises 22004 for null and 22023 unless p_chapter is 1..5.';
revoke all on function bayes.check_chapter from public;
grant execute on function bayes.check_chapter to service_role;

create or replace function bayes.check_decision(p_decision text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_decision is null then
        return bayes.check_not_null(p_decision, 'p_decision');
    end if;
    if p_decision not in ('skip', 'reply') then
        raise exception 'unknown decision "%": expected skip or reply', left(p_decision, 80) using errcode = '22023';
    end if;
    return true;
end
$$;

comment on function bayes.check_decision is
'True, or raises 22004 for null and 22023 unless p_decision is skip or reply.';
revoke all on function bayes.check_decision from public;
grant execute on function bayes.check_decision to service_role;

create or replace function bayes.check_readiness_method(p_method text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_method is null then
        return bayes.check_not_null(p_method, 'p_method', 'omit it for edgeworth');
    end if;
    if p_method not in ('edgeworth', 'normal', 'monte_carlo') then
        raise exception 'unknown readiness method %', quote_literal(p_method)
            using errcode = '22023', hint = 'Methods are edgeworth (the default), normal and monte_carlo.';
    end if;
    return true;
end
$$;

comment on function bayes.check_readiness_method is
'True, or raises 22004 for null and 22023 unless p_method is edgeworth, normal or monte_carlo.';
revoke all on function bayes.check_readiness_method from public;
grant execute on function bayes.check_readiness_method to authenticated, service_role;
