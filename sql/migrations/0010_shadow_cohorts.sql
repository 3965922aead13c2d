-- Issue 14: switching a live game over safely.
--
-- 1. Section 3 of MODEL.md as parameter rows: the evidence of every metric
--    feature (and an intercept, the evidence every message gets: 0 by
--    default) and the lexicons, so that a designer changes a word list or a
--    feature's weight with one UPDATE (validated by bayes.check_params,
--    effective on the next call) and bayes.calibrate_evidence can propose
--    new weights. The event log keeps the features the encoder found, so a
--    replay keeps using the stored observations.
-- 2. The rollout: each player, by a stable hash of user_id, is in mode
--    shadow (the backend keeps the LLM as its source of truth, calls it on
--    every message and reports its judgement) or bayes (it calls the LLM
--    only when fallback.needed). One UPDATE of bayes.rollout moves players;
--    raising bayes_percent only ever moves players from shadow to bayes.
--
-- The rows are added before the code that reads them is installed (the
-- functions migration follows): bayes.check_params of the older code warns
-- that it does not read them, which is expected here.

insert into bayes.params (name, value, description) values
(
    'feature_long',
    '{"intimacy": 0.35, "passion": 0.15}',
    'Evidence of feature long (a message of more than 300 characters): {metric: signed evidence in [-1, 1]}, > 0 for alpha, < 0'
    ' for beta; absent metrics 0'
),
(
    'feature_medium',
    '{"intimacy": 0.15}',
    'Evidence of feature medium (a message of 151 to 300 characters): {metric: signed evidence in [-1, 1]}, > 0 for alpha, < 0'
    ' for beta; absent metrics 0'
),
(
    'feature_short',
    '{"intimacy": -0.12, "passion": -0.045}',
    'Evidence of feature short (a message of fewer than 20 characters): {metric: signed evidence in [-1, 1]}, > 0 for alpha, < 0'
    ' for beta; absent metrics 0'
),
(
    'feature_quick_reply',
    '{"trust": 0.3, "secureness": 0.15}',
    'Evidence of feature quick_reply (a reply gap below half the chapter''s fast_reply_s): {metric: signed evidence in [-1, 1]},'
    ' > 0 for alpha, < 0 for beta; absent metrics 0'
),
(
    'feature_slow_reply',
    '{"secureness": -0.25}',
    'Evidence of feature slow_reply (a reply gap above 0.8 times the chapter''s slow_reply_s): {metric: signed evidence in [-1,'
    ' 1]}, > 0 for alpha, < 0 for beta; absent metrics 0'
),
(
    'feature_personal_question',
    '{"intimacy": 0.56, "trust": 0.35}',
    'Evidence of feature personal_question (a question mark and a word of lexicon_personal): {metric: signed evidence in [-1,'
    ' 1]}, > 0 for alpha, < 0 for beta; absent metrics 0'
),
(
    'feature_questions',
    '{"trust": 0.15}',
    'Evidence of feature questions (two or more question marks, without a personal word): {metric: signed evidence in [-1, 1]},'
    ' > 0 for alpha, < 0 for beta; absent metrics 0'
),
(
    'feature_warm',
    '{"passion": 0.49}',
    'Evidence of feature warm (two or more words of lexicon_positive): {metric: signed evidence in [-1, 1]}, > 0 for alpha, < 0'
    ' for beta; absent metrics 0'
),
(
    'feature_warm_one',
    '{"passion": 0.15}',
    'Evidence of feature warm_one (exactly one word of lexicon_positive): {metric: signed evidence in [-1, 1]}, > 0 for alpha, <'
    ' 0 for beta; absent metrics 0'
),
(
    'feature_cold',
    '{"passion": -0.42, "trust": -0.25}',
    'Evidence of feature cold (two or more words of lexicon_negative): {metric: signed evidence in [-1, 1]}, > 0 for alpha, < 0'
    ' for beta; absent metrics 0'
),
(
    'feature_cold_one',
    '{"passion": -0.12}',
    'Evidence of feature cold_one (exactly one word of lexicon_negative): {metric: signed evidence in [-1, 1]}, > 0 for alpha, <'
    ' 0 for beta; absent metrics 0'
),
(
    'feature_steady',
    '{"secureness": 0.3}',
    'Evidence of feature steady (the 1st to 3rd message of the UTC day, with a reply gap under 24 h): {metric: signed evidence'
    ' in [-1, 1]}, > 0 for alpha, < 0 for beta; absent metrics 0'
),
(
    'feature_absent',
    '{"trust": -0.12, "secureness": -0.49}',
    'Evidence of feature absent (a reply gap of more than 48 h): {metric: signed evidence in [-1, 1]}, > 0 for alpha, < 0 for'
    ' beta; absent metrics 0'
),
(
    'feature_intercept',
    '{"intimacy": 0.0, "passion": 0.0, "trust": 0.0, "secureness": 0.0}',
    'Evidence every message gets, feature or not ({metric: signed evidence}); never counts as an observation. 0 in MODEL.md;'
    ' bayes.calibrate_evidence fits it'
),
(
    'lexicon_positive',
    '["adore", "amazing", "appreciate", "beautiful", "care", "excited", "great", "happy", "incredible", "kind", "love",'
    ' "perfect", "sweet", "thank", "wonderful"]',
    'Positive words (features warm, warm_one; HMM symbol compliment); lower-case words match on word boundaries, tokens without'
    ' letters (emoji) as occurrences'
),
(
    'lexicon_negative',
    '["angry", "annoying", "awful", "boring", "disappointed", "fine", "frustrated", "goodbye", "hate", "stupid", "terrible",'
    ' "ugly", "whatever", "worst"]',
    'Negative words (features cold, cold_one; HMM symbol complaint); lower-case words match on word boundaries, tokens without'
    ' letters (emoji) as occurrences'
),
(
    'lexicon_personal',
    '["dream", "fear", "feel", "hope", "like", "love", "miss", "remember", "think", "want", "wish"]',
    'Personal words (feature personal_question; HMM symbol emotional_content); lower-case words match on word boundaries, tokens'
    ' without letters (emoji) as occurrences'
),
(
    'lexicon_humor',
    '["haha", "hahaha", "hehe", "lmao", "lol", "rofl", "😂", "😆", "🤣"]',
    'Humor words and emoji (HMM symbol humor); lower-case words match on word boundaries, tokens without letters (emoji) as'
    ' occurrences'
),
(
    'lexicon_vice_intellectual_dominance',
    '["argue", "debate", "intellectual", "logic", "philosophy", "read", "research", "science", "smart", "theory", "think"]',
    'Keywords of vice 0 intellectual_dominance (each match adds 0.25 to its Dirichlet concentration, at most 1 a message);'
    ' lower-case words match on word boundaries, tokens without letters (emoji) as occurrences'
),
(
    'lexicon_vice_risk_taking',
    '["adrenaline", "adventure", "crazy", "dangerous", "dare", "extreme", "impulsive", "risk", "spontaneous", "wild"]',
    'Keywords of vice 1 risk_taking (each match adds 0.25 to its Dirichlet concentration, at most 1 a message); lower-case words'
    ' match on word boundaries, tokens without letters (emoji) as occurrences'
),
(
    'lexicon_vice_substances',
    '["bar", "beer", "club", "cocktail", "drink", "high", "party", "shots", "smoke", "weed", "wine"]',
    'Keywords of vice 2 substances (each match adds 0.25 to its Dirichlet concentration, at most 1 a message); lower-case words'
    ' match on word boundaries, tokens without letters (emoji) as occurrences'
),
(
    'lexicon_vice_sexuality',
    '["attractive", "bed", "body", "cuddle", "desire", "intimate", "kiss", "lips", "sexy", "touch"]',
    'Keywords of vice 3 sexuality (each match adds 0.25 to its Dirichlet concentration, at most 1 a message); lower-case words'
    ' match on word boundaries, tokens without letters (emoji) as occurrences'
),
(
    'lexicon_vice_emotional_intensity',
    '["burning", "cry", "deeply", "emotion", "feel", "heart", "intense", "overwhelm", "passion", "soul"]',
    'Keywords of vice 4 emotional_intensity (each match adds 0.25 to its Dirichlet concentration, at most 1 a message);'
    ' lower-case words match on word boundaries, tokens without letters (emoji) as occurrences'
),
(
    'lexicon_vice_rule_breaking',
    '["against", "authority", "break", "convention", "defy", "freedom", "illegal", "rebel", "rules", "system"]',
    'Keywords of vice 5 rule_breaking (each match adds 0.25 to its Dirichlet concentration, at most 1 a message); lower-case'
    ' words match on word boundaries, tokens without letters (emoji) as occurrences'
),
(
    'lexicon_vice_dark_humor',
    '["dark", "dead", "disturbing", "gallows", "inappropriate", "ironic", "macabre", "morbid", "sick", "twisted"]',
    'Keywords of vice 6 dark_humor (each match adds 0.25 to its Dirichlet concentration, at most 1 a message); lower-case words'
    ' match on word boundaries, tokens without letters (emoji) as occurrences'
),
(
    'lexicon_vice_vulnerability',
    '["afraid", "confession", "fear", "honest", "open", "real", "scared", "secret", "vulnerable", "weak"]',
    'Keywords of vice 7 vulnerability (each match adds 0.25 to its Dirichlet concentration, at most 1 a message); lower-case'
    ' words match on word boundaries, tokens without letters (emoji) as occurrences'
);

comment on table bayes.params is
'Global model constants (MODEL.md sections 2-7), one row each; value is a JSON number, array, or object (feature_*: {metric:'
' evidence}).';

create table bayes.rollout (
    singleton boolean primary key default true,
    bayes_percent numeric(5, 2) not null default 0,
    constraint rollout_one_row check (singleton),
    constraint rollout_percent_range check (bayes_percent between 0 and 100)
);

comment on table bayes.rollout is
'One row: the share of players in mode bayes (the rest are in shadow), by bayes.user_bucket(user_id, ''rollout''). One UPDATE'
' changes the mode of the next call.';
comment on column bayes.rollout.bayes_percent is
'Percent of players (0-100, steps of 0.01) in mode bayes: those whose bayes.user_bucket(user_id, ''rollout'') is below'
' bayes_percent * 100. Raising it only moves players from shadow to bayes.';

-- A new installation starts with every player in shadow: the backend keeps
-- its LLM until someone moves the cohort (docs/migration-playbook.md).
insert into bayes.rollout (singleton, bayes_percent) values (true, 0);

alter table bayes.rollout enable row level security;
create policy rollout_readable on bayes.rollout
for select to service_role using (true);
revoke all on table bayes.rollout from public, anon, authenticated, service_role;
grant select on table bayes.rollout to service_role;
