-- The health signals of the partitioned mode (issue 17), the proxy's
-- plumbing: the partitions of the cluster, the RUN ON ALL that gathers each
-- one's parts of the signals (bayes_partition.health_parts,
-- sql/functions/97_partition_health.sql), and which partitions answer when it
-- fails. sql/proxy/31_health.sql combines the parts into bayes.health;
-- sql/proxy/32_health_snapshot.sql records them.
--
-- Applied by scripts/stack to the proxy with every file of sql/proxy/, in
-- one transaction, on every `up`: every object is created or replaced (the
-- types dropped and created again, with what depends on them: the functions
-- of this file and the next are created again after them).

-- The partitions of the cluster, as the foreign server lists them.
create or replace function bayes_remote.partitions()
returns table (partition_index integer, connection text)
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select substr(o.option_name, length('partition_') + 1)::integer, o.option_value
    from pg_catalog.pg_foreign_server as s
    cross join lateral pg_catalog.pg_options_to_table(s.srvoptions) as o
    where s.srvname = 'bayes_partitions'
        and o.option_name ~ '^partition_[0-9]+$'
    order by 1
$$;

comment on function bayes_remote.partitions is
'The partitions of the PL/Proxy cluster bayes_partitions (issue 17): each one''s index and connection string, from the options partition_<i> of the foreign server.';
revoke all on function bayes_remote.partitions from public;

drop type if exists bayes_remote.health_part cascade;
create type bayes_remote.health_part as (
    partition_index integer,
    kind text,
    window_s integer,
    messages bigint,
    granted bigint,
    budgeted bigint,
    refused bigint,
    observed bigint,
    no_signal bigint,
    timed bigint,
    outcome_hits bigint [],
    players bigint,
    variance_sum double precision,
    db_time_us integer,
    decay_lag_s double precision,
    retention_lag_s double precision,
    event_log_bytes bigint,
    state_table_bytes bigint,
    recorded_at timestamptz,
    event_id bigint,
    sample text,
    message bytea,
    answer bytea
);

comment on type bayes_remote.health_part is
'A row of bayes_partition.health_parts, what a partition returns to the proxy''s bayes.health (issue 17): kind window, latency, pair or instant.';

drop type if exists bayes_remote.health_measure cascade;
create type bayes_remote.health_measure as (
    signal text,
    window_s integer,
    label text,
    value double precision,
    samples bigint
);

comment on type bayes_remote.health_measure is
'A signal of the proxy''s bayes.health before its thresholds: signal, window_s, label, value, samples (issue 17).';

create or replace function bayes_remote.health_parts(
    p_now timestamptz,
    p_windows_s integer[],
    p_agreement_since timestamptz,
    p_agreement_pairs bigint
)
returns setof bayes_remote.health_part
language plproxy
volatile
security invoker
-- Arguments and results travel as text: ISO and UTC whatever the caller's
-- session says.
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on all;
    target bayes_partition.health_parts;
$$;

comment on function bayes_remote.health_parts is
'Runs bayes_partition.health_parts on every partition at once (RUN ON ALL), the parts of the proxy''s bayes.health (issue 17).';
revoke all on function bayes_remote.health_parts from public;

create or replace function bayes_remote.partition_index(p_partition integer)
returns integer
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
as $$
    cluster 'bayes_partitions';
    run on p_partition;
    select bayes_partition.partition_index();
$$;

comment on function bayes_remote.partition_index is
'Asks partition p_partition of the cluster which partition it is (bayes_partition.partition_index, issue 17); raises when it does not answer.';
revoke all on function bayes_remote.partition_index from public;

-- Which partitions answer, one call each (not RUN ON ALL: one partition
-- that does not answer fails the whole call); after a RUN ON ALL failed.
create or replace function bayes_remote.partitions_answering()
returns table (partition_index integer, connection text, answered boolean, problem text)
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_partition record;
    v_as integer;
begin
    for v_partition in select p.partition_index, p.connection from bayes_remote.partitions() as p loop
        partition_index := v_partition.partition_index;
        connection := v_partition.connection;
        begin
            v_as := bayes_remote.partition_index(v_partition.partition_index);
            answered := v_as = v_partition.partition_index;
            problem := case
                when not answered then format(
                    'it answers as partition %s: the foreign server bayes_partitions lists the partitions out of order',
                    v_as
                )
            end;
        exception when others then
            answered := false;
            problem := rtrim(regexp_replace(sqlerrm, '^PL/Proxy function \S+\(\d+\): (\[[^]]*\] )?', ''), e' \n');
        end;
        return next;
    end loop;
end
$$;

comment on function bayes_remote.partitions_answering is
'Each partition of the cluster asked in turn which partition it is (issue 17): answered true when it answers as itself; otherwise problem says what happened (the connection''s error, or the partition it answers as).';
revoke all on function bayes_remote.partitions_answering from public;

-- The error of a partition that does not answer, naming each one.
create or replace function bayes_remote.raise_partitions_down(p_what text)
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_count integer := (select count(*) from bayes_remote.partitions());
    v_down text;
    v_failed integer;
    v_detail text;
begin
    select
        string_agg(a.partition_index::text, ', ' order by a.partition_index),
        count(*),
        string_agg(format('partition %s (%s): %s', a.partition_index, a.connection, a.problem), e'\n' order by a.partition_index)
    into v_down, v_failed, v_detail
    from bayes_remote.partitions_answering() as a
    where not a.answered;
    if v_failed > 0 then
        raise exception using
            errcode = '08006',
            message = format(
                '%s: %s %s of %s %s not answer',
                p_what, case when v_failed = 1 then 'partition' else 'partitions' end, v_down, v_count,
                case when v_failed = 1 then 'does' else 'do' end
            ),
            detail = v_detail,
            hint = 'Every signal adds up all the partitions: none is computed without one. Start the partition or'
            || ' repair its connection (the foreign server bayes_partitions); meanwhile the snapshot job records'
            || ' partition_up 0 for it (bayes.alerts()).';
    end if;
end
$$;

comment on function bayes_remote.raise_partitions_down is
'Raises 08006 naming every partition that does not answer as itself (bayes_remote.partitions_answering), message prefixed by p_what, detail one line per partition with its connection and error; returns when all answer (issue 17).';
revoke all on function bayes_remote.raise_partitions_down from public;
