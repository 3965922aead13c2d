-- The math of the writers (MODEL.md sections 4, 7, 8), in PL/Python. Each
-- takes the locked row's state and returns the new state, the result for the
-- caller and the input logged in bayes.player_event; the RPCs around them
-- lock, check idempotency and write. Times are epoch seconds.

create or replace function bayes.step_message(
    p_state jsonb,
    p_params_revision bigint,
    p_version bigint,
    p_user_id uuid,
    p_message_id text,
    p_message text,
    p_sent_at double precision,
    p_last_message_at double precision,
    p_decayed_at double precision,
    p_reply_gap_s double precision,
    p_topic_changed boolean,
    p_seed text,
    out state jsonb,
    out result jsonb,
    out input jsonb
)
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
if GD.get('bayes_engine_build') != '@BUILD@': plpy.execute('select bayes.py_load()')
from bayes_engine import pg
return pg.step_message(plpy, p_state, p_params_revision, p_version, p_user_id, p_message_id, p_message,
                       p_sent_at, p_last_message_at, p_decayed_at, p_reply_gap_s, p_topic_changed, p_seed)
$$;

comment on function bayes.step_message(
    jsonb, bigint, bigint, uuid, text, text, double precision, double precision, double precision, double precision, boolean, text
) is
'One message applied to a state (MODEL.md section 4): decay, encoding, metrics, vices, mood, timing, skip, delay, fallback, boss readiness.';
revoke all on function bayes.step_message(
    jsonb, bigint, bigint, uuid, text, text, double precision, double precision, double precision, double precision, boolean, text
) from public;
grant execute on function bayes.step_message(
    jsonb, bigint, bigint, uuid, text, text, double precision, double precision, double precision, double precision, boolean, text
) to service_role;

create or replace function bayes.step_llm_scores(
    p_state jsonb,
    p_params_revision bigint,
    p_version bigint,
    p_user_id uuid,
    p_message_id text,
    p_deltas jsonb,
    out state jsonb,
    out result jsonb,
    out input jsonb
)
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
if GD.get('bayes_engine_build') != '@BUILD@': plpy.execute('select bayes.py_load()')
from bayes_engine import pg
return pg.step_llm_scores(plpy, p_state, p_params_revision, p_version, p_user_id, p_message_id, p_deltas)
$$;

comment on function bayes.step_llm_scores(jsonb, bigint, bigint, uuid, text, jsonb) is
'LLM deltas applied to a state (MODEL.md section 7): alpha += delta/10 for delta > 0, beta += |delta|/10 for delta < 0.';
revoke all on function bayes.step_llm_scores(jsonb, bigint, bigint, uuid, text, jsonb) from public;
grant execute on function bayes.step_llm_scores(jsonb, bigint, bigint, uuid, text, jsonb) to service_role;

create or replace function bayes.step_outcome(
    p_state jsonb,
    p_params_revision bigint,
    p_version bigint,
    p_user_id uuid,
    p_decision text,
    p_engaged boolean,
    out state jsonb,
    out result jsonb,
    out input jsonb
)
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
if GD.get('bayes_engine_build') != '@BUILD@': plpy.execute('select bayes.py_load()')
from bayes_engine import pg
return pg.step_outcome(plpy, p_state, p_params_revision, p_version, p_user_id, p_decision, p_engaged)
$$;

comment on function bayes.step_outcome(jsonb, bigint, bigint, uuid, text, boolean) is
'An outcome of a skip or reply applied to the skip Beta of a state (MODEL.md section 4.4).';
revoke all on function bayes.step_outcome(jsonb, bigint, bigint, uuid, text, boolean) from public;
grant execute on function bayes.step_outcome(jsonb, bigint, bigint, uuid, text, boolean) to service_role;

create or replace function bayes.step_chapter(
    p_state jsonb,
    p_params_revision bigint,
    p_version bigint,
    p_user_id uuid,
    p_chapter integer,
    out state jsonb,
    out result jsonb,
    out input jsonb
)
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
if GD.get('bayes_engine_build') != '@BUILD@': plpy.execute('select bayes.py_load()')
from bayes_engine import pg
return pg.step_chapter(plpy, p_state, p_params_revision, p_version, p_user_id, p_chapter)
$$;

comment on function bayes.step_chapter(jsonb, bigint, bigint, uuid, integer) is
'A chapter transition applied to a state (MODEL.md section 8); state is null when the chapter is already current.';
revoke all on function bayes.step_chapter(jsonb, bigint, bigint, uuid, integer) from public;
grant execute on function bayes.step_chapter(jsonb, bigint, bigint, uuid, integer) to service_role;

create or replace function bayes.replay(p_user_id uuid)
returns jsonb
language plpython3u
stable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
if GD.get('bayes_engine_build') != '@BUILD@': plpy.execute('select bayes.py_load()')
from bayes_engine import pg
return pg.replay(plpy, p_user_id)
$$;

comment on function bayes.replay(uuid) is
'The state of player p_user_id rebuilt from bayes.player_event with the current parameters; equals the stored state while the parameters are unchanged.';
revoke all on function bayes.replay(uuid) from public;
grant execute on function bayes.replay(uuid) to service_role;
