-- The partition's side of the partitioned mode (issue 17, migration 0019):
-- bayes.become_partition, and the entry points the proxy calls as role
-- bayes_proxy (sql/proxy/ defines the proxy's side).

create or replace function bayes.become_partition(p_index integer, p_count integer)
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_current bayes.partition;
    v_foreign bigint;
    v_next bigint;
begin
    if p_count is null or p_index is null then
        perform bayes.raise_error('22004', 'p_index and p_count must not be null');
    end if;
    if p_count < 1 or p_count & (p_count - 1) <> 0 or p_index < 0 or p_index >= p_count then
        perform bayes.raise_error(
            '22023',
            format('no partition %s of %s', p_index, p_count),
            'p_count is a power of two (PL/Proxy routes by hash & (p_count - 1)), 0 <= p_index < p_count.'
        );
    end if;
    select p.* into v_current from bayes.partition as p;
    if found then
        if (v_current.partition_index, v_current.partition_count) = (p_index, p_count) then
            return;  -- already this partition
        end if;
        perform bayes.raise_error(
            '55000',
            format(
                'this database is already partition %s of %s',
                v_current.partition_index, v_current.partition_count
            ),
            'A partition is moved whole (docs/partitions.md); the number of partitions is fixed.'
        );
    end if;
    select count(*) into v_foreign
    from public.user_bayesian_state as s
    where (hashtext(s.user_id::text) & (p_count - 1)) <> p_index;
    if v_foreign > 0 then
        perform bayes.raise_error(
            '23514',
            format('%s players of this database belong to other partitions than %s of %s', v_foreign, p_index, p_count)
        );
    end if;

    -- No auth.users: a player exists when he first writes.
    alter table public.user_bayesian_state drop constraint if exists user_bayesian_state_user_id_fkey;
    -- Each partition refuses the rows of the others.
    execute format(
        'alter table public.user_bayesian_state add constraint user_bayesian_state_partition '
        'check ((hashtext(user_id::text) & %s) = %s)',
        p_count - 1, p_index
    );
    execute format(
        'alter table bayes.player_event add constraint player_event_partition '
        'check ((hashtext(user_id::text) & %s) = %s)',
        p_count - 1, p_index
    );
    execute format(
        'alter table bayes.player_checkpoint add constraint player_checkpoint_partition '
        'check ((hashtext(user_id::text) & %s) = %s)',
        p_count - 1, p_index
    );
    -- Event ids unique across partitions (the proxy's views join on them):
    -- partition i numbers its events i + 1, i + 1 + n, i + 1 + 2n, ... in its
    -- log order.
    select greatest(coalesce(max(e.event_id), 0), 0) + 1 into v_next from bayes.player_event as e;
    v_next := v_next + ((p_index + 1 - v_next) % p_count + p_count) % p_count;
    execute format(
        'alter table bayes.player_event alter column event_id set increment by %s restart with %s',
        p_count, v_next
    );

    -- The proxy's login may act as an API role (only through bayes_partition).
    grant anon, authenticated, service_role to bayes_proxy;
    alter role bayes_proxy set datestyle = 'ISO';
    alter role bayes_proxy set timezone = 'UTC';

    insert into bayes.partition (partition_index, partition_count) values (p_index, p_count);
end
$$;

comment on function bayes.become_partition is
'Makes this database partition p_index of p_count (a power of two) of the partitioned mode, once (issue 17): drops the foreign key to auth.users, adds checks that refuse the rows of other partitions (hashtext(user_id::text) & (p_count - 1) = p_index), numbers events so that their ids are unique across partitions, lets bayes_proxy act as the API roles. 23514 when the database holds players of other partitions, 55000 when it is already another partition. Superuser only.';
revoke all on function bayes.become_partition from public, anon, authenticated, service_role;

-- The entry points: bayes_partition.<rpc>(p_role, p_claims, p_seed,
-- p_timezone, <the RPC's arguments>) runs public.<rpc> as API role p_role with
-- JWT claims p_claims, as the proxy decided them from its caller
-- (sql/proxy/11_rpc_writers.sql and 12_rpc_readers.sql), the caller's
-- session seed of the random draws (setting bayes.seed, MODEL.md section
-- 4.4) and the caller's TimeZone. The
-- TimeZone is set after the arguments were read (in UTC, the connection's):
-- it only writes the instants of the answer (jsonb: last_message_at,
-- decayed_at, updated_at) with the caller's offset, as a single node writes
-- them in its caller's session. They last until the function returns (its
-- SET clause reverts them): the connection, which the proxy keeps, goes back
-- to bayes_proxy.

create or replace function bayes_partition.caller_role(p_role text)
returns text
language plpgsql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if p_role is null or p_role not in ('anon', 'authenticated', 'service_role') then
        perform bayes.raise_error('42501', format('the proxy passed no API role (%s)', coalesce(p_role, 'null')));
    end if;
    return p_role;
end
$$;

comment on function bayes_partition.caller_role is
'p_role when it is an API role (anon, authenticated, service_role); 42501 otherwise.';
revoke all on function bayes_partition.caller_role from public;
grant execute on function bayes_partition.caller_role to bayes_proxy;

create or replace function bayes_partition.bayes_process_message(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_message text,
    p_sent_at timestamptz,
    p_message_id text,
    p_reply_gap_s double precision,
    p_topic_changed boolean
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    perform set_config('bayes.seed', coalesce(p_seed, ''), true);
    perform set_config('timezone', coalesce(p_timezone, 'UTC'), true);
    return public.bayes_process_message(
        p_user_id, p_message, p_sent_at, p_message_id, p_reply_gap_s, p_topic_changed
    );
end
$$;

comment on function bayes_partition.bayes_process_message is
'public.bayes_process_message as API role p_role with JWT claims p_claims, session seed p_seed (setting bayes.seed) and the caller''s TimeZone p_timezone: the proxy''s call (issue 17).';
revoke all on function bayes_partition.bayes_process_message from public;
grant execute on function bayes_partition.bayes_process_message to bayes_proxy;

create or replace function bayes_partition.bayes_apply_llm_scores(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_deltas jsonb,
    p_message_id text,
    p_vices jsonb,
    p_mood text
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    perform set_config('bayes.seed', coalesce(p_seed, ''), true);
    perform set_config('timezone', coalesce(p_timezone, 'UTC'), true);
    return public.bayes_apply_llm_scores(p_user_id, p_deltas, p_message_id, p_vices, p_mood);
end
$$;

comment on function bayes_partition.bayes_apply_llm_scores is
'public.bayes_apply_llm_scores as API role p_role with JWT claims p_claims, session seed p_seed (setting bayes.seed) and the caller''s TimeZone p_timezone: the proxy''s call (issue 17).';
revoke all on function bayes_partition.bayes_apply_llm_scores from public;
grant execute on function bayes_partition.bayes_apply_llm_scores to bayes_proxy;

create or replace function bayes_partition.bayes_record_outcome(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_decision text,
    p_engaged boolean
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    perform set_config('bayes.seed', coalesce(p_seed, ''), true);
    perform set_config('timezone', coalesce(p_timezone, 'UTC'), true);
    return public.bayes_record_outcome(p_user_id, p_decision, p_engaged);
end
$$;

comment on function bayes_partition.bayes_record_outcome is
'public.bayes_record_outcome as API role p_role with JWT claims p_claims, session seed p_seed (setting bayes.seed) and the caller''s TimeZone p_timezone: the proxy''s call (issue 17).';
revoke all on function bayes_partition.bayes_record_outcome from public;
grant execute on function bayes_partition.bayes_record_outcome to bayes_proxy;

create or replace function bayes_partition.bayes_advance_chapter(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_chapter integer
)
returns jsonb
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    perform set_config('bayes.seed', coalesce(p_seed, ''), true);
    perform set_config('timezone', coalesce(p_timezone, 'UTC'), true);
    return public.bayes_advance_chapter(p_user_id, p_chapter);
end
$$;

comment on function bayes_partition.bayes_advance_chapter is
'public.bayes_advance_chapter as API role p_role with JWT claims p_claims, session seed p_seed (setting bayes.seed) and the caller''s TimeZone p_timezone: the proxy''s call (issue 17).';
revoke all on function bayes_partition.bayes_advance_chapter from public;
grant execute on function bayes_partition.bayes_advance_chapter to bayes_proxy;

create or replace function bayes_partition.bayes_get_state(
    p_role text, p_claims text, p_seed text, p_timezone text, p_user_id uuid
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    perform set_config('bayes.seed', coalesce(p_seed, ''), true);
    perform set_config('timezone', coalesce(p_timezone, 'UTC'), true);
    return public.bayes_get_state(p_user_id);
end
$$;

comment on function bayes_partition.bayes_get_state is
'public.bayes_get_state as API role p_role with JWT claims p_claims, session seed p_seed (setting bayes.seed) and the caller''s TimeZone p_timezone: the proxy''s call (issue 17).';
revoke all on function bayes_partition.bayes_get_state from public;
grant execute on function bayes_partition.bayes_get_state to bayes_proxy;

create or replace function bayes_partition.bayes_boss_readiness(
    p_role text,
    p_claims text,
    p_seed text,
    p_timezone text,
    p_user_id uuid,
    p_method text
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    perform set_config('bayes.seed', coalesce(p_seed, ''), true);
    perform set_config('timezone', coalesce(p_timezone, 'UTC'), true);
    return public.bayes_boss_readiness(p_user_id, p_method);
end
$$;

comment on function bayes_partition.bayes_boss_readiness is
'public.bayes_boss_readiness as API role p_role with JWT claims p_claims, session seed p_seed (setting bayes.seed) and the caller''s TimeZone p_timezone: the proxy''s call (issue 17).';
revoke all on function bayes_partition.bayes_boss_readiness from public;
grant execute on function bayes_partition.bayes_boss_readiness to bayes_proxy;

create or replace function bayes_partition.bayes_fallback_check(
    p_role text, p_claims text, p_seed text, p_timezone text, p_user_id uuid
)
returns jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    perform set_config('bayes.seed', coalesce(p_seed, ''), true);
    perform set_config('timezone', coalesce(p_timezone, 'UTC'), true);
    return public.bayes_fallback_check(p_user_id);
end
$$;

comment on function bayes_partition.bayes_fallback_check is
'public.bayes_fallback_check as API role p_role with JWT claims p_claims, session seed p_seed (setting bayes.seed) and the caller''s TimeZone p_timezone: the proxy''s call (issue 17).';
revoke all on function bayes_partition.bayes_fallback_check from public;
grant execute on function bayes_partition.bayes_fallback_check to bayes_proxy;

create or replace function bayes_partition.delete_player(p_role text, p_claims text, p_user_id uuid)
returns bigint
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_deleted bigint;
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    delete from public.user_bayesian_state as s where s.user_id = p_user_id;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end
$$;

comment on function bayes_partition.delete_player is
'Deletes player p_user_id''s state (and, by its trigger, his events) as API role p_role with JWT claims p_claims, with that role''s privileges and row-level security: a DELETE of the proxy''s view public.user_bayesian_state (issue 17). Returns the rows deleted (0 or 1).';
revoke all on function bayes_partition.delete_player from public;
grant execute on function bayes_partition.delete_player to bayes_proxy;
