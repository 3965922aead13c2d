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
