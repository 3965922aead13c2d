-- The model parameters as one JSON document, the form the PL/Python code reads.

create or replace function bayes.params_snapshot()
returns jsonb
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select jsonb_build_object(
        'chapters',
        (
            select jsonb_agg(to_jsonb(c) order by c.chapter)
            from bayes.chapter_params as c
        ),
        'global',
        (select jsonb_object_agg(p.name, p.value) from bayes.params as p)
    )
$$;

comment on function bayes.params_snapshot is
'bayes.chapter_params and bayes.params as one JSON document {chapters: [...], global: {...}}.';
revoke all on function bayes.params_snapshot from public;
grant execute on function bayes.params_snapshot to authenticated, service_role;

create or replace function bayes.check_params()
returns trigger
language plpython3u
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.check_params(plpy)
$$;

comment on function bayes.check_params is
'Statement trigger of bayes.chapter_params and bayes.params: refuses (22023, naming the key) a change that leaves parameters the engine cannot use: a missing row or key, a value that is not a finite number, out of its range, or a mood matrix whose rows do not sum to 1.';
revoke all on function bayes.check_params from public;

create or replace trigger chapter_params_valid
after insert or update or delete or truncate on bayes.chapter_params
for each statement execute function bayes.check_params();

create or replace trigger params_valid
after insert or update or delete or truncate on bayes.params
for each statement execute function bayes.check_params();

-- MODEL.md v2 retired the fallback rules high_variance and critical_zone:
-- their rows go once the code that no longer reads them is installed (the
-- functions migration installs the modules before this file). The trigger
-- above checks the change with the code loaded in this session, which may
-- be the older copy a trigger loaded earlier in the same push (migration
-- 0009 inserted rows): bayes.py_load() replaces it with the installed build
-- first. Nothing to delete (a fresh database after a baseline, or a second
-- run) deletes nothing.
select bayes.py_load();

delete from bayes.params
where name in (
    'variance_threshold_intimacy',
    'variance_threshold_passion',
    'variance_threshold_trust',
    'variance_threshold_secureness',
    'critical_zone'
);
