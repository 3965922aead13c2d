-- The privilege matrix: who may execute each function of the engine, and who
-- may do what on each table. Any new function or grant must be added here.
begin;
select plan(8);

create temporary view engine_function as
select p.oid, p.oid::regprocedure::text as signature
from pg_proc as p
where p.pronamespace = 'bayes'::regnamespace
   or (p.pronamespace = 'public'::regnamespace and p.proname like 'bayes\_%');

select set_eq(
    $$select f.signature, r.role
      from engine_function as f
      cross join (values ('anon'), ('authenticated'), ('service_role')) as r (role)
      where has_function_privilege(r.role, f.oid, 'execute')$$,
    $$values
      ('bayes.assert_may_read(uuid)', 'authenticated'),
      ('bayes.assert_may_read(uuid)', 'service_role'),
      ('bayes.check_message_id(text)', 'service_role'),
      ('bayes.replay(uuid)', 'service_role'),
      ('bayes.message_key(uuid,bayes.event_kind,text)', 'service_role'),
      ('bayes.event_input(bayes.event_kind,bytea)', 'service_role'),
      ('bayes.session_seed()', 'service_role'),
      ('bayes.check_not_null(anyelement,text,text)', 'authenticated'),
      ('bayes.check_not_null(anyelement,text,text)', 'service_role'),
      ('bayes.check_message_text(text)', 'service_role'),
      ('bayes.check_time(timestamp with time zone,text,text)', 'service_role'),
      ('bayes.check_reply_gap(double precision)', 'service_role'),
      ('bayes.check_deltas(jsonb)', 'service_role'),
      ('bayes.check_llm_judgement(jsonb,text,text)', 'service_role'),
      ('bayes.user_bucket(uuid,text)', 'service_role'),
      ('bayes.player_mode(uuid)', 'service_role'),
      ('bayes.shadow_pairs(timestamp with time zone,timestamp with time zone)', 'service_role'),
      ('bayes.shadow_report(timestamp with time zone,timestamp with time zone)', 'service_role'),
      ('bayes.evaluate_policy(jsonb,uuid[],timestamp with time zone,timestamp with time zone)', 'service_role'),
      ('bayes.calibrate_evidence(timestamp with time zone,timestamp with time zone,double precision,double precision,jsonb,boolean)', 'service_role'),
      ('bayes.check_chapter(integer)', 'service_role'),
      ('bayes.check_decision(text)', 'service_role'),
      ('bayes.check_readiness_method(text)', 'authenticated'),
      ('bayes.check_readiness_method(text)', 'service_role'),
      ('bayes.py_build()', 'authenticated'),
      ('bayes.py_build()', 'service_role'),
      ('bayes_process_message(uuid,text,timestamp with time zone,text,double precision,boolean)', 'service_role'),
      ('bayes_apply_llm_scores(uuid,jsonb,text,jsonb,text)', 'service_role'),
      ('bayes_record_outcome(uuid,text,boolean)', 'service_role'),
      ('bayes_advance_chapter(uuid,integer)', 'service_role'),
      ('bayes.decode_state(jsonb)', 'authenticated'),
      ('bayes.decode_state(jsonb)', 'service_role'),
      ('bayes.default_state(integer)', 'service_role'),
      ('bayes.describe_state(jsonb)', 'authenticated'),
      ('bayes.describe_state(jsonb)', 'service_role'),
      ('bayes.loaded_build()', 'service_role'),
      ('bayes.params_snapshot()', 'authenticated'),
      ('bayes.params_snapshot()', 'service_role'),
      ('bayes.params_document()', 'service_role'),
      ('bayes.py_load()', 'authenticated'),
      ('bayes.raise_error(text,text,text)', 'authenticated'),
      ('bayes.raise_error(text,text,text)', 'service_role'),
      ('bayes.py_load()', 'service_role'),
      ('bayes.state_composite(jsonb)', 'authenticated'),
      ('bayes.state_composite(jsonb)', 'service_role'),
      ('bayes.state_problem(jsonb)', 'authenticated'),
      ('bayes.state_problem(jsonb)', 'service_role'),
      ('bayes_get_state(uuid)', 'authenticated'),
      ('bayes_get_state(uuid)', 'service_role'),
      ('bayes.readable_state(uuid)', 'authenticated'),
      ('bayes.readable_state(uuid)', 'service_role'),
      ('bayes_boss_readiness(uuid,text)', 'authenticated'),
      ('bayes_boss_readiness(uuid,text)', 'service_role'),
      ('bayes_fallback_check(uuid)', 'authenticated'),
      ('bayes_fallback_check(uuid)', 'service_role'),
      ('bayes.metric_key(text)', 'authenticated'),
      ('bayes.metric_key(text)', 'service_role'),
      ('bayes.metric_mean(jsonb,text)', 'authenticated'),
      ('bayes.metric_mean(jsonb,text)', 'service_role'),
      ('bayes.metric_variance(jsonb,text)', 'authenticated'),
      ('bayes.metric_variance(jsonb,text)', 'service_role'),
      ('bayes.metric_interval(jsonb,text,double precision)', 'authenticated'),
      ('bayes.metric_interval(jsonb,text,double precision)', 'service_role'),
      ('bayes.composite_sd(jsonb)', 'authenticated'),
      ('bayes.composite_sd(jsonb)', 'service_role'),
      ('bayes.mood(jsonb)', 'authenticated'),
      ('bayes.mood(jsonb)', 'service_role'),
      ('bayes.top_vice(jsonb)', 'authenticated'),
      ('bayes.top_vice(jsonb)', 'service_role'),
      ('bayes.readiness_probability(jsonb)', 'authenticated'),
      ('bayes.readiness_probability(jsonb)', 'service_role'),
      ('bayes.fallback_reason(jsonb)', 'authenticated'),
      ('bayes.fallback_reason(jsonb)', 'service_role'),
      ('bayes.state_readiness(jsonb,text,text,text)', 'authenticated'),
      ('bayes.state_readiness(jsonb,text,text,text)', 'service_role'),
      ('bayes.state_fallback_check(jsonb)', 'authenticated'),
      ('bayes.state_fallback_check(jsonb)', 'service_role'),
      ('bayes.decay_state(jsonb,bigint,double precision,double precision,double precision)', 'authenticated'),
      ('bayes.decay_state(jsonb,bigint,double precision,double precision,double precision)', 'service_role'),
      ('bayes.decay_due_at(jsonb,double precision,double precision)', 'service_role'),
      ('bayes.health(integer[])', 'service_role'),
      ('bayes.alerts()', 'service_role'),
      ('bayes.event_id_at(timestamp with time zone)', 'service_role'),
      ('bayes.health_param(text)', 'service_role'),
      ('bayes.health_windows(integer[])', 'service_role'),
      ('bayes.sign_agreement(bytea[],bytea[])', 'service_role'),
      ('bayes.prometheus_accepts(text)', 'service_role'),
      ('bayes_metrics()', 'service_role')$$,
    'execute privileges of every engine function, per API role (the bulk decay''s and retention''s functions, bayes.install_py_module, the event log''s writers and expiry, the health snapshot''s job: none; bayes.decay_state: the read RPCs decay on read)'
);

select is_empty(
    $$select f.signature
      from engine_function as f, aclexplode(coalesce((select proacl from pg_proc where oid = f.oid), acldefault('f', 10::oid))) as a
      where a.grantee = 0$$,
    'no engine function is executable by PUBLIC'
);

select set_eq(
    $$select t.relname, r.role, priv.name
      from (values ('public.user_bayesian_state'::regclass), ('bayes.player_event'), ('bayes.chapter_params'), ('bayes.params'),
                   ('bayes.params_revision'), ('bayes.decay_run'), ('bayes.decay_skipped'), ('bayes.player_summary'),
                   ('bayes.py_module'), ('bayes.rollout'), ('bayes.player_checkpoint'),
                   ('bayes.retention_run'), ('bayes.retention_skipped'), ('bayes.event_result'),
                   ('bayes.health_threshold'), ('bayes.health_snapshot'), ('bayes.health_change'),
                   ('bayes.partition')) as t0 (rel)
      cross join lateral (select t0.rel::text as relname) as t
      cross join (values ('anon'), ('authenticated'), ('service_role')) as r (role)
      cross join (values ('select'), ('insert'), ('update'), ('delete'), ('truncate'), ('references'), ('trigger')) as priv (name)
      where has_table_privilege(r.role, t0.rel, priv.name)$$,
    $$values
      ('user_bayesian_state', 'authenticated', 'select'),
      ('user_bayesian_state', 'service_role', 'select'),
      ('user_bayesian_state', 'service_role', 'delete'),
      ('bayes.player_event', 'service_role', 'select'),
      ('bayes.event_result', 'service_role', 'select'),
      ('bayes.params_revision', 'authenticated', 'select'),
      ('bayes.params_revision', 'service_role', 'select'),
      ('bayes.chapter_params', 'authenticated', 'select'),
      ('bayes.chapter_params', 'service_role', 'select'),
      ('bayes.params', 'authenticated', 'select'),
      ('bayes.params', 'service_role', 'select'),
      ('bayes.decay_run', 'service_role', 'select'),
      ('bayes.decay_skipped', 'service_role', 'select'),
      ('bayes.py_module', 'authenticated', 'select'),
      ('bayes.py_module', 'service_role', 'select'),
      ('bayes.player_summary', 'service_role', 'select'),
      ('bayes.rollout', 'service_role', 'select'),
      ('bayes.player_checkpoint', 'service_role', 'select'),
      ('bayes.retention_run', 'service_role', 'select'),
      ('bayes.retention_skipped', 'service_role', 'select'),
      ('bayes.health_threshold', 'service_role', 'select'),
      ('bayes.health_snapshot', 'service_role', 'select'),
      ('bayes.health_change', 'service_role', 'select'),
      ('bayes.partition', 'service_role', 'select')$$,
    'table privileges per API role'
);

-- The health snapshot (issue 16) is the pg_cron job's, run as the database
-- owner: no API role takes it, schedules it or holds its lock key.
select is_empty(
    $$select p.oid::regprocedure::text, r.role
      from pg_proc as p
      cross join (values ('anon'), ('authenticated'), ('service_role')) as r (role)
      where p.oid in ('bayes.record_health()'::regprocedure, 'bayes.schedule_health(text)'::regprocedure,
                      'bayes.health_lock_key()'::regprocedure)
        and has_function_privilege(r.role, p.oid, 'execute')$$,
    'bayes.record_health, bayes.schedule_health and bayes.health_lock_key: the owner only'
);
select is_empty(
    $$select c.relname, r.role
      from pg_class as c
      cross join (values ('anon'), ('authenticated')) as r (role)
      cross join (values ('select'), ('insert'), ('update'), ('delete')) as priv (name)
      where c.oid in ('bayes.health_threshold'::regclass, 'bayes.health_snapshot'::regclass, 'bayes.health_change'::regclass)
        and has_table_privilege(r.role, c.oid, priv.name)$$,
    'the health tables: nothing for anon and the players'
);

select set_eq(
    $$select r.role, has_schema_privilege(r.role, 'bayes', 'usage')
      from (values ('anon'), ('authenticated'), ('service_role')) as r (role)$$,
    $$values ('anon', false), ('authenticated', true), ('service_role', true)$$,
    'usage of schema bayes'
);

-- The partitioned mode (issue 17): its entry points are the proxy's login's
-- (bayes_proxy) and nobody else's; bayes.become_partition is the owner's.
select set_eq(
    $$select p.oid::regprocedure::text, r.role
      from pg_proc as p
      cross join (values ('anon'), ('authenticated'), ('service_role'), ('bayes_proxy')) as r (role)
      where p.pronamespace = 'bayes_partition'::regnamespace and has_function_privilege(r.role, p.oid, 'execute')$$,
    $$select p.oid::regprocedure::text, 'bayes_proxy'
      from pg_proc as p where p.pronamespace = 'bayes_partition'::regnamespace$$,
    'the functions of schema bayes_partition: executable by bayes_proxy only'
);
select is_empty(
    $$select r.role
      from (values ('anon'), ('authenticated'), ('service_role'), ('bayes_proxy')) as r (role)
      where has_function_privilege(r.role, 'bayes.become_partition(integer,integer)', 'execute')
         or has_schema_privilege(r.role, 'bayes_partition', 'usage') and r.role <> 'bayes_proxy'$$,
    'bayes.become_partition: the owner only; schema bayes_partition: bayes_proxy only'
);

select * from finish();
rollback;
