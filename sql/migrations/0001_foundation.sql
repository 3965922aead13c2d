-- Foundation: extensions, the bayes schema, the player state table, the event
-- log, the parameter tables (MODEL.md sections 2 and 9), RLS and grants.
--
-- Runs as a superuser (plpython3u is untrusted): `postgres` on a local or
-- self-hosted cluster. Supabase's default privileges grant everything created
-- in public to anon, authenticated and service_role, so every object below
-- revokes first and then grants exactly.

create extension if not exists plpython3u;
create extension if not exists pg_cron with schema pg_catalog;

-- Internals live in schema bayes; PostgREST exposes only public.
create schema if not exists bayes;
comment on schema bayes is
'Internals of the Bayesian player-state engine: parameters, event log, math. Not exposed through the API.';
revoke all on schema bayes from public;
grant usage on schema bayes to authenticated, service_role;

-- Nothing in bayes is executable by default; each function is granted exactly.
-- (Functions in public are revoked one by one where they are defined: the
-- project's own default privileges for public are left as they are.)
alter default privileges in schema bayes revoke execute on functions from public;

-------------------------------------------------------------------------------
-- Composite of a state: a pure function of the stored JSON, used by the
-- generated column. The weights are MODEL.md section 1's fixed vocabulary.
-------------------------------------------------------------------------------
create function bayes.state_composite(p_state jsonb)
returns double precision
language sql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
return 100 * (
    0.30 * (p_state #>> '{m,i,0}')::float8
    / ((p_state #>> '{m,i,0}')::float8 + (p_state #>> '{m,i,1}')::float8)
    + 0.25 * (p_state #>> '{m,p,0}')::float8
    / ((p_state #>> '{m,p,0}')::float8 + (p_state #>> '{m,p,1}')::float8)
    + 0.25 * (p_state #>> '{m,t,0}')::float8
    / ((p_state #>> '{m,t,0}')::float8 + (p_state #>> '{m,t,1}')::float8)
    + 0.20 * (p_state #>> '{m,s,0}')::float8
    / ((p_state #>> '{m,s,0}')::float8 + (p_state #>> '{m,s,1}')::float8)
);

comment on function bayes.state_composite(jsonb) is
'Composite score 0..100 of a compact state: 100 * sum of weight * Beta mean over intimacy .30, passion .25, trust .25, secureness .20.';
revoke all on function bayes.state_composite(jsonb) from public;
grant execute on function bayes.state_composite(jsonb) to authenticated, service_role;

-------------------------------------------------------------------------------
-- One row per player.
-------------------------------------------------------------------------------
create table public.user_bayesian_state (
    user_id uuid primary key references auth.users (id) on delete cascade,
    state jsonb not null,
    version bigint not null default 1,
    last_message_at timestamptz,
    decayed_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    chapter smallint generated always as ((state ->> 'c')::smallint) stored,
    composite double precision generated always as (bayes.state_composite(state)) stored,
    constraint user_bayesian_state_version_positive check (version >= 1),
    constraint user_bayesian_state_state_is_object check (jsonb_typeof(state) = 'object'),
    constraint user_bayesian_state_chapter_range check (chapter between 1 and 5)
);

comment on table public.user_bayesian_state is
'Bayesian state of each player (MODEL.md section 2). Written only by the bayes_* RPCs; a player reads his own row.';
comment on column public.user_bayesian_state.state is
'Compact state JSON, schema v1: v c n nc m mp d h k g b dd [A B] (MODEL.md section 2).';
comment on column public.user_bayesian_state.version is
'Row version, +1 on every write.';
comment on column public.user_bayesian_state.last_message_at is
'Send time of the last processed player message.';
comment on column public.user_bayesian_state.decayed_at is
'Absence decay has been applied up to this instant.';
comment on column public.user_bayesian_state.chapter is
'Current chapter 1..5, generated from state.';
comment on column public.user_bayesian_state.composite is
'Composite score 0..100, generated from state.';

-- Decay scans players whose last message is old enough.
create index user_bayesian_state_last_message_at_idx
on public.user_bayesian_state (last_message_at)
where last_message_at is not null;
-- Analytics: distribution of composite by chapter, players near their boss.
create index user_bayesian_state_chapter_composite_idx
on public.user_bayesian_state (chapter, composite);

alter table public.user_bayesian_state enable row level security;

create policy player_reads_own_state
on public.user_bayesian_state
for select
to authenticated
using (user_id = (select auth.uid()));

revoke all on table public.user_bayesian_state from public, anon, authenticated, service_role;
grant select on table public.user_bayesian_state to authenticated;
-- The RPCs run as their caller (security invoker); service_role is the game's
-- backend and writes through them.
grant select, insert, update, delete on table public.user_bayesian_state to service_role;

-------------------------------------------------------------------------------
-- Event log: one row per processed input, the source of replay and of
-- idempotent answers.
-------------------------------------------------------------------------------
create table bayes.player_event (
    event_id bigint generated always as identity primary key,
    user_id uuid not null references auth.users (id) on delete cascade,
    kind text not null,
    message_id text,
    occurred_at timestamptz not null,
    input jsonb not null,
    result jsonb not null,
    state_version bigint not null,
    created_at timestamptz not null default now(),
    constraint player_event_kind_known
    check (kind in ('message', 'llm_scores', 'outcome', 'chapter'))
);

comment on table bayes.player_event is
'Append-only log of every input applied to a player state, with the result returned; replaying it rebuilds the state.';
comment on column bayes.player_event.message_id is
'Caller''s id of the message; a (user_id, kind, message_id) is applied at most once.';

-- The idempotency rule: the same message id of a player is applied once per kind
-- (a message and the LLM scores of that same message are two different inputs).
create unique index player_event_user_kind_message_uq
on bayes.player_event (user_id, kind, message_id)
where message_id is not null;
create index player_event_user_event_idx
on bayes.player_event (user_id, event_id);

alter table bayes.player_event enable row level security;
revoke all on table bayes.player_event from public, anon, authenticated, service_role;
grant select, insert on table bayes.player_event to service_role;

-------------------------------------------------------------------------------
-- Parameters (MODEL.md section 9): one UPDATE changes the next call.
-------------------------------------------------------------------------------
create table bayes.chapter_params (
    chapter smallint primary key,
    boss_threshold double precision not null,
    prior_intimacy_alpha double precision not null,
    prior_intimacy_beta double precision not null,
    prior_passion_alpha double precision not null,
    prior_passion_beta double precision not null,
    prior_trust_alpha double precision not null,
    prior_trust_beta double precision not null,
    prior_secureness_alpha double precision not null,
    prior_secureness_beta double precision not null,
    skip_prior_skip double precision not null,
    skip_prior_respond double precision not null,
    skip_cap double precision not null,
    reply_baseline_s double precision not null,
    delay_coef double precision not null,
    delay_cap_s double precision not null,
    fast_reply_s double precision not null,
    slow_reply_s double precision not null,
    decay_grace_h double precision not null,
    decay_rate_per_h double precision not null,
    vice_decay_grace_h double precision not null,
    mood_volatility double precision not null,
    constraint chapter_params_chapter_range check (chapter between 1 and 5),
    constraint chapter_params_threshold_range check (boss_threshold between 0 and 100),
    constraint chapter_params_priors_positive check (
        prior_intimacy_alpha > 0 and prior_intimacy_beta > 0
        and prior_passion_alpha > 0 and prior_passion_beta > 0
        and prior_trust_alpha > 0 and prior_trust_beta > 0
        and prior_secureness_alpha > 0 and prior_secureness_beta > 0
        and skip_prior_skip > 0 and skip_prior_respond > 0
    ),
    constraint chapter_params_skip_cap_range check (skip_cap between 0 and 1),
    constraint chapter_params_timing_positive check (
        reply_baseline_s > 0 and delay_coef > 0 and delay_cap_s >= 1
        and fast_reply_s > 0 and slow_reply_s > 0
    ),
    constraint chapter_params_decay_nonnegative check (
        decay_grace_h >= 0 and decay_rate_per_h >= 0 and vice_decay_grace_h >= 0
    ),
    constraint chapter_params_volatility_positive check (mood_volatility > 0)
);

comment on table bayes.chapter_params is
'Per-chapter model parameters (MODEL.md sections 1-5). Priors are stored as Beta (alpha0, beta0).';

insert into bayes.chapter_params values
(1, 55, 1.5, 6, 3, 3, 2, 5, 2, 3, 3, 7, 0.50, 300, 0.15, 10, 600, 28800, 8, 0.008, 24, 1.3),
(2, 60, 4.8, 7.2, 5.5, 4.5, 4.95, 6.05, 5, 5, 2, 8, 0.35, 240, 0.30, 60, 300, 14400, 16, 0.006, 48, 1.15),
(3, 65, 9.9, 8.1, 9.6, 6.4, 9.86, 7.14, 9, 6, 1.5, 8.5, 0.25, 180, 0.50, 300, 300, 7200, 24, 0.004, 72, 1.0),
(4, 70, 17, 8, 14.3, 7.7, 16.08, 7.92, 14, 6, 1, 9, 0.15, 120, 0.75, 900, 300, 3600, 48, 0.003, 96, 0.9),
(5, 75, 27.3, 7.7, 21.6, 8.4, 24.75, 8.25, 22.4, 5.6, 0.5, 9.5, 0.08, 90, 1.0, 1800, 300, 1800, 72, 0.002, 168, 0.85);

create table bayes.params (
    name text primary key,
    value jsonb not null,
    description text not null
);

comment on table bayes.params is
'Global model constants (MODEL.md sections 2-7), one row each; value is a JSON number or array.';

insert into bayes.params (name, value, description) values
('discount', '0.98', 'Discount gamma of the Beta posteriors towards the chapter prior, per message'),
('cold_start_messages', '10', 'Messages with halved evidence, and the cold_start fallback below this count'),
('evidence_budget_per_hour', '5.0', 'Leaky-bucket evidence budget per metric per rolling hour'),
('variance_threshold_intimacy', '0.025', 'high_variance fallback when the intimacy variance exceeds this'),
('variance_threshold_passion', '0.025', 'high_variance fallback when the passion variance exceeds this'),
('variance_threshold_trust', '0.020', 'high_variance fallback when the trust variance exceeds this'),
('variance_threshold_secureness', '0.025', 'high_variance fallback when the secureness variance exceeds this'),
('critical_zone', '5', 'critical_zone fallback when |composite - boss threshold| is below this'),
('ready_probability', '0.7', 'Boss-ready when P(composite >= threshold) is at least this'),
('vice_prior', '1.0', 'Concentration of each vice in the Dirichlet prior'),
('vice_decay_rate_per_h', '0.002', 'Decay rate of the vice concentrations towards the prior, per hour'),
('timing_obs_precision', '1.0', 'Precision tau_x of one observed log reply gap'),
('timing_max_gap_s', '21600', 'Reply gaps longer than this (s) do not update the timing posterior'),
('max_consecutive_skips', '2', 'Never more skips in a row than this'),
(
    'mood_start_belief',
    '[0.40, 0.25, 0.10, 0.10, 0.05, 0.10]',
    'Mood belief of a new player (content playful anxious avoidant defensive withdrawn)'
),
(
    'mood_transition',
    '[[0.55, 0.20, 0.08, 0.07, 0.03, 0.07],
      [0.25, 0.50, 0.05, 0.05, 0.05, 0.10],
      [0.10, 0.05, 0.50, 0.10, 0.15, 0.10],
      [0.08, 0.02, 0.10, 0.55, 0.10, 0.15],
      [0.05, 0.02, 0.15, 0.10, 0.55, 0.13],
      [0.05, 0.02, 0.10, 0.15, 0.08, 0.60]]',
    'Default HMM transition matrix A (rows = from mood)'
),
(
    'mood_emission',
    '[[0.12, 0.08, 0.12, 0.10, 0.02, 0.08, 0.08, 0.10, 0.05, 0.10, 0.08, 0.03, 0.02, 0.02],
      [0.08, 0.05, 0.08, 0.08, 0.01, 0.05, 0.18, 0.12, 0.02, 0.08, 0.05, 0.10, 0.08, 0.02],
      [0.10, 0.05, 0.18, 0.05, 0.05, 0.15, 0.02, 0.15, 0.02, 0.05, 0.08, 0.05, 0.02, 0.03],
      [0.02, 0.18, 0.03, 0.02, 0.05, 0.03, 0.03, 0.03, 0.18, 0.08, 0.05, 0.15, 0.02, 0.13],
      [0.15, 0.05, 0.05, 0.01, 0.18, 0.15, 0.02, 0.12, 0.03, 0.05, 0.05, 0.08, 0.01, 0.05],
      [0.02, 0.22, 0.03, 0.01, 0.08, 0.05, 0.01, 0.02, 0.22, 0.05, 0.03, 0.12, 0.01, 0.13]]',
    'Default HMM emission matrix B (rows = moods, columns = the 14 observation symbols)'
);

-- Parameters are not secret: the invoker-rights functions of any caller read them.
alter table bayes.chapter_params enable row level security;
alter table bayes.params enable row level security;
create policy chapter_params_readable on bayes.chapter_params
for select to authenticated, service_role using (true);
create policy params_readable on bayes.params
for select to authenticated, service_role using (true);
revoke all on table bayes.chapter_params, bayes.params from public, anon, authenticated, service_role;
grant select on table bayes.chapter_params, bayes.params to authenticated, service_role;
