-- Row level security and table privileges as anon, player A, player B and service_role.
--
-- Run on a single node and at the proxy of the partitioned mode (issue 17),
-- where the players' states live on their partitions: there the two states
-- are written through the proxy's RPC (a partition has no auth.users: a
-- player exists when he first writes), and they commit on the partitions at
-- once (a remote call is a transaction of its own, which the rollback at the
-- end of this file does not undo; tests/e2e/test_pgtap.py deletes them).
-- Which mode: the proxy has the foreign server of the partitions.
begin;
select plan(27);

select exists (select from pg_catalog.pg_foreign_server where srvname = 'bayes_partitions') as partitioned \gset

\if :partitioned
do $$
begin
    perform public.bayes_advance_chapter('00000000-0000-4000-8000-00000000000a', 1);
    perform public.bayes_advance_chapter('00000000-0000-4000-8000-00000000000b', 2);
end
$$;
\else
insert into auth.users (id, email) values
('00000000-0000-4000-8000-00000000000a', 'a@players.test'),
('00000000-0000-4000-8000-00000000000b', 'b@players.test');
insert into public.user_bayesian_state (user_id, state) values
('00000000-0000-4000-8000-00000000000a', bayes.default_state(1)),
('00000000-0000-4000-8000-00000000000b', bayes.default_state(2));
\endif

-- anon: nothing at all.
set local role anon;
select set_config('request.jwt.claims', '{"role": "anon"}', true);
select throws_ok('select count(*) from public.user_bayesian_state', '42501', null, 'anon cannot read states');
select throws_ok(
    $$select public.bayes_get_state('00000000-0000-4000-8000-00000000000a')$$,
    '42501', null, 'anon cannot call bayes_get_state'
);
select throws_ok('select count(*) from bayes.params', '42501', null, 'anon cannot read parameters');
select throws_ok('select count(*) from bayes.player_event', '42501', null, 'anon cannot read events');
select throws_ok('select count(*) from bayes.rollout', '42501', null, 'anon cannot read the rollout');
reset role;

-- player A: his own row, read only.
set local role authenticated;
select set_config('request.jwt.claims', '{"role": "authenticated", "sub": "00000000-0000-4000-8000-00000000000a"}', true);
select results_eq(
    'select user_id from public.user_bayesian_state',
    $$values ('00000000-0000-4000-8000-00000000000a'::uuid)$$,
    'player A sees only his own row'
);
select is(
    (public.bayes_get_state('00000000-0000-4000-8000-00000000000a') ->> 'chapter')::int, 1,
    'player A reads his own state through the RPC'
);
select throws_ok(
    $$select public.bayes_get_state('00000000-0000-4000-8000-00000000000b')$$,
    '42501', 'a player may read only his own state', 'player A cannot read player B'
);
select throws_ok(
    $$update public.user_bayesian_state set version = version + 1$$,
    '42501', null, 'player A cannot update his row'
);
select throws_ok(
    $$delete from public.user_bayesian_state$$, '42501', null, 'player A cannot delete rows'
);
select throws_ok(
    $$insert into public.user_bayesian_state (user_id, state) values ('00000000-0000-4000-8000-00000000000a', '{}')$$,
    '42501', null, 'player A cannot insert rows'
);
select throws_ok('select count(*) from bayes.player_event', '42501', null, 'player A cannot read the event log');
select throws_ok(
    $$update bayes.chapter_params set boss_threshold = 1$$, '42501', null, 'player A cannot change parameters'
);
select is((select count(*)::int from bayes.chapter_params), 5, 'player A may read the parameters');
select throws_ok('select count(*) from bayes.rollout', '42501', null, 'player A cannot read the rollout');
select throws_ok(
    $$select bayes.player_mode('00000000-0000-4000-8000-00000000000a')$$, '42501', null,
    'player A cannot ask for his mode'
);
reset role;

-- player B: likewise, only B.
set local role authenticated;
select set_config('request.jwt.claims', '{"role": "authenticated", "sub": "00000000-0000-4000-8000-00000000000b"}', true);
select results_eq(
    'select user_id from public.user_bayesian_state',
    $$values ('00000000-0000-4000-8000-00000000000b'::uuid)$$,
    'player B sees only his own row'
);
select throws_ok(
    $$select public.bayes_get_state('00000000-0000-4000-8000-00000000000a')$$,
    '42501', 'a player may read only his own state', 'player B cannot read player A'
);
select is(
    (public.bayes_get_state('00000000-0000-4000-8000-00000000000b') ->> 'chapter')::int, 2,
    'player B reads his own state'
);
reset role;

-- service_role: the backend, everything through RLS.
set local role service_role;
select set_config('request.jwt.claims', '{"role": "service_role"}', true);
select is(
    (select count(*)::int from public.user_bayesian_state
     where user_id in ('00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-00000000000b')),
    2, 'service_role sees every row'
);
select is(
    (public.bayes_get_state('00000000-0000-4000-8000-00000000000a') ->> 'chapter')::int, 1,
    'service_role reads any player'
);
select throws_ok(
    $$select public.bayes_get_state('00000000-0000-4000-8000-0000000000ff')$$,
    'P0002', null, 'an unknown player is P0002'
);
select throws_ok(
    $$update public.user_bayesian_state set version = version + 1
      where user_id = '00000000-0000-4000-8000-00000000000a'$$,
    '42501', null,
    'service_role cannot write states directly (the RPCs write them, with their events)'
);
select throws_ok(
    $$update bayes.chapter_params set boss_threshold = 1$$, '42501', null, 'service_role cannot change parameters'
);
select throws_ok(
    $$delete from bayes.player_event$$, '42501', null, 'the event log is append-only for service_role'
);
select is(
    (select bayes_percent from bayes.rollout), 0::numeric, 'service_role reads the share of players in mode bayes'
);
select throws_ok(
    $$update bayes.rollout set bayes_percent = 100$$, '42501', null, 'service_role cannot move the cohorts'
);
reset role;

select * from finish();
rollback;
