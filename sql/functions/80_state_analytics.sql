-- What a state says, as SQL functions usable in any query (psql analytics,
-- the view bayes.player_summary, the read RPCs). Pure functions of the state
-- are immutable; those that need the chapter's threshold or the fallback
-- thresholds read the parameter tables and are stable. The closed forms are
-- SQL; readiness, fallback and intervals call the bayes_engine package.
-- Composite: bayes.state_composite(state) (foundation, replaced here; the
-- generated column user_bayesian_state.composite writes the same formula
-- out, so that it is inlined: migration 0005).
--
-- A corrupt state (one the codec refuses: bayes.state_problem is not null)
-- gives NULL, never an error and never a number: aggregates over a table
-- that holds one skip it, and bayes.state_problem counts and names it
-- (docs/analytics.md). An unknown metric or interval mass is still 22023.
-- The read RPCs turn that NULL back into the codec's error. Every function
-- of a state calls PL/Python (bayes.state_problem at least), which cannot
-- run in a parallel query: none is parallel safe.

create or replace function bayes.state_composite(p_state jsonb)
returns double precision
language plpgsql
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if bayes.state_problem(p_state) is not null then
        return null;
    end if;
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
end
$$;

comment on function bayes.state_composite is
'Composite score 0..100 of a compact state: 100 * sum of weight * Beta mean over intimacy .30, passion .25, trust .25, secureness .20 (the formula of the generated column composite); null for a corrupt state.';
revoke all on function bayes.state_composite from public;
grant execute on function bayes.state_composite to authenticated, service_role;

create or replace function bayes.metric_key(p_metric text)
returns text
language plpgsql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_index integer := array_position(array[@METRIC_NAMES@], p_metric);
begin
    if v_index is null then
        raise exception 'unknown metric %', quote_literal(p_metric)
            using errcode = '22023', hint = 'Metrics are intimacy, passion, trust, secureness.';
    end if;
    return (array[@METRIC_KEYS@])[v_index];
end
$$;

comment on function bayes.metric_key is
'The key of a metric in the compact state (intimacy i, passion p, trust t, secureness s); 22023 for another name.';
revoke all on function bayes.metric_key from public;
grant execute on function bayes.metric_key to authenticated, service_role;

create or replace function bayes.metric_mean(p_state jsonb, p_metric text)
returns double precision
language plpgsql
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_key text := bayes.metric_key(p_metric);
    v_pair jsonb;
begin
    if bayes.state_problem(p_state) is not null then
        return null;
    end if;
    v_pair := p_state -> 'm' -> v_key;
    return (v_pair ->> 0)::float8 / ((v_pair ->> 0)::float8 + (v_pair ->> 1)::float8);
end
$$;

comment on function bayes.metric_mean is
'Posterior mean alpha / (alpha + beta) of a metric (intimacy, passion, trust, secureness) of a compact state; null for a corrupt state.';
revoke all on function bayes.metric_mean from public;
grant execute on function bayes.metric_mean to authenticated, service_role;

create or replace function bayes.metric_variance(p_state jsonb, p_metric text)
returns double precision
language plpgsql
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_key text := bayes.metric_key(p_metric);
    v_alpha double precision;
    v_beta double precision;
begin
    if bayes.state_problem(p_state) is not null then
        return null;
    end if;
    v_alpha := (p_state -> 'm' -> v_key ->> 0)::float8;
    v_beta := (p_state -> 'm' -> v_key ->> 1)::float8;
    return v_alpha * v_beta / ((v_alpha + v_beta) ^ 2 * (v_alpha + v_beta + 1));
end
$$;

comment on function bayes.metric_variance is
'Posterior variance alpha*beta / ((alpha+beta)^2 (alpha+beta+1)) of a metric of a compact state; null for a corrupt state.';
revoke all on function bayes.metric_variance from public;
grant execute on function bayes.metric_variance to authenticated, service_role;

create or replace function bayes.metric_interval(p_state jsonb, p_metric text, p_mass double precision default 0.95)
returns double precision[]
language plpython3u
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.metric_interval(plpy, p_state, p_metric, p_mass)
$$;

comment on function bayes.metric_interval is
'Equal-tailed credible interval {low, high} holding p_mass (default 0.95) of a metric''s Beta posterior; null for a corrupt state.';
revoke all on function bayes.metric_interval from public;
grant execute on function bayes.metric_interval to authenticated, service_role;

create or replace function bayes.composite_sd(p_state jsonb)
returns double precision
language plpgsql
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    -- The pairs (alpha, beta) of intimacy, passion, trust and secureness, and
    -- their Beta variances (the formula of bayes.metric_variance; the state
    -- is checked once, not once per metric).
    v_a double precision[];
    v_b double precision[];
    v_var double precision[];
begin
    if bayes.state_problem(p_state) is not null then
        return null;
    end if;
    v_a := array[
        (p_state #>> '{m,i,0}')::float8, (p_state #>> '{m,p,0}')::float8,
        (p_state #>> '{m,t,0}')::float8, (p_state #>> '{m,s,0}')::float8
    ];
    v_b := array[
        (p_state #>> '{m,i,1}')::float8, (p_state #>> '{m,p,1}')::float8,
        (p_state #>> '{m,t,1}')::float8, (p_state #>> '{m,s,1}')::float8
    ];
    for i in 1..4 loop
        v_var[i] := v_a[i] * v_b[i] / ((v_a[i] + v_b[i]) ^ 2 * (v_a[i] + v_b[i] + 1));
    end loop;
    return 100 * sqrt(0.30 ^ 2 * v_var[1] + 0.25 ^ 2 * v_var[2] + 0.25 ^ 2 * v_var[3] + 0.20 ^ 2 * v_var[4]);
end
$$;

comment on function bayes.composite_sd is
'Standard deviation of the composite score (0..100) of a compact state: 100 * sqrt(sum of weight^2 * variance), the metrics being independent; null for a corrupt state.';
revoke all on function bayes.composite_sd from public;
grant execute on function bayes.composite_sd to authenticated, service_role;

create or replace function bayes.mood(p_state jsonb)
returns text
language plpgsql
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if bayes.state_problem(p_state) is not null then
        return null;
    end if;
    return (
        select (array[@MOODS@])[e.i]
        from jsonb_array_elements_text(p_state -> 'h') with ordinality as e (belief, i)
        order by e.belief::float8 desc, e.i
        limit 1
    );
end
$$;

comment on function bayes.mood is
'The most probable mood of a compact state (the first on a tie): content, playful, anxious, avoidant, defensive or withdrawn; null for a corrupt state.';
revoke all on function bayes.mood from public;
grant execute on function bayes.mood to authenticated, service_role;

create or replace function bayes.top_vice(p_state jsonb)
returns text
language plpgsql
immutable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if bayes.state_problem(p_state) is not null then
        return null;
    end if;
    return (
        select (array[@VICES@])[e.i]
        from jsonb_array_elements_text(p_state -> 'd') with ordinality as e (concentration, i)
        order by e.concentration::float8 desc, e.i
        limit 1
    );
end
$$;

comment on function bayes.top_vice is
'The vice with the largest Dirichlet concentration in a compact state (the first on a tie); null for a corrupt state.';
revoke all on function bayes.top_vice from public;
grant execute on function bayes.top_vice to authenticated, service_role;

create or replace function bayes.readiness_probability(p_state jsonb)
returns double precision
language plpython3u
stable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.readiness_probability(plpy, p_state)
$$;

comment on function bayes.readiness_probability is
'P(composite >= the chapter''s boss threshold) of a compact state, by the Edgeworth expansion (MODEL.md section 6); null for a corrupt state. Stable: reads bayes.chapter_params.';
revoke all on function bayes.readiness_probability from public;
grant execute on function bayes.readiness_probability to authenticated, service_role;

create or replace function bayes.fallback_reason(p_state jsonb)
returns text
language plpython3u
stable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.fallback_reason(plpy, p_state)
$$;

comment on function bayes.fallback_reason is
'The first fallback rule of MODEL.md section 7 that fires for a compact state without a message (rules 1 and 3: cold_start, uncertain), else bayesian_sufficient; null for a corrupt state. Stable: reads the parameter tables.';
revoke all on function bayes.fallback_reason from public;
grant execute on function bayes.fallback_reason to authenticated, service_role;

create or replace function bayes.state_readiness(p_state jsonb, p_method text, p_user_id text, p_seed text)
returns jsonb
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.readiness(plpy, p_state, p_method, p_user_id, p_seed)
$$;

comment on function bayes.state_readiness is
'Boss readiness of a compact state (MODEL.md section 6) by p_method edgeworth, normal or monte_carlo (10,000 draws seeded by p_user_id, n and p_seed); null for a corrupt state (bayes_boss_readiness raises its error instead).';
revoke all on function bayes.state_readiness from public;
grant execute on function bayes.state_readiness to authenticated, service_role;

create or replace function bayes.state_fallback_check(p_state jsonb)
returns jsonb
language plpython3u
stable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.fallback_check(plpy, p_state)
$$;

comment on function bayes.state_fallback_check is
'The fallback check of a compact state (MODEL.md section 7, rules 1 and 3, consuming nothing): needed, reason, budget_left, and the numbers the rules read; null for a corrupt state (bayes_fallback_check raises its error instead).';
revoke all on function bayes.state_fallback_check from public;
grant execute on function bayes.state_fallback_check to authenticated, service_role;
