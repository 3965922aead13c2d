-- bayes_apply_llm_scores (MODEL.md sections 7 and 9): the LLM's per-metric
-- deltas as evidence, for the game's backend (service_role). The math is
-- bayes_engine.model's apply_llm_scores, reached through bayes.apply_input.
-- Issue 14: the LLM's vices and mood of the same message, when the backend
-- has them, are recorded with the deltas (in the event's input) for the
-- shadow report; they change nothing in the state.

-- The signature grew two optional arguments: the old function goes first,
-- else a call with three arguments would find two candidates.
drop function if exists public.bayes_apply_llm_scores(uuid, jsonb, text);

create or replace function public.bayes_apply_llm_scores(
    p_user_id uuid,
    p_deltas jsonb,
    p_message_id text default null,
    p_vices jsonb default null,
    p_mood text default null
)
returns jsonb
language plpgsql
volatile
-- Definer: the API roles may not write the state table or its event log
-- themselves (sql/functions/50_apply_input.sql); a writer RPC is their way
-- in. It checks every argument first, and only service_role may execute it.
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_input jsonb;
begin
    v_checked := bayes.check_not_null(p_user_id, 'p_user_id');
    v_checked := bayes.check_deltas(p_deltas);
    v_checked := bayes.check_message_id(p_message_id);
    v_checked := bayes.check_llm_judgement(p_vices, p_mood, p_message_id);

    v_input := jsonb_build_object('deltas', p_deltas);
    if p_vices is not null then
        v_input := v_input || jsonb_build_object('vices', p_vices);
    end if;
    if p_mood is not null then
        v_input := v_input || jsonb_build_object('mood', p_mood);
    end if;
    return bayes.apply_input('llm_scores', p_user_id, p_message_id, v_input::json, now());
end
$$;

comment on function public.bayes_apply_llm_scores is
'Applies the LLM''s per-metric deltas in [-10, 10] as evidence (MODEL.md section 7), e.g. {"intimacy": 4, "trust": -2}. Optionally records the LLM''s vices ({vice: weight in [0, 1]}) and mood (a mood name) of message p_message_id for the shadow report; they do not change the state. A repeated (user, message_id) returns the first result with "duplicate": true. service_role only.';
revoke all on function public.bayes_apply_llm_scores from public, anon, authenticated, service_role;
grant execute on function public.bayes_apply_llm_scores to service_role;
