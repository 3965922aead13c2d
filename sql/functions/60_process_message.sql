-- bayes_process_message (MODEL.md sections 4 and 9): one player message, for
-- the game's backend (service_role). The math is bayes_engine.model's
-- process_message, reached through bayes.apply_input and bayes.step.

create or replace function public.bayes_process_message(
    p_user_id uuid,
    p_message text,
    p_sent_at timestamptz default now(),
    p_message_id text default null,
    p_reply_gap_s double precision default null,
    p_topic_changed boolean default null
)
returns jsonb
language plpgsql
volatile
-- Definer: the API roles may not write the state table or its event log
-- themselves (sql/functions/50_apply_input.sql); a writer RPC is their way
-- in. It checks every argument first, and only service_role may execute it.
security definer
set search_path = pg_catalog, pg_temp
-- json_build_object writes a float8 with float8out: at extra_float_digits
-- 0 (a client's choice) it would keep 15 digits; 1 writes the exact value.
set extra_float_digits = 1
as $$
declare
    -- the start of the in-database time the event records (bayes.health)
    v_started_at timestamptz := clock_timestamp();
    v_checked boolean;
begin
    v_checked := bayes.check_not_null(p_user_id, 'p_user_id');
    v_checked := bayes.check_not_null(p_message, 'p_message');
    v_checked := bayes.check_not_null(p_sent_at, 'p_sent_at', 'omit it to use now()');
    v_checked := bayes.check_message_text(p_message);
    v_checked := bayes.check_time(p_sent_at, 'p_sent_at');
    v_checked := bayes.check_reply_gap(p_reply_gap_s);
    v_checked := bayes.check_message_id(p_message_id);

    return bayes.apply_input(
        'message',
        p_user_id,
        p_message_id,
        json_build_object(
            'text', p_message,
            'sent_at', extract(epoch from p_sent_at),
            'reply_gap_s', p_reply_gap_s,
            'topic_changed', p_topic_changed,
            'seed', bayes.session_seed(),
            'received_at', extract(epoch from now())
        ),
        p_sent_at,
        p_sent_at,
        v_started_at
    );
end
$$;

comment on function public.bayes_process_message is
'Scores one player message (MODEL.md section 4): creates the state if absent, decays, encodes, updates, decides skip and delay, checks boss readiness (Edgeworth) and the fallback (MODEL.md v2 section 7: reason, and needed as granted by the player''s LLM budget), writes the state and an event. A repeated (user, message_id) returns the first result with "duplicate": true. service_role only.';
revoke all on function public.bayes_process_message from public, anon, authenticated, service_role;
grant execute on function public.bayes_process_message to service_role;
