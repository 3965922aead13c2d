-- Issue 15, item 3: bulk decay writes bounded by change.
--
-- Every write of a player's state computes, in closed form, the first
-- instant at which the exactly decayed state would be further than a
-- tolerance from the stored one (bayes_engine.decay_due): the row's
-- decay_due_at. bayes.run_decay reads only the rows whose instant has
-- passed, through the partial index below, instead of every absent player
-- every 15 minutes; the read RPCs decay on read, so what a player or the
-- backend reads is exact whatever the bulk cadence.
--
-- The two tolerances are read only by the new code: the rows come first
-- (the deployed code warns that it does not read them).
insert into bayes.params (name, value, description) values
(
    'decay_tolerance_composite',
    '0.1',
    'Bulk decay: a row is rewritten once its exactly decayed composite is this many points from the stored one'
),
(
    'decay_tolerance_p_ready',
    '0.005',
    'Bulk decay: a row is rewritten once its exactly decayed P_ready may be this far from the stored one'
);

alter table public.user_bayesian_state
add column decay_due_at timestamptz;

comment on column public.user_bayesian_state.decay_due_at is
'When the bulk decay (bayes.run_decay) next rewrites this row: the first instant at which the exactly decayed state could be further than decay_tolerance_composite (composite) or decay_tolerance_p_ready (P_ready) from the stored one. Computed in closed form by every write; null: never, until the player writes again (no message yet, or the state is within both tolerances of where decay can take it).';

-- The rows written before this migration have no due time yet: each is due
-- when its decay window opens (its decayed_at, or its last message plus the
-- chapter's grace), so the first run after the upgrade decays it exactly,
-- as every run did before, and writes its first computed due time. A
-- closed-form due time needs the new code, which the functions migration
-- installs after this one; this needs only SQL.
update public.user_bayesian_state as s
set decay_due_at = greatest(s.decayed_at, s.last_message_at + make_interval(secs => 3600 * coalesce(cp.decay_grace_h, 0)))
from public.user_bayesian_state as r
left join bayes.chapter_params as cp on r.chapter = cp.chapter
where s.user_id = r.user_id and s.last_message_at is not null;

-- The bulk decay's batches (bayes.decay_batch): the due rows in (decay_due_at, user_id) order.
create index user_bayesian_state_decay_due_at_idx
on public.user_bayesian_state (decay_due_at, user_id)
where decay_due_at is not null;
