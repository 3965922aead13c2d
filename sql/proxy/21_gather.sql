-- The gathering functions of the analytics across partitions (issue 17; the
-- overview is sql/proxy/20_shelf.sql): who reads as which API role, and
-- RUN ON ALL of the partitions' functions of the same names
-- (sql/functions/96_partition_analytics.sql).

-- Which API role a partition reads as for the caller of a gathering view or
-- function, whose caller must have SELECT on p_relation (42501 otherwise, as
-- a single node refuses him the table). Called from security definer
-- functions, so the caller is the role SET ROLE chose (PostgREST: the JWT's
-- role), else the login. anon, authenticated and service_role read as
-- themselves (row-level security decides on the partition, with the
-- caller's JWT claims); another role reads as service_role when it bypasses
-- row-level security (a superuser, or the bypassrls analyst of
-- docs/analytics.md), and reads no row otherwise: on a single node the
-- policies name only the API roles.
create or replace function bayes_remote.reader_role(p_relation regclass)
returns text
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_caller name := case current_setting('role') when 'none' then session_user else current_setting('role') end;
begin
    if not has_table_privilege(v_caller, p_relation, 'select') then
        raise exception using
            errcode = '42501',
            message = format('permission denied for table %s', (select c.relname from pg_class as c where c.oid = p_relation));
    end if;
    if v_caller in ('anon', 'authenticated', 'service_role') then
        return v_caller;
    end if;
    if (select r.rolsuper or r.rolbypassrls from pg_roles as r where r.rolname = v_caller) then
        return 'service_role';
    end if;
    return null;
end
$$;

comment on function bayes_remote.reader_role is
'The API role a partition reads as for this caller of a gathering view or function (issue 17): anon, authenticated or service_role as set, service_role for another role that bypasses row-level security, null (no row) for one that does not; 42501 when the caller may not select p_relation.';
revoke all on function bayes_remote.reader_role from public;

-- The gathering functions: RUN ON ALL of the partitions' functions of the
-- same names, as the API role the caller reads as (arguments and results
-- travel as text: ISO dates in UTC, whatever the caller's session says).
-- An explicit SELECT: the generated one would cast each column to its type
-- by name on the partition, where bayes_proxy may not look into schema
-- bayes (the enums of bayes.player_event).

create or replace function bayes_remote.user_bayesian_state(p_role text, p_claims text)
returns setof bayes_shelf.user_bayesian_state
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    select * from bayes_partition.user_bayesian_state(p_role, p_claims);
$$;

comment on function bayes_remote.user_bayesian_state is
'Every partition''s rows of public.user_bayesian_state that API role p_role with JWT claims p_claims may read (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.user_bayesian_state from public;

create or replace function bayes_remote.player_event(p_role text, p_claims text)
returns setof bayes_shelf.player_event
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    select * from bayes_partition.player_event(p_role, p_claims);
$$;

comment on function bayes_remote.player_event is
'Every partition''s rows of bayes.player_event that API role p_role with JWT claims p_claims may read (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.player_event from public;

create or replace function bayes_remote.event_result(p_role text, p_claims text)
returns setof bayes_shelf.event_result
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    select * from bayes_partition.event_result(p_role, p_claims);
$$;

comment on function bayes_remote.event_result is
'Every partition''s rows of bayes.event_result that API role p_role with JWT claims p_claims may read (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.event_result from public;

create or replace function bayes_remote.player_checkpoint(p_role text, p_claims text)
returns setof bayes_shelf.player_checkpoint
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    select * from bayes_partition.player_checkpoint(p_role, p_claims);
$$;

comment on function bayes_remote.player_checkpoint is
'Every partition''s rows of bayes.player_checkpoint that API role p_role with JWT claims p_claims may read (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.player_checkpoint from public;

-- The runs: a partition's rows with its index, last.

create or replace function bayes_remote.decay_run(p_role text, p_claims text)
returns table (
    run_id bigint,
    decay_to timestamptz,
    batch_size integer,
    status text,
    players bigint,
    batches integer,
    started_at timestamptz,
    finished_at timestamptz,
    skipped bigint,
    sqlstate text,
    error text,
    partition integer
)
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    select (g.run).*, g.partition from bayes_partition.decay_run(p_role, p_claims) as g;
$$;

comment on function bayes_remote.decay_run is
'Every partition''s rows of bayes.decay_run that API role p_role may read, each with its partition (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.decay_run from public;

create or replace function bayes_remote.decay_skipped(p_role text, p_claims text)
returns table (
    run_id bigint,
    user_id uuid,
    sqlstate text,
    error text,
    skipped_at timestamptz,
    partition integer
)
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    select (g.run).*, g.partition from bayes_partition.decay_skipped(p_role, p_claims) as g;
$$;

comment on function bayes_remote.decay_skipped is
'Every partition''s rows of bayes.decay_skipped that API role p_role may read, each with its partition (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.decay_skipped from public;

create or replace function bayes_remote.retention_run(p_role text, p_claims text)
returns table (
    run_id bigint,
    horizon timestamptz,
    batch_size integer,
    status text,
    players bigint,
    events_deleted bigint,
    results_expired bigint,
    skipped bigint,
    batches integer,
    started_at timestamptz,
    finished_at timestamptz,
    sqlstate text,
    error text,
    partition integer
)
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    select (g.run).*, g.partition from bayes_partition.retention_run(p_role, p_claims) as g;
$$;

comment on function bayes_remote.retention_run is
'Every partition''s rows of bayes.retention_run that API role p_role may read, each with its partition (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.retention_run from public;

create or replace function bayes_remote.retention_skipped(p_role text, p_claims text)
returns table (
    run_id bigint,
    user_id uuid,
    error text,
    skipped_at timestamptz,
    partition integer
)
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    select (g.run).*, g.partition from bayes_partition.retention_skipped(p_role, p_claims) as g;
$$;

comment on function bayes_remote.retention_skipped is
'Every partition''s rows of bayes.retention_skipped that API role p_role may read, each with its partition (RUN ON ALL, issue 17).';
revoke all on function bayes_remote.retention_skipped from public;
