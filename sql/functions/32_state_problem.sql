-- What is wrong with a stored state, if anything: the analytics' way to
-- count and find corrupt rows (docs/analytics.md), and a cheap check for
-- anything that must refuse an invalid state. It runs only the codec
-- (bayes_engine.codec.decode: no parameters, no numpy).

create or replace function bayes.state_problem(p_state jsonb)
returns text
language plpython3u
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.state_problem(plpy, p_state)
$$;

comment on function bayes.state_problem is
'Null when the engine accepts a stored state, else the codec''s error message naming the JSON path of the first problem (what a read of the state raises, with XX001, or 0A000 for a newer schema version). The analytics functions return null exactly for these states.';
revoke all on function bayes.state_problem from public;
grant execute on function bayes.state_problem to authenticated, service_role;
