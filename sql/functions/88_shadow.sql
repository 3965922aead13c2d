-- Switching a live game over safely (issue 14): what the shadow cohort's
-- LLM said next to what the engine saw, the counterfactual replay of the
-- fallback policy over the shadow players' logs, and the calibration of the
-- feature evidence on the LLM's own scores. The math is
-- bayes_engine.shadow; docs/migration-playbook.md says when to run what.
--
-- Who may call: the database owner and service_role (the backend's key, or
-- an analyst's role granted it). They read every player's event log, so no
-- player and no anonymous caller may.

create or replace function bayes.shadow_pairs(
    p_from timestamptz default null,
    p_to timestamptz default null
)
returns table (
    user_id uuid,
    message_id text,
    sent_at timestamptz,
    sample text,
    n integer,
    features text[],
    engine_evidence double precision[],
    llm_evidence double precision[],
    engine_vices double precision[],
    llm_vices jsonb,
    engine_mood text,
    llm_mood text
)
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select
        m.user_id,
        m.message_id,
        m.occurred_at,
        case when m.player_mode = 'shadow' then 'shadow' else 'audit' end,
        m.n,
        array(select jsonb_array_elements_text(mi.input -> 'observation' -> 'features')),
        array(
            select (mi.input -> 'observation' -> 'plus' ->> (k.i - 1)::integer)::float8
                - (mi.input -> 'observation' -> 'minus' ->> (k.i - 1)::integer)::float8
            from unnest(array[@METRIC_NAMES@]) with ordinality as k (name, i)
            order by k.i
        ),
        array(
            select coalesce((li.input -> 'deltas' ->> k.name)::float8, 0) / 10
            from unnest(array[@METRIC_NAMES@]) with ordinality as k (name, i)
            order by k.i
        ),
        array(select v::float8 from jsonb_array_elements_text(mi.input -> 'observation' -> 'vices') as v),
        li.input -> 'vices',
        m.mood::text,
        li.input ->> 'mood'
    from bayes.player_event as m
    -- the LLM's answer to the same message id, by its key (the unique index)
    inner join bayes.player_event as l
        on
            l.message_key = bayes.message_key(m.user_id, 'llm_scores', m.message_id)
            and l.user_id = m.user_id
    -- the packed inputs as JSON (issue 15), once per pair
    cross join lateral (select bayes.event_input(m.kind, m.input) as input) as mi
    cross join lateral (select bayes.event_input(l.kind, l.input) as input) as li
    where m.kind = 'message'
        and m.occurred_at >= coalesce(p_from, '-infinity')
        and m.occurred_at < coalesce(p_to, 'infinity')
        and (
            m.player_mode = 'shadow'
            or (m.player_mode = 'bayes' and m.fallback_reason = 'audit' and m.fallback_needed)
        )
$$;

comment on function bayes.shadow_pairs is
'One row per message sent in [p_from, p_to) that has the LLM''s answer (bayes_apply_llm_scores with its message id): sample shadow (a shadow player''s message) or audit (a bayes player''s message granted by the audit rule, an unbiased sample). Arrays in metric order intimacy, passion, trust, secureness: engine_evidence = the encoder''s net evidence (plus - minus), llm_evidence = the LLM''s delta / 10; engine_vices = the 8 Dirichlet increments; moods: the engine''s after the message, the LLM''s as reported.';
revoke all on function bayes.shadow_pairs from public;
grant execute on function bayes.shadow_pairs to service_role;

create or replace function bayes.evaluate_policy(
    p_overrides jsonb default '{}',
    p_users uuid[] default null,
    p_from timestamptz default null,
    p_to timestamptz default null
)
returns jsonb
language plpython3u
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.evaluate_policy(plpy, p_overrides, p_users, p_from, p_to)
$$;

comment on function bayes.evaluate_policy is
'Counterfactual replay: the event logs of the shadow players (all, or p_users) replayed under the stored parameters with p_overrides ({bayes.params name: value}; nothing is written), consulting each logged LLM answer only when the replayed fallback asks for it. Reports, over the shadow messages sent in [p_from, p_to): the LLM call rate per message bucket and over the lifetime, the reasons, and the fidelity against the LLM''s trajectory (every message''s metric evidence the LLM''s delta / 10): boss-ready agreement and mean |composite difference| after the cold start. Progress as NOTICEs.';
revoke all on function bayes.evaluate_policy from public;
grant execute on function bayes.evaluate_policy to service_role;

create or replace function bayes.shadow_report(
    p_from timestamptz default null,
    p_to timestamptz default null
)
returns table (
    sample text,
    item text,
    pairs bigint,
    correlation double precision,
    sign_agreement double precision,
    mean_abs_diff double precision,
    missed_share double precision,
    agreement double precision
)
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    with pairs as (
        select * from bayes.shadow_pairs(p_from, p_to)
    ),

    metric as (
        select
            p.sample,
            k.name,
            k.i,
            p.engine_evidence[k.i] as engine,
            p.llm_evidence[k.i] as llm
        from pairs as p
        cross join unnest(array[@METRIC_NAMES@]) with ordinality as k (name, i)
    ),

    vice as (
        select
            p.sample,
            (p.engine_vices[k.i] > 0) = (coalesce((p.llm_vices ->> k.name)::float8, 0) > 0) as same
        from pairs as p
        cross join unnest(array[@VICES@]) with ordinality as k (name, i)
        where p.llm_vices is not null
    ),

    -- materialized: the replay runs once (inlined, every use of fidelity
    -- below would call bayes.evaluate_policy again)
    policy as materialized (
        select bayes.evaluate_policy('{}', null, p_from, p_to) -> 'fidelity' as fidelity
    )

    select r.sample, r.item, r.pairs, r.correlation, r.sign_agreement, r.mean_abs_diff, r.missed_share, r.agreement
    from (
        select
            m.sample,
            m.name as item,
            m.i as ord,
            count(*) as pairs,
            corr(m.engine, m.llm) as correlation,
            avg((sign(m.engine) = sign(m.llm))::integer::float8) as sign_agreement,
            avg(abs(m.engine - m.llm)) as mean_abs_diff,
            avg((m.engine = 0 and abs(m.llm) >= 0.3)::integer::float8) as missed_share,
            null::float8 as agreement
        from metric as m
        group by m.sample, m.name, m.i
        union all
        select v.sample, 'vices', 5, count(*), null, null, null, null, avg(v.same::integer::float8)
        from vice as v
        group by v.sample
        union all
        select p.sample, 'mood', 6, count(*), null, null, null, null, avg((p.engine_mood = p.llm_mood)::integer::float8)
        from pairs as p
        where p.llm_mood is not null
        group by p.sample
        union all
        select
            'shadow',
            'boss_ready',
            7,
            (f.fidelity ->> 'compared')::bigint,
            null,
            null,
            null,
            null,
            (f.fidelity ->> 'boss_ready_agreement')::float8
        from policy as f
        where (f.fidelity ->> 'compared')::bigint > 0
    ) as r
    order by r.sample desc, r.ord
$$;

comment on function bayes.shadow_report is
'How the engine agrees with the LLM over the messages sent in [p_from, p_to) (bayes.shadow_pairs), per sample (shadow, audit): per metric the pairs, the correlation and sign agreement of the engine''s evidence with the LLM''s delta / 10, their mean absolute difference, and the share of messages where the engine saw nothing (net evidence 0) and the LLM moved the metric by 3 or more; vices (the share of (message, vice) pairs where both or neither saw the vice) and mood (the same mood) where the LLM reported them; boss_ready: the agreement of the engine under the current policy with the LLM''s trajectory (bayes.evaluate_policy).';
revoke all on function bayes.shadow_report from public;
grant execute on function bayes.shadow_report to service_role;

create or replace function bayes.calibrate_evidence(
    p_from timestamptz default null,
    p_to timestamptz default null,
    p_holdout double precision default 0.3,
    p_ridge double precision default 1.0,
    p_overrides jsonb default '{}',
    p_apply boolean default false
)
returns jsonb
language plpython3u
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
@bayes_engine pg.calibrate_evidence(plpy, p_from, p_to, p_holdout, p_ridge, p_overrides, p_apply)
$$;

comment on function bayes.calibrate_evidence is
'Fits, per metric, the evidence of each encoder feature and an intercept that best predict the LLM''s delta / 10 (least squares, ridge p_ridge towards the current weights) on the LLM-scored messages sent in [p_from, p_to) of the training players (bayes.user_bucket(user_id, ''calibration'') >= p_holdout * 10000), and evaluates it with bayes.evaluate_policy on the held-out shadow players at the same budget (p_overrides apply to both). Returns the proposed feature_* rows, both evaluations and the verdict; writes the rows only when p_apply and the verdict is better (needs UPDATE on bayes.params: the owner).';
revoke all on function bayes.calibrate_evidence from public;
grant execute on function bayes.calibrate_evidence to service_role;
