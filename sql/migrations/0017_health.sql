-- Health, alerts and metrics from inside the database (issue 16).
--
-- bayes.health computes each signal over the last minutes and hours from the
-- event log's measurements (migration 0016) and the state table; the pg_cron
-- job bayes-record-health (every minute) keeps a snapshot of them in
-- bayes.health_snapshot, records every change of status in
-- bayes.health_change and announces it with NOTIFY on the channel
-- bayes_health; bayes.alerts lists what is firing. The thresholds are rows of
-- bayes.health_threshold, the windows and the snapshots' retention rows of
-- bayes.params. docs/operations.md explains each signal.
--
-- The parameter rows are added before the code that reads them (the
-- functions migration follows): bayes.check_params of the older code warns
-- that it does not read them, which is expected here.

create type bayes.health_status as enum ('ok', 'warn', 'critical');
comment on type bayes.health_status is
'A health signal''s status against its thresholds (bayes.health_threshold): ok, warn or critical.';

-------------------------------------------------------------------------------
-- The signals and their thresholds: one row per signal, which a designer or
-- an operator tunes with one UPDATE.
-------------------------------------------------------------------------------
create table bayes.health_threshold (
    signal text primary key,
    warn double precision,
    critical double precision,
    direction text not null default 'above',
    min_samples bigint not null default 0,
    unit text not null,
    label_name text,
    description text not null,
    constraint health_threshold_direction_known check (direction in ('above', 'below')),
    constraint health_threshold_finite check (
        (warn is null or warn between -1e300 and 1e300) and (critical is null or critical between -1e300 and 1e300)
    ),
    constraint health_threshold_ordered check (
        warn is null or critical is null
        or (direction = 'above' and warn <= critical)
        or (direction = 'below' and warn >= critical)
    ),
    constraint health_threshold_min_samples_nonnegative check (min_samples >= 0),
    constraint health_threshold_signal_name check (signal ~ '^[a-z][a-z0-9_]*$'),
    constraint health_threshold_label_name check (label_name ~ '^[a-z][a-z0-9_]*$')
);

comment on table bayes.health_threshold is
'The health signals (bayes.health) and their thresholds, one row each: a signal is warn when its value is beyond warn, critical when beyond critical (above or below them, as direction says), ok otherwise, and always ok while it rests on fewer than min_samples samples or has no value. A null threshold never fires.';
comment on column bayes.health_threshold.warn is
'The value beyond which the signal is warn (null: never).';
comment on column bayes.health_threshold.critical is
'The value beyond which the signal is critical (null: never).';
comment on column bayes.health_threshold.direction is
'above: a value greater than a threshold fires it; below: a value smaller than it.';
comment on column bayes.health_threshold.min_samples is
'The signal is ok while its value rests on fewer samples than this (messages, players or pairs, as the signal says): a share of three messages pages no one.';
comment on column bayes.health_threshold.unit is
'What the value counts (share, messages/s, ms, s, bytes, variance).';
comment on column bayes.health_threshold.label_name is
'The name of the signal''s label (bayes.health.label), e.g. reason: one value per label; null: the signal has none.';

insert into bayes.health_threshold (signal, warn, critical, direction, min_samples, unit, label_name, description) values
(
    'messages_per_second', null, null, 'above', 0, 'messages/s', null,
    'Messages scored per second over the window (bayes_process_message calls that wrote an event).'
),
(
    'fallback_rate', 0.15, 0.30, 'above', 20, 'share', null,
    'Share of the window''s messages for which the engine asked for the LLM (fallback.needed true).'
),
(
    'llm_granted', null, null, 'above', 0, 'share', 'reason',
    'Share of the window''s messages for which the LLM was asked, by the rule that fired (fallback.reason).'
),
(
    'llm_refused', null, null, 'above', 0, 'share', 'reason',
    'Share of the window''s messages whose rule fired but was refused by the player''s LLM budget, by rule.'
),
(
    'llm_budget_exhaustion', null, null, 'above', 20, 'share', null,
    'Share of the window''s budgeted LLM requests (rules other than cold_start) that the budget refused (no threshold:'
    || ' the budget refusing most of them is how it holds the LLM rate, 95% on the shadow bench''s population).'
),
(
    'no_signal_share', 0.20, 0.40, 'above', 20, 'share', null,
    'Share of the window''s messages in which the encoder found no metric feature (observations 0, no_signals).'
),
(
    'posterior_variance', 0.03, 0.05, 'above', 10, 'variance', null,
    'Average posterior variance of the four metrics (Beta), over the players past their cold start who sent a message'
    || ' in the window, as stored now.'
),
(
    'latency_p50_ms', null, null, 'above', 20, 'ms', null,
    'Median time of a message inside the database (bayes_process_message, from its start to its write).'
),
(
    'latency_p99_ms', 1, 5, 'above', 20, 'ms', null,
    '99th percentile of the time of a message inside the database (bayes_process_message, from its start to its write).'
),
(
    'decay_lag_s', 1800, 7200, 'above', 0, 's', null,
    'How long the most overdue player has waited for the bulk decay (now - the oldest decay_due_at that has passed, or'
    || ' the row''s last write when that came later; 0 when none).'
),
(
    'retention_lag_s', 10800, 86400, 'above', 0, 's', null,
    'How far the event log''s retention is behind its horizon (now - event_retention_days - the horizon of the last'
    || ' finished retention run; 0 when nothing is older).'
),
(
    'event_log_bytes', null, null, 'above', 0, 'bytes', null,
    'Size on disk of the event log: bayes.player_event and bayes.event_result with their indexes and TOAST.'
),
(
    'state_table_bytes', null, null, 'above', 0, 'bytes', null,
    'Size on disk of public.user_bayesian_state with its indexes and TOAST.'
),
(
    'shadow_agreement', 0.35, 0.25, 'below', 50, 'share', 'sample',
    'Sign agreement of the engine''s metric evidence with the LLM''s deltas over the last day''s shadow and audit'
    || ' messages that have the LLM''s answer (bayes.shadow_report''s sign_agreement, pooled over the four metrics).'
);

alter table bayes.health_threshold enable row level security;
create policy health_threshold_readable on bayes.health_threshold
for select to service_role using (true);
revoke all on table bayes.health_threshold from public, anon, authenticated, service_role;
grant select on table bayes.health_threshold to service_role;

insert into bayes.params (name, value, description) values
('health_window_short_s', '300', 'The short window of bayes.health, seconds (5 minutes); in [10, 604800]'),
('health_window_long_s', '3600', 'The long window of bayes.health, seconds (1 hour); in [10, 604800]'),
(
    'health_agreement_window_h',
    '24',
    'Hours of shadow and audit messages behind bayes.health''s shadow_agreement; in [0, 87600]'
),
(
    'health_agreement_pairs',
    '2000',
    'bayes.health''s shadow_agreement reads at most this many of the most recent pairs; in [1, 1000000000]'
),
(
    'health_snapshot_retention_days',
    '7',
    'Days the snapshots of bayes.health (bayes.health_snapshot) and its changes of status are kept; in [1, 36500]'
);

-------------------------------------------------------------------------------
-- The LLM's answers, found without reading the messages: a partial index
-- holds only the llm_scores events (a few per hundred messages once the
-- engine decides; one per message of a shadow player, whose every message
-- the LLM answers), so the shadow_agreement of the last day reads the answers
-- from the newest back and looks up each one's message by its key.
-------------------------------------------------------------------------------
create index player_event_llm_scores_idx
on bayes.player_event (event_id)
where kind = 'llm_scores';

-------------------------------------------------------------------------------
-- Snapshots, one row per signal (and label) a minute, and the changes of
-- status that the job announced.
-------------------------------------------------------------------------------
create table bayes.health_snapshot (
    taken_at timestamptz not null,
    signal text not null,
    window_s integer,
    label text,
    value double precision,
    samples bigint,
    status bayes.health_status not null,
    constraint health_snapshot_key unique nulls not distinct (taken_at, signal, window_s, label)
);

comment on table bayes.health_snapshot is
'The signals of bayes.health as bayes.record_health found them (the pg_cron job bayes-record-health, every minute), kept health_snapshot_retention_days.';
comment on column bayes.health_snapshot.window_s is
'The window the signal was computed over, seconds; null for a signal of the instant (a lag, a size).';
comment on column bayes.health_snapshot.label is
'The signal''s label (bayes.health_threshold.label_name says which: a fallback reason, a sample), null when it has none.';
comment on column bayes.health_snapshot.samples is
'How many messages, players or pairs the value rests on (null: not a count, e.g. a lag).';

create table bayes.health_change (
    changed_at timestamptz not null,
    signal text not null,
    window_s integer,
    label text,
    status_from bayes.health_status not null,
    status_to bayes.health_status not null,
    value double precision,
    samples bigint
);

comment on table bayes.health_change is
'Every change of a signal''s status between two snapshots (bayes.record_health), as announced on the channel bayes_health; kept health_snapshot_retention_days. bayes.alerts reads since when a signal fires here.';

create index health_change_signal_idx on bayes.health_change (signal, window_s, label, changed_at);
create index health_change_changed_at_idx on bayes.health_change (changed_at);

alter table bayes.health_snapshot enable row level security;
alter table bayes.health_change enable row level security;
create policy health_snapshot_readable on bayes.health_snapshot
for select to service_role using (true);
create policy health_change_readable on bayes.health_change
for select to service_role using (true);
revoke all on table bayes.health_snapshot, bayes.health_change from public, anon, authenticated, service_role;
grant select on table bayes.health_snapshot, bayes.health_change to service_role;

-------------------------------------------------------------------------------
-- The pg_cron job, every minute. Set `bayes.health_schedule` on the database
-- before this migration runs, or call bayes.schedule_health('<schedule>')
-- later; cron.schedule updates the job of the same name. Its command,
-- `select bayes.record_health()`, names a function that the functions
-- migration following this one installs; until then the job only fails.
-------------------------------------------------------------------------------
select cron.schedule(
    'bayes-record-health',
    coalesce(nullif(current_setting('bayes.health_schedule', true), ''), '* * * * *'),
    'select bayes.record_health()'
);
