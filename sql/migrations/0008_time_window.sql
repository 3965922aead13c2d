-- Hardening (issue 12): the time window of a message, and who writes the
-- state table.

-------------------------------------------------------------------------------
-- A message's send time must lie within [now() - max_message_age_h,
-- now() + clock_skew_s] of the database clock (bayes_engine.model's
-- check_sent_at; bayes.run_decay's p_now at most clock_skew_s ahead). A time
-- far ahead would move the player's clock into the future, where neither a
-- later message nor the bulk decay ever decays him again.
-------------------------------------------------------------------------------
insert into bayes.params (name, value, description) values
(
    'clock_skew_s',
    '300',
    'A message''s p_sent_at (and bayes.run_decay''s p_now) may be at most this many seconds ahead of the database clock'
),
(
    'max_message_age_h',
    '720',
    'A message sent more than this many hours before the database clock is refused'
);

comment on table public.user_bayesian_state is
'Bayesian state of each player (MODEL.md section 2). Written only by the bayes_* RPCs (through bayes.apply_input) and bayes.run_decay; the API roles may not insert or update it, and any other write of a state the codec refuses is refused (trigger user_bayesian_state_valid). A player reads his own row.';
