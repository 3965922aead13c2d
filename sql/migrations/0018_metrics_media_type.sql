-- The health signals as Prometheus metrics (issue 16): public.bayes_metrics
-- (sql/functions/93_metrics.sql) answers GET /rest/v1/rpc/bayes_metrics in
-- the Prometheus text exposition format 0.0.4, through PostgREST's media type
-- handlers.
--
-- PostgREST 12 picks a function's media type by the name of the domain it
-- returns. A domain named "text/plain" serves Accept: text/plain, but a
-- request without Accept, or with */* (curl, a browser), still gets JSON (a
-- quoted string): measured on 12.0.2. The domain named "*/*" (the "any"
-- handler) serves every Accept, and the function itself says which it takes
-- (text/plain, text/*, */*; a 415 otherwise) and sets the Content-Type,
-- version parameter included. Only bayes_metrics returns it: the other RPCs
-- keep PostgREST's JSON.
create domain public."*/*" as text; -- noqa: RF05

comment on domain public."*/*" is -- noqa: RF05
'PostgREST''s "any" media type handler (docs.postgrest.org v12, Media Type Handlers): an RPC returning this domain answers every Accept with its text as the body, under the Content-Type the function sets in response.headers. Returned by public.bayes_metrics only.';

-- The metric family of each signal, written once, next to its thresholds:
-- a Prometheus name (prefix bayes_, base units: seconds, bytes; _ratio for a
-- share) and the factor from the signal's unit to the metric's (latency: ms
-- to seconds). A new signal must name its family (not null).
alter table bayes.health_threshold
add column metric_name text,
add column metric_scale double precision not null default 1;

update bayes.health_threshold as t
set metric_name = m.metric_name, metric_scale = m.metric_scale
from (
    values
    ('messages_per_second', 'bayes_messages_per_second', 1),
    ('fallback_rate', 'bayes_fallback_ratio', 1),
    ('llm_granted', 'bayes_llm_granted_ratio', 1),
    ('llm_refused', 'bayes_llm_refused_ratio', 1),
    ('llm_budget_exhaustion', 'bayes_llm_budget_exhaustion_ratio', 1),
    ('no_signal_share', 'bayes_no_signal_ratio', 1),
    ('posterior_variance', 'bayes_posterior_variance', 1),
    ('latency_p50_ms', 'bayes_message_db_time_p50_seconds', 0.001),
    ('latency_p99_ms', 'bayes_message_db_time_p99_seconds', 0.001),
    ('decay_lag_s', 'bayes_decay_lag_seconds', 1),
    ('retention_lag_s', 'bayes_retention_lag_seconds', 1),
    ('event_log_bytes', 'bayes_event_log_bytes', 1),
    ('state_table_bytes', 'bayes_state_table_bytes', 1),
    ('shadow_agreement', 'bayes_shadow_agreement_ratio', 1)
) as m (signal, metric_name, metric_scale)
where t.signal = m.signal;

alter table bayes.health_threshold
alter column metric_name set not null,
add constraint health_threshold_metric_name unique (metric_name),
add constraint health_threshold_metric_name_format check (
    metric_name ~ '^bayes_[a-z0-9_]*[a-z0-9]$'
    and metric_name not in ('bayes_health_status', 'bayes_health_threshold', 'bayes_health_snapshot_timestamp_seconds')
),
add constraint health_threshold_metric_scale_positive check (metric_scale > 0 and metric_scale <= 1e300),
add constraint health_threshold_label_name_free check (label_name not in ('signal', 'window', 'level'));

comment on column bayes.health_threshold.metric_name is
'The signal''s Prometheus metric family in public.bayes_metrics (prefix bayes_, base units, _ratio for a share); unique, and none of bayes_health_status, bayes_health_threshold (the families of every signal) and bayes_health_snapshot_timestamp_seconds.';
comment on column bayes.health_threshold.metric_scale is
'The factor from the signal''s unit to its metric''s base unit (0.001 for ms to seconds, 1 otherwise): public.bayes_metrics writes value * metric_scale, and the thresholds likewise.';
