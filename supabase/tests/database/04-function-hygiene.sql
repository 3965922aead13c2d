-- Every function of the engine says what it is: security invoker (a few are
-- definer, for reasons their comments give), a pinned
-- search_path, an explicit volatility, and a comment.
begin;
select plan(5);

create temporary view engine_function as
select p.*, p.oid::regprocedure::text as signature
from pg_proc as p
where p.pronamespace in ('bayes'::regnamespace, 'bayes_partition'::regnamespace)
   or (p.pronamespace = 'public'::regnamespace and p.proname like 'bayes\_%');

select set_eq(
    'select signature from engine_function where prosecdef',
    $$values
      ('bayes.delete_player_events()'),
      ('bayes_process_message(uuid,text,timestamp with time zone,text,double precision,boolean)'),
      ('bayes_apply_llm_scores(uuid,jsonb,text,jsonb,text)'),
      ('bayes_record_outcome(uuid,text,boolean)'),
      ('bayes_advance_chapter(uuid,integer)'),
      ('bayes_partition.set_params(jsonb)')$$,
    'the security definer functions: the trigger that deletes a deleted state''s events, the four writer RPCs, and the partition''s parameter writer (issue 17)'
);
select is_empty(
    $$select signature from engine_function
      where proconfig is null or not ('search_path=pg_catalog, pg_temp' = any(proconfig))$$,
    'every engine function pins search_path to pg_catalog, pg_temp'
);
-- A procedure that commits cannot have a SET clause (PostgreSQL forbids
-- transaction control there), so the engine has none: the loops that commit
-- are the DO blocks of bayes.run_decay_command and
-- bayes.run_retention_command (issue 15).
select is_empty(
    $$select signature from engine_function where prokind = 'p'$$,
    'the engine has no procedure'
);
select is_empty(
    $$select signature from engine_function where obj_description(oid, 'pg_proc') is null$$,
    'every engine function has a comment'
);
select set_eq(
    'select signature, provolatile::text from engine_function',
    $$values
      ('bayes.assert_may_read(uuid)', 's'),
      ('bayes.bump_params_revision()', 'v'),
      ('bayes.check_params()', 'v'),
      ('bayes.refuse_invalid_state()', 'v'),
      ('bayes.check_message_id(text)', 'i'),
      ('bayes.delete_player_events()', 'v'),
      ('bayes.lock_state(uuid,boolean)', 'v'),
      ('bayes.previous_result(user_bayesian_state,text,uuid)', 's'),
      ('bayes.replay(uuid)', 's'),
      ('bayes.save_state(uuid,jsonb,text,text,uuid,timestamp with time zone,bytea,jsonb,json,timestamp with time zone,double precision,timestamp with time zone)', 'v'),
      ('bayes.message_key(uuid,bayes.event_kind,text)', 'i'),
      ('bayes.event_input(bayes.event_kind,bytea)', 'i'),
      ('bayes.pack_event_input(bayes.event_kind,jsonb)', 'i'),
      ('bayes.expired_duplicate(uuid,text,jsonb,bigint,double precision,double precision,double precision,double precision)', 's'),
      ('bayes.expire_event_results(timestamp with time zone,integer)', 'v'),
      ('bayes.session_seed()', 's'),
      ('bayes.step(text,uuid,text,json,jsonb,bigint,double precision,double precision,bigint,double precision)', 's'),
      ('bayes.apply_input(text,uuid,text,json,timestamp with time zone,timestamp with time zone,timestamp with time zone)', 'v'),
      ('bayes.check_not_null(anyelement,text,text)', 'i'),
      ('bayes.check_message_text(text)', 'i'),
      ('bayes.check_time(timestamp with time zone,text,text)', 'i'),
      ('bayes.check_reply_gap(double precision)', 'i'),
      ('bayes.check_deltas(jsonb)', 'i'),
      ('bayes.check_llm_judgement(jsonb,text,text)', 'i'),
      ('bayes.user_bucket(uuid,text)', 'i'),
      ('bayes.player_mode(uuid)', 's'),
      ('bayes.shadow_pairs(timestamp with time zone,timestamp with time zone)', 's'),
      ('bayes.shadow_report(timestamp with time zone,timestamp with time zone)', 's'),
      ('bayes.evaluate_policy(jsonb,uuid[],timestamp with time zone,timestamp with time zone)', 's'),
      ('bayes.calibrate_evidence(timestamp with time zone,timestamp with time zone,double precision,double precision,jsonb,boolean)', 'v'),
      ('bayes.check_chapter(integer)', 'i'),
      ('bayes.check_decision(text)', 'i'),
      ('bayes.check_readiness_method(text)', 'i'),
      ('bayes.py_build()', 's'),
      ('bayes.install_py_module(text,text,text)', 'v'),
      ('bayes.py_module_compile()', 'v'),
      ('bayes_advance_chapter(uuid,integer)', 'v'),
      ('bayes_apply_llm_scores(uuid,jsonb,text,jsonb,text)', 'v'),
      ('bayes_process_message(uuid,text,timestamp with time zone,text,double precision,boolean)', 'v'),
      ('bayes_record_outcome(uuid,text,boolean)', 'v'),
      ('bayes.decode_state(jsonb)', 'i'),
      ('bayes.default_state(integer)', 's'),
      ('bayes.describe_state(jsonb)', 's'),
      ('bayes.loaded_build()', 'v'),
      ('bayes.params_snapshot()', 's'),
      ('bayes.params_document()', 's'),
      ('bayes.apply_params_document(jsonb)', 'v'),
      ('bayes.py_load()', 'v'),
      ('bayes.raise_error(text,text,text)', 's'),
      ('bayes.state_composite(jsonb)', 'i'),
      ('bayes.state_problem(jsonb)', 'i'),
      ('bayes_get_state(uuid)', 's'),
      ('bayes.readable_state(uuid)', 's'),
      ('bayes_boss_readiness(uuid,text)', 's'),
      ('bayes_fallback_check(uuid)', 's'),
      ('bayes.decay_state(jsonb,bigint,double precision,double precision,double precision)', 's'),
      ('bayes.decay_states(text[],double precision[],double precision[],double precision,bigint)', 's'),
      ('bayes.decay_due_at(jsonb,double precision,double precision)', 's'),
      ('bayes.prometheus_accepts(text)', 'i'),
      ('bayes_metrics()', 's'),
      ('bayes.begin_decay_run(timestamp with time zone,integer)', 'v'),
      ('bayes.decay_batch(bigint,timestamp with time zone,integer,timestamp with time zone,uuid)', 'v'),
      ('bayes.run_decay_command(timestamp with time zone,integer)', 's'),
      ('bayes.schedule_decay(text)', 'v'),
      ('bayes.decay_lock_key()', 'i'),
      ('bayes.fold_events(uuid[],bigint[],text[],double precision[],double precision[],bigint[],double precision,bigint)', 's'),
      ('bayes.begin_retention_run(timestamp with time zone,integer)', 'v'),
      ('bayes.retention_batch(bigint,timestamp with time zone,integer,text,uuid)', 'v'),
      ('bayes.run_retention_command(timestamp with time zone,integer)', 's'),
      ('bayes.schedule_retention(text)', 'v'),
      ('bayes.retention_lock_key()', 'i'),
      ('bayes.metric_key(text)', 'i'),
      ('bayes.metric_mean(jsonb,text)', 'i'),
      ('bayes.metric_variance(jsonb,text)', 'i'),
      ('bayes.metric_interval(jsonb,text,double precision)', 'i'),
      ('bayes.composite_sd(jsonb)', 'i'),
      ('bayes.mood(jsonb)', 'i'),
      ('bayes.top_vice(jsonb)', 'i'),
      ('bayes.readiness_probability(jsonb)', 's'),
      ('bayes.fallback_reason(jsonb)', 's'),
      ('bayes.state_readiness(jsonb,text,text,text)', 's'),
      ('bayes.state_fallback_check(jsonb)', 's'),
      ('bayes.event_id_at(timestamp with time zone)', 's'),
      ('bayes.health_param(text)', 's'),
      ('bayes.health(integer[])', 's'),
      ('bayes.health_windows(integer[])', 's'),
      ('bayes.sign_agreement(bytea[],bytea[])', 's'),
      ('bayes.health_lock_key()', 'i'),
      ('bayes.record_health()', 'v'),
      ('bayes.schedule_health(text)', 'v'),
      ('bayes.alerts()', 's'),
      ('bayes.health_for_snapshot()', 's'),
      ('bayes.become_partition(integer,integer)', 'v'),
      ('bayes_partition.caller_role(text)', 'i'),
      ('bayes_partition.bayes_process_message(text,text,text,text,uuid,text,timestamp with time zone,text,double precision,boolean)', 'v'),
      ('bayes_partition.bayes_apply_llm_scores(text,text,text,text,uuid,jsonb,text,jsonb,text)', 'v'),
      ('bayes_partition.bayes_record_outcome(text,text,text,text,uuid,text,boolean)', 'v'),
      ('bayes_partition.bayes_advance_chapter(text,text,text,text,uuid,integer)', 'v'),
      ('bayes_partition.bayes_get_state(text,text,text,text,uuid)', 's'),
      ('bayes_partition.bayes_boss_readiness(text,text,text,text,uuid,text)', 's'),
      ('bayes_partition.bayes_fallback_check(text,text,text,text,uuid)', 's'),
      ('bayes_partition.health_parts(timestamp with time zone,integer[],timestamp with time zone,bigint)', 's'),
      ('bayes_partition.partition_index()', 's'),
      ('bayes_partition.user_bayesian_state(text,text)', 's'),
      ('bayes_partition.player_event(text,text)', 's'),
      ('bayes_partition.event_result(text,text)', 's'),
      ('bayes_partition.player_checkpoint(text,text)', 's'),
      ('bayes_partition.decay_run(text,text)', 's'),
      ('bayes_partition.decay_skipped(text,text)', 's'),
      ('bayes_partition.retention_run(text,text)', 's'),
      ('bayes_partition.retention_skipped(text,text)', 's'),
      ('bayes_partition.shadow_pairs(text,text,timestamp with time zone,timestamp with time zone)', 's'),
      ('bayes_partition.evaluate_policy(text,text,jsonb,uuid[],timestamp with time zone,timestamp with time zone)', 's'),
      ('bayes_partition.params_document()', 's'),
      ('bayes_partition.set_params(jsonb)', 'v'),
      ('bayes_partition.delete_player(text,text,uuid)', 'v')$$,
    'volatility of every engine function'
);

select * from finish();
rollback;
