-- The generated column `composite` as an expression instead of a call of
-- bayes.state_composite(state).
--
-- bayes.state_composite pins its search_path, and PostgreSQL never inlines a
-- function that has a SET clause: every UPDATE of a state ran it through the
-- SQL-function executor, which parses and plans its body again for each
-- statement (track_functions: about 45 µs of every bayes_process_message).
-- The expression below is the same formula over the same fields, so the
-- column keeps its values bit for bit; bayes.state_composite stays, for
-- queries, and a test checks that the two agree on every row.
--
-- PostgreSQL 15 cannot change a generated column's expression in place:
-- the column is dropped and added again, which rewrites the table under an
-- ACCESS EXCLUSIVE lock (run it in a quiet window on a large table). The
-- drop takes its index and the view bayes.player_summary with it; the index
-- is created again here, the view by the functions migration that follows.
-------------------------------------------------------------------------------
alter table public.user_bayesian_state drop column composite cascade;

alter table public.user_bayesian_state
add column composite double precision generated always as (
    100 * (
        0.30 * (state #>> '{m,i,0}')::float8
        / ((state #>> '{m,i,0}')::float8 + (state #>> '{m,i,1}')::float8)
        + 0.25 * (state #>> '{m,p,0}')::float8
        / ((state #>> '{m,p,0}')::float8 + (state #>> '{m,p,1}')::float8)
        + 0.25 * (state #>> '{m,t,0}')::float8
        / ((state #>> '{m,t,0}')::float8 + (state #>> '{m,t,1}')::float8)
        + 0.20 * (state #>> '{m,s,0}')::float8
        / ((state #>> '{m,s,0}')::float8 + (state #>> '{m,s,1}')::float8)
    )
) stored;

comment on column public.user_bayesian_state.composite is
'Composite score 0..100, generated from state: the formula of bayes.state_composite, written out so that it is inlined.';

-- Analytics: distribution of composite by chapter, players near their boss.
create index user_bayesian_state_chapter_composite_idx
on public.user_bayesian_state (chapter, composite);
