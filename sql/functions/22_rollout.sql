-- The rollout of issue 14: which players the engine decides for (mode
-- bayes) and which ones the backend still scores with its LLM on every
-- message (mode shadow). A player's place is a stable hash of his user_id,
-- so the same player keeps his mode while bayes.rollout is unchanged, and
-- raising bayes_percent only moves players from shadow to bayes.

create or replace function bayes.user_bucket(p_user_id uuid, p_salt text)
returns integer
language sql
immutable
strict
parallel safe
security invoker
set search_path = pg_catalog, pg_temp
as $$
    -- The first 32 bits of md5(salt:user_id), as an unsigned number, mod 10000.
    select (('x' || left(md5(p_salt || ':' || p_user_id::text), 8))::bit(32)::bigint & 4294967295) % 10000
$$;

comment on function bayes.user_bucket is
'A stable bucket 0..9999 of player p_user_id: the first 32 bits of md5(p_salt || '':'' || p_user_id) mod 10000. Salt ''rollout'' places players in cohorts (bayes.player_mode), ''calibration'' holds players out of bayes.calibrate_evidence''s fit.';
revoke all on function bayes.user_bucket from public;
grant execute on function bayes.user_bucket to service_role;

create or replace function bayes.player_mode(p_user_id uuid)
returns text
language sql
stable
strict
security invoker
set search_path = pg_catalog, pg_temp
as $$
    -- Without its row (an operator deleted it) the rollout is the installation's
    -- default, everyone in shadow: never a null mode in a writer's result.
    select coalesce(
        (
            select case when bayes.user_bucket(p_user_id, 'rollout') < r.bayes_percent * 100 then 'bayes' end
            from bayes.rollout as r
        ),
        'shadow'
    )
$$;

comment on function bayes.player_mode is
'The mode of player p_user_id under bayes.rollout: ''bayes'' (the backend asks the LLM only when fallback.needed) or ''shadow'' (it asks the LLM on every message and reports its judgement with bayes_apply_llm_scores); ''shadow'' when bayes.rollout has no row.';
revoke all on function bayes.player_mode from public;
grant execute on function bayes.player_mode to service_role;
