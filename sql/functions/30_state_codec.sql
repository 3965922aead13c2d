-- The compact state codec (MODEL.md section 2), in PL/Python: the code is the
-- bayes_engine package (05_runtime.sql says how each backend loads it).

create or replace function bayes.default_state(p_chapter integer)
returns jsonb
language plpython3u
stable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.default_state(plpy, p_chapter)
$$;

comment on function bayes.default_state is
'Compact state of a new player in chapter p_chapter (1..5), from bayes.chapter_params and bayes.params.';
revoke all on function bayes.default_state from public;
grant execute on function bayes.default_state to service_role;

create or replace function bayes.decode_state(p_state jsonb)
returns jsonb
language plpython3u
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.decode_state(plpy, p_state)
$$;

comment on function bayes.decode_state is
'Validates a stored state, upgrading an older schema version; raises XX001 for a corrupt state and 0A000 for a newer schema version.';
revoke all on function bayes.decode_state from public;
grant execute on function bayes.decode_state to authenticated, service_role;

create or replace function bayes.describe_state(p_state jsonb)
returns jsonb
language plpython3u
stable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.describe_state(plpy, p_state)
$$;

comment on function bayes.describe_state is
'Readable view of a compact state: metric means, variances and 95% intervals, composite and its sd, mood, vices, skip, timing.';
revoke all on function bayes.describe_state from public;
grant execute on function bayes.describe_state to authenticated, service_role;
