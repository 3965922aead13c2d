-- bayes_record_outcome (MODEL.md sections 4.4 and 9): what the player did
-- after a skip or a reply, for the game's backend (service_role). The math is
-- bayes_engine.model's record_outcome, reached through bayes.apply_input.

create or replace function public.bayes_record_outcome(p_user_id uuid, p_decision text, p_engaged boolean)
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
begin
    v_checked := bayes.check_not_null(p_user_id, 'p_user_id');
    v_checked := bayes.check_not_null(p_decision, 'p_decision');
    v_checked := bayes.check_not_null(p_engaged, 'p_engaged');
    v_checked := bayes.check_decision(p_decision);

    return bayes.apply_input(
        'outcome', p_user_id, null, json_build_object('decision', p_decision, 'engaged', p_engaged), now()
    );
end
$$;

comment on function public.bayes_record_outcome is
'Records whether the player was engaged after a skip or a reply (MODEL.md section 4.4), updating the skip Beta. service_role only.';
revoke all on function public.bayes_record_outcome from public, anon, authenticated, service_role;
grant execute on function public.bayes_record_outcome to service_role;
