-- bayes_advance_chapter (MODEL.md sections 8 and 9): a chapter transition,
-- for the game's backend (service_role). The math is bayes_engine.model's
-- advance_chapter, reached through
-- bayes.apply_input; the current chapter again writes nothing.

create or replace function public.bayes_advance_chapter(p_user_id uuid, p_chapter integer)
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
    v_row public.user_bayesian_state;
begin
    v_checked := bayes.check_not_null(p_user_id, 'p_user_id');
    v_checked := bayes.check_chapter(p_chapter);

    -- Checked on the locked row, with this message (bayes_engine's own check
    -- would say it with the PL/Python prefix); bayes.apply_input locks the
    -- row again, which costs nothing in the same transaction.
    v_row := bayes.lock_state(p_user_id, true);
    if p_chapter < v_row.chapter then
        raise exception 'cannot go back from chapter % to chapter %', v_row.chapter, p_chapter
            using errcode = '22023', hint = 'Chapters only advance.';
    end if;
    return bayes.apply_input('chapter', p_user_id, null, json_build_object('chapter', p_chapter), now());
end
$$;

comment on function public.bayes_advance_chapter is
'Moves a player to a later chapter (MODEL.md section 8); the current chapter again is a no-op ("changed": false), an earlier one is 22023. Creates the state if absent. service_role only.';
revoke all on function public.bayes_advance_chapter from public, anon, authenticated, service_role;
grant execute on function public.bayes_advance_chapter to service_role;
