-- The table refuses a state that the codec refuses (issue 12): an operator's
-- UPDATE, a restore, a migration. The engine's own writers skip the check:
-- bayes.apply_input sets bayes.state_writer = 'engine' for its duration and
-- bayes.run_decay for each batch's transaction, and their states come from
-- the codec, which validated them. The check is bayes.state_problem, the
-- codec's own validation (bayes_engine.codec.decode).

create or replace function bayes.refuse_invalid_state()
returns trigger
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_problem text;
begin
    v_problem := bayes.state_problem(new.state);
    if v_problem is not null then
        raise exception 'public.user_bayesian_state refuses this state of player %: %', new.user_id, v_problem
            using errcode = '23514',
                  hint = 'A state must be one the engine could have written (MODEL.md section 2); '
                      || 'the bayes_* RPCs and bayes.run_decay write the states.';
    end if;
    return new;
end
$$;

comment on function bayes.refuse_invalid_state is
'Row trigger of public.user_bayesian_state (user_bayesian_state_valid): raises 23514, naming the player and the problem, for a state that bayes.state_problem finds corrupt.';
revoke all on function bayes.refuse_invalid_state from public;

create or replace trigger user_bayesian_state_valid
before insert or update of state on public.user_bayesian_state
for each row
when (pg_catalog.current_setting('bayes.state_writer', true) is distinct from 'engine')
execute function bayes.refuse_invalid_state();
