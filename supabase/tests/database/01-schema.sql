-- The schema of MODEL.md sections 2 and 9, as the migrations create it.
begin;
select plan(58);

select has_extension('plpython3u', 'plpython3u is installed');
select has_extension('pg_cron', 'pg_cron is installed');
select has_schema('bayes', 'internals live in schema bayes');

select has_table('public', 'user_bayesian_state', 'the player state table exists');
select columns_are(
    'public', 'user_bayesian_state',
    array['user_id', 'state', 'version', 'last_message_at', 'decayed_at', 'created_at', 'updated_at', 'chapter', 'composite', 'decay_due_at'],
    'user_bayesian_state has exactly the columns of MODEL.md section 2'
);
select col_is_pk('public', 'user_bayesian_state', 'user_id', 'user_id is the primary key');
select col_type_is('public', 'user_bayesian_state', 'state', 'jsonb', 'state is jsonb');
select col_not_null('public', 'user_bayesian_state', 'state', 'state is not null');
select col_type_is('public', 'user_bayesian_state', 'version', 'bigint', 'version is bigint');
select col_not_null('public', 'user_bayesian_state', 'version', 'version is not null');
select fk_ok('public', 'user_bayesian_state', 'user_id', 'auth', 'users', 'id', 'user_id references auth.users');
select is(
    (select string_agg(attname || ':' || attgenerated::text, ',' order by attname)
     from pg_attribute
     where attrelid = 'public.user_bayesian_state'::regclass and attgenerated <> ''),
    'chapter:s,composite:s',
    'chapter and composite are generated stored columns'
);
select has_index('public', 'user_bayesian_state', 'user_bayesian_state_last_message_at_idx', 'decay index');
select has_index('public', 'user_bayesian_state', 'user_bayesian_state_chapter_composite_idx', 'analytics index');

select has_table('bayes', 'player_event', 'the event log exists');
select index_is_unique('bayes', 'player_event', 'player_event_message_key_uq', 'a message id is applied once per player and kind (its key)');
select col_is_pk('bayes', 'player_event', 'event_id', 'events in log order: the primary key');
select has_table('bayes', 'chapter_params', 'per-chapter parameters');
select has_table('bayes', 'params', 'global parameters');
select has_table('bayes', 'decay_run', 'the log of the bulk decay runs');
select has_table('bayes', 'decay_skipped', 'the rows the bulk decay skipped, and why');
select has_table('bayes', 'player_checkpoint', 'where each player''s log starts since retention');
select has_table('bayes', 'retention_run', 'the log of the retention runs');
select has_table('bayes', 'retention_skipped', 'the players a retention run skipped, and why');
select has_table('bayes', 'rollout', 'the share of players in mode bayes (issue 14)');
select results_eq(
    'select singleton, bayes_percent from bayes.rollout',
    $$values (true, 0::numeric)$$,
    'one rollout row: a new installation has every player in shadow'
);
select throws_ok(
    $$insert into bayes.rollout (singleton, bayes_percent) values (false, 10)$$,
    '23514', null, 'bayes.rollout holds one row'
);
-- The measurements of the message path and the health signals (issue 16).
select columns_are(
    'bayes', 'player_event',
    array['event_id', 'user_id', 'occurred_at', 'message_key', 'kind', 'player_mode', 'n', 'mood', 'fallback_reason',
          'fallback_needed', 'message_id', 'input', 'recorded_at', 'db_time_us', 'observations'],
    'player_event has the columns of the compact log and the measurements of issue 16'
);
select col_type_is('bayes', 'player_event', 'recorded_at', 'timestamp with time zone', 'recorded_at: when the engine wrote the event');
select col_type_is('bayes', 'player_event', 'db_time_us', 'integer', 'db_time_us: a message''s time in the database, microseconds');
select col_type_is('bayes', 'player_event', 'observations', 'smallint', 'observations: a message''s metric feature count');
select has_index('bayes', 'player_event', 'player_event_llm_scores_idx', 'the LLM''s answers, by a partial index');
select has_enum('bayes', 'health_status', 'the status of a health signal');
select enum_has_labels('bayes', 'health_status', array['ok', 'warn', 'critical'], 'ok, warn, critical, in that order');
select has_table('bayes', 'health_threshold', 'the health signals and their thresholds');
select col_is_pk('bayes', 'health_threshold', 'signal', 'one threshold row per signal');
select results_eq(
    $$select signal, warn, critical, direction from bayes.health_threshold
      where signal in ('fallback_rate', 'posterior_variance', 'latency_p99_ms', 'no_signal_share') order by signal$$,
    $$values ('fallback_rate', 0.15::float8, 0.30::float8, 'above'), ('latency_p99_ms', 1, 5, 'above'),
             ('no_signal_share', 0.20, 0.40, 'above'), ('posterior_variance', 0.03, 0.05, 'above')$$,
    'the thresholds the issue names: fallback 15% / 30%, variance 0.03 / 0.05, p99 1 ms / 5 ms, no signal 20% / 40%'
);
select set_eq(
    'select signal from bayes.health_threshold',
    $$values ('messages_per_second'), ('fallback_rate'), ('llm_granted'), ('llm_refused'), ('llm_budget_exhaustion'),
             ('no_signal_share'), ('posterior_variance'), ('latency_p50_ms'), ('latency_p99_ms'), ('decay_lag_s'),
             ('retention_lag_s'), ('event_log_bytes'), ('state_table_bytes'), ('shadow_agreement')$$,
    'one threshold row for every signal of bayes.health'
);
select has_table('bayes', 'health_snapshot', 'the snapshots of the health signals');
select has_table('bayes', 'health_change', 'the changes of status of the health signals');
select throws_ok(
    $$insert into bayes.health_snapshot (taken_at, signal, window_s, label, status)
      values ('2026-01-01', 'decay_lag_s', null, null, 'ok'), ('2026-01-01', 'decay_lag_s', null, null, 'warn')$$,
    '23505', null, 'one snapshot row per instant, signal, window and label (nulls not distinct)'
);
select is(
    (select count(*)::integer from cron.job where jobname = 'bayes-record-health' and command = 'select bayes.record_health()'),
    1,
    'exactly one pg_cron job records the health snapshots'
);
select is(
    (select count(*)::integer from bayes.params
     where name in ('health_window_short_s', 'health_window_long_s', 'health_agreement_window_h', 'health_agreement_pairs',
                    'health_snapshot_retention_days')),
    5,
    'the windows, the agreement''s sample and the snapshots'' retention are parameters'
);
select has_view('bayes', 'player_summary', 'the analytics view');
select has_table('bayes', 'partition', 'which partition of the partitioned mode this database is (issue 17)');
select is_empty('select 1 from bayes.partition', 'a single node is no partition');
select has_schema('bayes_partition', 'the partitioned mode''s entry points (issue 17)');
select is(
    (select count(*)::integer from cron.job where jobname = 'bayes-run-decay' and command = bayes.run_decay_command()),
    1,
    'exactly one pg_cron job runs the bulk decay'
);
select is(
    (select count(*)::integer from cron.job where jobname = 'bayes-run-retention' and command = bayes.run_retention_command()),
    1,
    'exactly one pg_cron job runs the retention of the event log'
);
select results_eq(
    'select chapter::int, boss_threshold from bayes.chapter_params order by chapter',
    $$values (1, 55::float8), (2, 60), (3, 65), (4, 70), (5, 75)$$,
    'five chapters with the boss thresholds of MODEL.md section 1'
);

select is(
    (select count(*)::int from pg_class
     where oid in ('public.user_bayesian_state'::regclass, 'bayes.player_event'::regclass,
                   'bayes.chapter_params'::regclass, 'bayes.params'::regclass, 'bayes.rollout'::regclass)
       and relrowsecurity),
    5,
    'row level security is enabled on every table'
);
select is_empty(
    $$select c.oid::regclass::text from pg_class as c
      where c.relnamespace in ('bayes'::regnamespace, 'public'::regnamespace) and c.relkind = 'r' and not c.relrowsecurity$$,
    'no table of schema bayes or public is without row level security'
);

-- Deleting the auth user deletes his state (on delete cascade).
insert into auth.users (id, email) values ('00000000-0000-4000-8000-0000000000c1', 'c1@players.test');
insert into public.user_bayesian_state (user_id, state)
values ('00000000-0000-4000-8000-0000000000c1', bayes.default_state(4));
select is(
    (select chapter::int from public.user_bayesian_state where user_id = '00000000-0000-4000-8000-0000000000c1'),
    4, 'the generated chapter follows the state'
);
select cmp_ok(
    (select composite from public.user_bayesian_state where user_id = '00000000-0000-4000-8000-0000000000c1'),
    '>', 0::float8, 'the generated composite is computed'
);
select throws_ok(
    $$insert into public.user_bayesian_state (user_id, state)
      values ('00000000-0000-4000-8000-0000000000c1', bayes.default_state(2))$$,
    '23505', null, 'one row per player'
);
select throws_ok(
    $$update public.user_bayesian_state set version = 0 where user_id = '00000000-0000-4000-8000-0000000000c1'$$,
    '23514', null, 'version is at least 1'
);
delete from auth.users where id = '00000000-0000-4000-8000-0000000000c1';
select is_empty(
    $$select 1 from public.user_bayesian_state where user_id = '00000000-0000-4000-8000-0000000000c1'$$,
    'deleting the auth user deletes his state'
);
select throws_ok(
    $$insert into public.user_bayesian_state (user_id, state)
      values ('00000000-0000-4000-8000-0000000000c2', bayes.default_state(1))$$,
    '23503', null, 'a state belongs to an existing auth user'
);

select * from finish();
rollback;
