-- One row per player for psql analytics (docs/analytics.md). A view with
-- security_invoker: whoever queries it sees only the rows the table's RLS
-- lets him see. Readiness and fallback call PL/Python once per row each.
-- A player whose state is corrupt has a row too: the columns computed from
-- the state are null, state_problem says what is wrong (chapter and
-- composite are the table's stored columns, as they are). Its rows are as
-- of decayed_at, within the bulk decay's tolerances of now (decay_due_at).

-- decay_due_at (issue 15) comes last: CREATE OR REPLACE VIEW only appends columns.
create or replace view bayes.player_summary
with (security_invoker = true)
as
select  -- noqa: ST06
    s.user_id,
    s.chapter,
    s.composite,
    cp.boss_threshold,
    s.last_message_at,
    s.decayed_at,
    case when bayes.state_problem(s.state) is null then (s.state ->> 'n')::bigint end as messages,
    bayes.composite_sd(s.state) as composite_sd,
    bayes.readiness_probability(s.state) as readiness,
    bayes.mood(s.state) as mood,
    bayes.top_vice(s.state) as top_vice,
    bayes.fallback_reason(s.state) as fallback_reason,
    bayes.state_problem(s.state) as state_problem,
    s.decay_due_at
from public.user_bayesian_state as s
left join bayes.chapter_params as cp on s.chapter = cp.chapter;

comment on view bayes.player_summary is
'One row per player: chapter, messages, composite and its sd, boss threshold, readiness P(composite >= threshold), mood, top vice, fallback reason (rules 1 and 3: cold_start, uncertain, bayesian_sufficient), last message, the instant decay was applied up to (decayed_at), state_problem (null, or what is wrong with a corrupt state, whose computed columns are then null) and decay_due_at. The stored columns are as of decayed_at: the bulk decay rewrites a row only when it has moved by a tolerance, so composite is within decay_tolerance_composite points and readiness within decay_tolerance_p_ready of their values decayed exactly to now() (mood and top_vice are as of decayed_at); decay_due_at says when the row is next rewritten (docs/analytics.md).';
revoke all on table bayes.player_summary from public, anon, authenticated, service_role;
grant select on table bayes.player_summary to service_role;
