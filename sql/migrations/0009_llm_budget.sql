-- MODEL.md v2 (issue 13): the fallback's new rules and the LLM budget.
--
-- The rows the v2 code reads are added here; the rows only v1 read
-- (variance_threshold_*, critical_zone) are removed at the end of
-- sql/functions/10_params.sql, once the v2 code is installed: the statement
-- trigger bayes.check_params validates every change with the code deployed
-- at that moment, and the v1 code still needs them. Stored states keep
-- schema v1 until their next write (bayes_engine.codec upgrades them on
-- read: lb = llm_budget_tokens).
insert into bayes.params (name, value, description) values
(
    'uncertain_margin',
    '0.1',
    'Fallback rule uncertain: the LLM is asked when uncertain_margin < P_ready < 1 - uncertain_margin (MODEL.md section 7)'
),
(
    'audit_rate',
    '0.02',
    'Fallback rule audit: the probability that a message the other rules pass is sent to the LLM anyway (seeded draw)'
),
(
    'llm_budget_tokens',
    '3',
    'LLM budget B: the tokens a player''s bucket holds; a granted request other than cold_start takes one'
),
(
    'llm_budget_window',
    '100',
    'LLM budget W: every message adds llm_budget_tokens / llm_budget_window tokens (at most B/W of messages go to the LLM)'
);

update bayes.params
set description = 'Messages with halved evidence, and the cold_start fallback (always granted, free of budget) below this count'
where name = 'cold_start_messages';
