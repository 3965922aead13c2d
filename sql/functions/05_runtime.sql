-- Which build of the bayes_engine package this backend runs (for operators:
-- after a deploy, every backend reloads the code on its next call).

create or replace function bayes.loaded_build()
returns text
language plpython3u
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
return GD.get('bayes_engine_build')
$$;

comment on function bayes.loaded_build() is
'Build hash of the bayes_engine code loaded in this backend, or null before its first call.';
revoke all on function bayes.loaded_build() from public;
grant execute on function bayes.loaded_build() to service_role;
