-- The partition's side of the analytics across partitions (issue 17,
-- docs/analytics.md, "The partitioned mode"), and the parameter set as one
-- document that the proxy pushes to every partition.
--
-- The proxy (sql/proxy/20_shelf.sql to 25_shadow.sql) gathers the player data of every
-- partition with PL/Proxy's RUN ON ALL through the functions of schema
-- bayes_partition below, as role bayes_proxy: each one reads the single
-- node's table (or function) as the API role the proxy decided for its
-- caller, with the caller's JWT claims, so that row-level security decides
-- here as it does on a single node (a player reads his own row only). The
-- role lasts until the function returns (its SET clause reverts it).
--
-- On a single node these functions exist too and nobody may call them
-- (bayes_proxy is NOLOGIN there).

-- The parameters as one JSON document: every row of bayes.params (value and
-- description), bayes.chapter_params (by chapter) and bayes.rollout. The
-- proxy compares its document with each partition's and pushes its own.
create or replace function bayes.params_document()
returns jsonb
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select jsonb_build_object(
        'params',
        coalesce(
            (
                select jsonb_object_agg(p.name, jsonb_build_object('value', p.value, 'description', p.description))
                from bayes.params as p
            ),
            '{}'
        ),
        'chapter_params',
        coalesce(
            (select jsonb_object_agg(c.chapter::text, to_jsonb(c) - 'chapter') from bayes.chapter_params as c),
            '{}'
        ),
        'rollout',
        coalesce((select to_jsonb(r) from bayes.rollout as r limit 1), 'null')
    )
$$;

comment on function bayes.params_document is
'The parameter set as one JSON document: {params: {name: {value, description}}, chapter_params: {chapter: {column: value}}, rollout: {column: value}}. What the proxy of the partitioned mode pushes to every partition (issue 17).';
revoke all on function bayes.params_document from public;
grant execute on function bayes.params_document to service_role;

-- Makes this database's parameters those of p_document (bayes.params_document's
-- shape): the rows that differ are updated, the missing ones inserted, the
-- others of bayes.params deleted, in that order, one statement per table, so
-- that the parameter tables' statement triggers check the result (22023, as
-- for any change) and bump the revision only when something changed.
-- Returns the tables it changed.
create or replace function bayes.apply_params_document(p_document jsonb)
returns text[]
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_changed text[] := '{}';
    v_columns text;
begin
    if p_document is null then
        perform bayes.raise_error('22004', 'p_document must not be null');
    end if;
    if jsonb_typeof(p_document -> 'params') is distinct from 'object'
        or jsonb_typeof(p_document -> 'chapter_params') is distinct from 'object'
        or jsonb_typeof(p_document -> 'rollout') is distinct from 'object' then
        perform bayes.raise_error(
            '22023', 'p_document is not a parameter document', 'bayes.params_document() gives one'
        );
    end if;

    if exists (
        select from jsonb_each(p_document -> 'params') as d (name, item)
        left join bayes.params as p on d.name = p.name
        where (p.value, p.description) is distinct from (d.item -> 'value', d.item ->> 'description')
    ) then
        insert into bayes.params as p (name, value, description)
        select d.name, d.item -> 'value', d.item ->> 'description'
        from jsonb_each(p_document -> 'params') as d (name, item)
        on conflict (name) do update
            set value = excluded.value, description = excluded.description
            where (p.value, p.description) is distinct from (excluded.value, excluded.description);
        v_changed := v_changed || 'params'::text;
    end if;
    if exists (select from bayes.params as p where not p_document -> 'params' ? p.name) then
        delete from bayes.params as p where not p_document -> 'params' ? p.name;
        v_changed := array_remove(v_changed, 'params') || 'params'::text;
    end if;

    if exists (
        select from jsonb_each(p_document -> 'chapter_params') as d (chapter, item)
        left join bayes.chapter_params as c on c.chapter = d.chapter::smallint
        where c.chapter is null or to_jsonb(c) - 'chapter' is distinct from d.item
    ) then
        -- Every column but the key, from the catalog: the document carries them all.
        select string_agg(format('%1$I = excluded.%1$I', a.attname), ', ' order by a.attnum)
        into v_columns
        from pg_catalog.pg_attribute as a
        where a.attrelid = 'bayes.chapter_params'::regclass and a.attnum > 0 and not a.attisdropped
            and a.attname <> 'chapter';
        execute format(
            'insert into bayes.chapter_params as c '
            'select * from jsonb_populate_recordset(null::bayes.chapter_params, $1) '
            'on conflict (chapter) do update set %s '
            'where to_jsonb(c) is distinct from to_jsonb(excluded)',
            v_columns
        ) using (
            select jsonb_agg(d.item || jsonb_build_object('chapter', d.chapter::smallint))
            from jsonb_each(p_document -> 'chapter_params') as d (chapter, item)
        );
        v_changed := v_changed || 'chapter_params'::text;
    end if;
    if exists (select from bayes.chapter_params as c where not p_document -> 'chapter_params' ? c.chapter::text) then
        delete from bayes.chapter_params as c where not p_document -> 'chapter_params' ? c.chapter::text;
        v_changed := array_remove(v_changed, 'chapter_params') || 'chapter_params'::text;
    end if;

    if (select to_jsonb(r) from bayes.rollout as r limit 1) is distinct from p_document -> 'rollout' then
        delete from bayes.rollout;
        insert into bayes.rollout select * from jsonb_populate_record(null::bayes.rollout, p_document -> 'rollout');
        v_changed := v_changed || 'rollout'::text;
    end if;
    return v_changed;
end
$$;

comment on function bayes.apply_params_document is
'Makes this database''s parameters (bayes.params, bayes.chapter_params, bayes.rollout) those of p_document (bayes.params_document''s shape): differing rows updated, missing ones inserted, others deleted, checked by the tables'' triggers (22023 as for any change). Returns the tables it changed. The owner''s: it writes the parameters.';
revoke all on function bayes.apply_params_document from public;

-- The player data, read as the caller's API role. Each returns the single
-- node's rows as they are; the proxy's views (same names) union them.

create or replace function bayes_partition.user_bayesian_state(p_role text, p_claims text)
returns setof public.user_bayesian_state
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query select * from public.user_bayesian_state;
end
$$;

comment on function bayes_partition.user_bayesian_state is
'The rows of public.user_bayesian_state that API role p_role with JWT claims p_claims may read (row-level security as on a single node): what the proxy''s view of the same name gathers (issue 17).';
revoke all on function bayes_partition.user_bayesian_state from public;
grant execute on function bayes_partition.user_bayesian_state to bayes_proxy;

create or replace function bayes_partition.player_event(p_role text, p_claims text)
returns setof bayes.player_event
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query select * from bayes.player_event;
end
$$;

comment on function bayes_partition.player_event is
'The rows of bayes.player_event that API role p_role with JWT claims p_claims may read: what the proxy''s view of the same name gathers (issue 17).';
revoke all on function bayes_partition.player_event from public;
grant execute on function bayes_partition.player_event to bayes_proxy;

create or replace function bayes_partition.event_result(p_role text, p_claims text)
returns setof bayes.event_result
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query select * from bayes.event_result;
end
$$;

comment on function bayes_partition.event_result is
'The rows of bayes.event_result that API role p_role with JWT claims p_claims may read: what the proxy''s view of the same name gathers (issue 17).';
revoke all on function bayes_partition.event_result from public;
grant execute on function bayes_partition.event_result to bayes_proxy;

create or replace function bayes_partition.player_checkpoint(p_role text, p_claims text)
returns setof bayes.player_checkpoint
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query select * from bayes.player_checkpoint;
end
$$;

comment on function bayes_partition.player_checkpoint is
'The rows of bayes.player_checkpoint that API role p_role with JWT claims p_claims may read: what the proxy''s view of the same name gathers (issue 17).';
revoke all on function bayes_partition.player_checkpoint from public;
grant execute on function bayes_partition.player_checkpoint to bayes_proxy;

-- The runs: each partition runs its own bulk decay and retention, so each
-- row comes with the partition's index (its run_id is the partition's own).

create or replace function bayes_partition.decay_run(p_role text, p_claims text)
returns table (partition integer, run bayes.decay_run)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query
    select (select p.partition_index from bayes.partition as p), r
    from bayes.decay_run as r;
end
$$;

comment on function bayes_partition.decay_run is
'The rows of bayes.decay_run that API role p_role may read, each with this partition''s index: what the proxy''s view of the same name gathers (issue 17).';
revoke all on function bayes_partition.decay_run from public;
grant execute on function bayes_partition.decay_run to bayes_proxy;

create or replace function bayes_partition.decay_skipped(p_role text, p_claims text)
returns table (partition integer, run bayes.decay_skipped)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query
    select (select p.partition_index from bayes.partition as p), r
    from bayes.decay_skipped as r;
end
$$;

comment on function bayes_partition.decay_skipped is
'The rows of bayes.decay_skipped that API role p_role may read, each with this partition''s index: what the proxy''s view of the same name gathers (issue 17).';
revoke all on function bayes_partition.decay_skipped from public;
grant execute on function bayes_partition.decay_skipped to bayes_proxy;

create or replace function bayes_partition.retention_run(p_role text, p_claims text)
returns table (partition integer, run bayes.retention_run)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query
    select (select p.partition_index from bayes.partition as p), r
    from bayes.retention_run as r;
end
$$;

comment on function bayes_partition.retention_run is
'The rows of bayes.retention_run that API role p_role may read, each with this partition''s index: what the proxy''s view of the same name gathers (issue 17).';
revoke all on function bayes_partition.retention_run from public;
grant execute on function bayes_partition.retention_run to bayes_proxy;

create or replace function bayes_partition.retention_skipped(p_role text, p_claims text)
returns table (partition integer, run bayes.retention_skipped)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query
    select (select p.partition_index from bayes.partition as p), r
    from bayes.retention_skipped as r;
end
$$;

comment on function bayes_partition.retention_skipped is
'The rows of bayes.retention_skipped that API role p_role may read, each with this partition''s index: what the proxy''s view of the same name gathers (issue 17).';
revoke all on function bayes_partition.retention_skipped from public;
grant execute on function bayes_partition.retention_skipped to bayes_proxy;

-- The shadow analyses: the pairs are per message (each player's on his own
-- partition), the replay per player; the proxy unions the pairs and adds up
-- the replays' counts.

create or replace function bayes_partition.shadow_pairs(
    p_role text, p_claims text, p_from timestamptz, p_to timestamptz
)
returns table (
    user_id uuid,
    message_id text,
    sent_at timestamptz,
    sample text,
    n integer,
    features text[],
    engine_evidence double precision[],
    llm_evidence double precision[],
    engine_vices double precision[],
    llm_vices jsonb,
    engine_mood text,
    llm_mood text
)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return query select * from bayes.shadow_pairs(p_from, p_to);
end
$$;

comment on function bayes_partition.shadow_pairs is
'bayes.shadow_pairs(p_from, p_to) as API role p_role with JWT claims p_claims: this partition''s pairs, which the proxy''s bayes.shadow_pairs unions (issue 17).';
revoke all on function bayes_partition.shadow_pairs from public;
grant execute on function bayes_partition.shadow_pairs to bayes_proxy;

create or replace function bayes_partition.evaluate_policy(
    p_role text, p_claims text, p_overrides jsonb, p_users uuid[], p_from timestamptz, p_to timestamptz
)
returns setof jsonb
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', bayes_partition.caller_role(p_role), true);
    perform set_config('request.jwt.claims', coalesce(p_claims, ''), true);
    return next bayes.evaluate_policy(p_overrides, p_users, p_from, p_to);
end
$$;

comment on function bayes_partition.evaluate_policy is
'bayes.evaluate_policy over this partition''s shadow players, as API role p_role with JWT claims p_claims: one report, whose counts the proxy''s bayes.evaluate_policy adds up (issue 17).';
revoke all on function bayes_partition.evaluate_policy from public;
grant execute on function bayes_partition.evaluate_policy to bayes_proxy;

-- The parameters.

create or replace function bayes_partition.params_document()
returns table (partition integer, document jsonb)
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    perform set_config('role', 'service_role', true);
    return query select (select p.partition_index from bayes.partition as p), bayes.params_document();
end
$$;

comment on function bayes_partition.params_document is
'This partition''s index and parameter document (bayes.params_document), read as service_role: what the proxy''s bayes.params_drift compares with its own (issue 17).';
revoke all on function bayes_partition.params_document from public;
grant execute on function bayes_partition.params_document to bayes_proxy;

create or replace function bayes_partition.set_params(p_document jsonb)
returns table (partition integer, changed text[])
language plpgsql
volatile
-- Definer: the parameters are the owner's to write (no API role may), and
-- the proxy's login must write exactly them, nothing else: this function is
-- all bayes_proxy gets, and the tables' triggers check what it writes.
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    return query select (select p.partition_index from bayes.partition as p), bayes.apply_params_document(p_document);
end
$$;

comment on function bayes_partition.set_params is
'Makes this partition''s parameters those of p_document (bayes.apply_params_document), as the proxy pushes them (issue 17): 22023 for a document the parameter checks refuse, nothing written then. Returns this partition''s index and the tables it changed.';
revoke all on function bayes_partition.set_params from public;
grant execute on function bayes_partition.set_params to bayes_proxy;
