-- Every function of the engine says what it is: security invoker, a pinned
-- search_path, an explicit volatility, and a comment.
begin;
select plan(4);

create temporary view engine_function as
select p.*, p.oid::regprocedure::text as signature
from pg_proc as p
where p.pronamespace = 'bayes'::regnamespace
   or (p.pronamespace = 'public'::regnamespace and p.proname like 'bayes\_%');

select is_empty(
    'select signature from engine_function where prosecdef',
    'no engine function is security definer'
);
select is_empty(
    $$select signature from engine_function
      where proconfig is null or not ('search_path=pg_catalog, pg_temp' = any(proconfig))$$,
    'every engine function pins search_path to pg_catalog, pg_temp'
);
select is_empty(
    $$select signature from engine_function where obj_description(oid, 'pg_proc') is null$$,
    'every engine function has a comment'
);
select set_eq(
    'select signature, provolatile::text from engine_function',
    $$values
      ('bayes.assert_may_read(uuid)', 's'),
      ('bayes.decode_state(jsonb)', 'i'),
      ('bayes.default_state(integer)', 's'),
      ('bayes.describe_state(jsonb)', 's'),
      ('bayes.loaded_build()', 'v'),
      ('bayes.params_snapshot()', 's'),
      ('bayes.py_load()', 'v'),
      ('bayes.raise_error(text,text,text)', 's'),
      ('bayes.state_composite(jsonb)', 'i'),
      ('bayes_get_state(uuid)', 's')$$,
    'volatility of every engine function'
);

select * from finish();
rollback;
