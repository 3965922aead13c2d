-- Read RPCs on a player's stored state (MODEL.md section 9): boss readiness
-- (section 6) and the fallback check (section 7, rules 1 and 3). Callable
-- by the backend (service_role) or by the player himself. The state is
-- decayed on read up to now() (bayes.readable_state), whatever the bulk
-- decay's cadence; decayed_at in the answer says that instant.

create or replace function public.bayes_boss_readiness(p_user_id uuid, p_method text default 'edgeworth')
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_checked boolean;
    v_row public.user_bayesian_state;
    v_readiness jsonb;
begin
    v_checked := bayes.check_readiness_method(p_method);
    v_row := bayes.readable_state(p_user_id);
    v_readiness := bayes.state_readiness(
        v_row.state, p_method, p_user_id::text, nullif(current_setting('bayes.seed', true), '')
    );
    if v_readiness is null then
        -- A corrupt state: the analytics' null becomes the codec's error (XX001 or 0A000).
        perform bayes.decode_state(v_row.state);
    end if;
    return v_readiness || jsonb_build_object(
        'user_id', v_row.user_id,
        'version', v_row.version,
        'decayed_at', v_row.decayed_at
    );
end
$$;

comment on function public.bayes_boss_readiness is
'Boss readiness of a player (MODEL.md section 6): p_ready = P(composite >= threshold), ready (p_ready >= 0.7), confidence; p_method edgeworth (default: the fourth-order Edgeworth expansion, within 0.005 of the exact value), normal (v1''s approximation) or monte_carlo (10,000 seeded draws). Callable by service_role or by the player himself; P0002 for an unknown player, XX001 for a corrupt state.';
revoke all on function public.bayes_boss_readiness from public, anon, authenticated, service_role;
grant execute on function public.bayes_boss_readiness to authenticated, service_role;

create or replace function public.bayes_fallback_check(p_user_id uuid)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_row public.user_bayesian_state := bayes.readable_state(p_user_id);
    v_check jsonb := bayes.state_fallback_check(v_row.state);
begin
    if v_check is null then
        -- A corrupt state: the analytics' null becomes the codec's error (XX001 or 0A000).
        perform bayes.decode_state(v_row.state);
    end if;
    return v_check || jsonb_build_object(
        'user_id', v_row.user_id,
        'version', v_row.version,
        'decayed_at', v_row.decayed_at
    );
end
$$;

comment on function public.bayes_fallback_check is
'Whether the LLM would be asked for a player now (MODEL.md section 7, rules 1 and 3: cold_start, uncertain; consumes nothing): needed (cold_start, or uncertain with a token of the LLM budget left), reason, budget_left, and the numbers behind them. Callable by service_role or by the player himself; P0002 for an unknown player, XX001 for a corrupt state.';
revoke all on function public.bayes_fallback_check from public, anon, authenticated, service_role;
grant execute on function public.bayes_fallback_check to authenticated, service_role;
