-- The health signals for Prometheus (issue 16): GET /rest/v1/rpc/bayes_metrics
-- answers bayes.health in the Prometheus text exposition format 0.0.4, with
-- Content-Type: text/plain; version=0.0.4; charset=utf-8, through PostgREST's
-- "any" media type handler (the domain public."*/*", migration 0018).
--
-- What it writes (docs/operations.md, "Prometheus"):
--   * one gauge family per signal, named by bayes.health_threshold.metric_name,
--     HELP its description, the value times metric_scale (base units), with
--     the labels window (seconds; absent for a signal of the instant: lags,
--     sizes) and the signal's own label (label_name: reason, sample);
--   * bayes_health_status{signal, window, <label>}: 0 ok, 1 warn, 2 critical;
--   * bayes_health_threshold{signal, level="warn"|"critical"}: each threshold
--     that is set, in the unit of the signal's family.
-- A value that bayes.health leaves null (no data in the window) is written
-- NaN: the series stays (no staleness, no gap in its labels), a comparison
-- with it is false, so no alert rule fires on it, and its status says ok.
--
-- The values are those of the last snapshot (bayes.health_snapshot, which
-- the job bayes-record-health writes every minute), not bayes.health computed
-- again: a scrape costs the same on an idle engine and on one with a million
-- messages in its hour (where bayes.health takes seconds), however often
-- Prometheus scrapes and however many Prometheus servers do; and the metrics
-- say what the alerts say. bayes_health_snapshot_timestamp_seconds is when
-- that snapshot was taken (NaN before the first): alert on its age
-- (time() - it > 180) to learn that the job stopped.
--
-- Who may call: service_role (and the owner): the signals are about every
-- player, as bayes.health.

create or replace function bayes.prometheus_accepts(p_accept text)
returns boolean
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_range text;
    v_type text;
    v_q double precision;
    v_rank integer;
    v_best_rank integer := 0;
    v_best_q double precision := 0;
begin
    -- no Accept: anything goes (RFC 9110, 12.5.1)
    if p_accept is null or btrim(p_accept) = '' then
        return true;
    end if;
    -- the most specific media range that covers text/plain decides, with its
    -- quality: text/plain (any parameters: version=0.0.4, version=1.0.0) over
    -- text/* over */*; q=0 refuses
    foreach v_range in array string_to_array(p_accept, ',') loop
        v_type := lower(btrim(split_part(v_range, ';', 1)));
        v_rank := case v_type when 'text/plain' then 3 when 'text/*' then 2 when '*/*' then 1 else 0 end;
        continue when v_rank = 0;
        v_q := coalesce(
            (
                select (m.q[1])::double precision
                from regexp_matches(v_range, ';\s*q\s*=\s*([01](?:\.[0-9]{0,3})?)\s*(?:;|$)', 'i') as m (q)
            ),
            1
        );
        if v_rank > v_best_rank then
            v_best_rank := v_rank;
            v_best_q := v_q;
        elsif v_rank = v_best_rank then
            v_best_q := greatest(v_best_q, v_q);
        end if;
    end loop;
    return v_best_q > 0;
end
$$;

comment on function bayes.prometheus_accepts is
'Whether an HTTP Accept header admits text/plain, the media type of public.bayes_metrics: true when it is absent or empty, or when its most specific range covering text/plain (text/plain with any parameters, then text/*, then */*) has a quality above 0. Prometheus''s scrape header (openmetrics-text first, text/plain;version=0.0.4 and */* after it) does.';
revoke all on function bayes.prometheus_accepts from public;
grant execute on function bayes.prometheus_accepts to service_role;

create or replace function public.bayes_metrics()
returns public."*/*" -- noqa: RF05
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
set extra_float_digits = 1
as $$
declare
    v_accept text := nullif(current_setting('request.headers', true), '')::json ->> 'accept';
    v_body text;
begin
    if not bayes.prometheus_accepts(v_accept) then
        raise sqlstate 'PT415' using
            message = 'bayes_metrics answers text/plain only',
            detail = format('The Prometheus text exposition format 0.0.4; the request accepts: %s', v_accept),
            hint = 'Send Accept: text/plain (or */*, or none).';
    end if;
    -- transaction-local, read by PostgREST for this response only
    perform set_config(
        'response.headers', '[{"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}]', true
    );

    with
    snapshot as materialized (
        select max(h.taken_at) as taken_at from bayes.health_snapshot as h
    ),

    signal as materialized (
        select
            h.signal,
            h.window_s,
            h.label,
            h.value,
            h.status,
            t.metric_name,
            t.metric_scale,
            t.description,
            -- the labels of the signal's series: window, then its own label
            concat_ws(
                ',',
                'window="' || h.window_s || '"',
                coalesce(t.label_name, 'label') || '="'
                || replace(replace(replace(h.label, '\', '\\'), '"', '\"'), e'\n', '\n') || '"'
            ) as labels
        from bayes.health_snapshot as h
        inner join bayes.health_threshold as t on t.signal = h.signal
        where h.taken_at = (select n.taken_at from snapshot as n)
    ),

    sample (family_order, family, help, sample_order, labels, value) as (
        select
            1,
            s.metric_name,
            s.description,
            row_number() over (
                order by s.signal, s.window_s nulls first, s.label nulls first
            ),
            s.labels,
            s.value * s.metric_scale
        from signal as s
        union all
        select
            2,
            'bayes_health_status',
            'The status of each signal of bayes.health against its thresholds (bayes_health_threshold):'
            || ' 0 ok, 1 warn, 2 critical. A signal with too few samples (min_samples) or no value is ok.',
            row_number() over (order by s.signal, s.window_s nulls first, s.label nulls first),
            concat_ws(',', 'signal="' || s.signal || '"', nullif(s.labels, '')),
            case s.status when 'ok' then 0 when 'warn' then 1 when 'critical' then 2 end
        from signal as s
        union all
        select
            3,
            'bayes_health_threshold',
            'The thresholds of each signal (bayes.health_threshold), in the unit of its metric family:'
            || ' level warn or critical; a signal fires above them (below them for shadow_agreement).'
            || ' A threshold that is not set is not written.',
            row_number() over (order by t.signal, l.level),
            'signal="' || t.signal || '",level="' || l.level || '"',
            l.threshold * t.metric_scale
        from bayes.health_threshold as t
        cross join lateral (values ('critical', t.critical), ('warn', t.warn)) as l (level, threshold)
        where l.threshold is not null
        union all
        select
            4,
            'bayes_health_snapshot_timestamp_seconds',
            'When the snapshot of bayes.health behind these metrics was taken (bayes.record_health, the job'
            || ' bayes-record-health, every minute), Unix time; NaN before the first.',
            1,
            '',
            extract(epoch from n.taken_at)::float8
        from snapshot as n
    ),

    family as (
        select
            min(s.family_order) as family_order,
            s.family,
            '# HELP ' || s.family || ' '
            || replace(replace(min(s.help), '\', '\\'), e'\n', '\n') || e'\n'
            || '# TYPE ' || s.family || e' gauge\n'
            || string_agg(
                s.family
                || coalesce('{' || nullif(s.labels, '') || '}', '')
                || ' '
                || case
                    when s.value is null or s.value = 'NaN' then 'NaN'
                    when s.value = 'Infinity' then '+Inf'
                    when s.value = '-Infinity' then '-Inf'
                    else s.value::text
                end
                || e'\n',
                '' order by s.sample_order
            ) as text
        from sample as s
        group by s.family
    )

    select string_agg(f.text, '' order by f.family_order, f.family) into v_body
    from family as f;

    return coalesce(v_body, '');
end
$$;

comment on function public.bayes_metrics is
'The signals of the last snapshot of bayes.health (bayes.health_snapshot, every minute) in the Prometheus text exposition format 0.0.4, for GET /rest/v1/rpc/bayes_metrics (service_role): a gauge family per signal (bayes.health_threshold.metric_name, HELP its description, value times metric_scale, labels window and the signal''s label; a null value is NaN), bayes_health_status{signal,window,...} (0 ok, 1 warn, 2 critical), bayes_health_threshold{signal,level} and bayes_health_snapshot_timestamp_seconds. Returns the domain "*/*" (PostgREST''s any media type handler) and sets Content-Type: text/plain; version=0.0.4 in response.headers; an Accept that admits no text/plain is refused with 415 (PT415). Stable: it writes nothing but that transaction-local setting.';
revoke all on function public.bayes_metrics from public, anon, authenticated, service_role;
grant execute on function public.bayes_metrics to service_role;
