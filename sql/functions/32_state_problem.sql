-- PLACEHOLDER until the decay branch lands (its version replaces this file).
create or replace function bayes.state_problem(p_state jsonb)
returns text
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.state_problem(plpy, p_state)
$$;
