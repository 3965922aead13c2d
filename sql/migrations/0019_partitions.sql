-- The partitioned mode (issue 17): the engine on 2^k PL/Proxy partitions.
--
-- Every node, a single one and each partition, runs these same migrations.
-- A database becomes partition i of n once, with bayes.become_partition(i, n)
-- (the operator's step, as superuser): from then on it holds only the players
-- whose hashtext(user_id::text) & (n - 1) = i, the rows PL/Proxy's
-- `RUN ON hashtext(p_user_id::text)` sends it, and no longer needs
-- Supabase's auth.users (a player exists when he first writes). A database
-- that never calls it is the single node it always was.
--
-- The proxy reaches a partition as the login role bayes_proxy through the
-- functions of schema bayes_partition (sql/functions/95_partition.sql): each
-- takes the caller's API role and JWT claims, as the proxy decided them, and
-- runs today's RPC as that role with those claims.

-- Which partition this database is: no row on a single node.
create table bayes.partition (
    singleton boolean primary key default true check (singleton),
    partition_index integer not null,
    partition_count integer not null,
    became_at timestamptz not null default now(),
    constraint partition_count_power_of_two
    check (partition_count >= 1 and partition_count & (partition_count - 1) = 0),
    constraint partition_index_in_range
    check (partition_index >= 0 and partition_index < partition_count)
);

comment on table bayes.partition is
'Which partition of the partitioned mode this database is (issue 17): one row (partition_index, partition_count) written by bayes.become_partition, none on a single node. Its players are those with hashtext(user_id::text) & (partition_count - 1) = partition_index.';

alter table bayes.partition enable row level security;
create policy partition_readable on bayes.partition for select to service_role using (true);
revoke all on bayes.partition from public, anon, authenticated, service_role;
grant select on bayes.partition to service_role;

-- The role the proxy logs in as. NOLOGIN here: a partition's operator gives
-- it LOGIN and a password (docs/partitions.md); on a single node nobody can
-- use it.
do $roles$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'bayes_proxy') then
        create role bayes_proxy nologin noinherit;
    end if;
end
$roles$;

create schema bayes_partition;
comment on schema bayes_partition is
'The entry points of the partitioned mode (issue 17): what the proxy calls on a partition, as role bayes_proxy. Not exposed by PostgREST.';
revoke all on schema bayes_partition from public;
grant usage on schema bayes_partition to bayes_proxy;
