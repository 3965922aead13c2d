-- The analytics across partitions (issue 17, docs/analytics.md, "The
-- partitioned mode"): at the proxy, the player data objects that the
-- document queries are views with the same names and columns over PL/Proxy
-- functions that gather every partition's rows with RUN ON ALL
-- (sql/functions/96_partition_analytics.sql is the partitions' side). So
-- every query of the document runs unchanged at the proxy, and its counts,
-- sums, distributions and percentiles are computed over all the players'
-- rows at once, as on a single node (never combined from per-partition
-- figures). The functions of a state (bayes.readiness_probability, ...) and
-- bayes.player_summary run at the proxy, on the rows a query keeps, with the
-- proxy's parameters, which it pushes to every partition
-- (sql/proxy/26_params.sql).
--
-- Gathered: public.user_bayesian_state, bayes.player_event,
-- bayes.event_result, bayes.player_checkpoint (the same columns), and the
-- runs bayes.decay_run, bayes.decay_skipped, bayes.retention_run,
-- bayes.retention_skipped with a last column `partition`: each partition
-- runs its own bulk decay and retention, and numbers its own runs.
--
-- The proxy's own tables of those names (empty: its players live on the
-- partitions) move to schema bayes_shelf, out of the views' way. The
-- migrations expect them at home: scripts/stack puts them back
-- (bayes_remote.unshelve_tables) before it applies pending migrations to the
-- proxy, and this file moves them out again after (then 21_gather.sql
-- defines the gathering functions and 22_views.sql the views). Views that
-- read a moved table (bayes.player_summary) are defined again from their own
-- text, so that they read the view of the same name.
--
-- Applied by scripts/stack after the migrations and sql/proxy/10_rpc.sql, in
-- the same transaction, on every `up`: idempotent.

set local client_min_messages = warning;

create schema if not exists bayes_shelf;
comment on schema bayes_shelf is
'The proxy''s own (empty) tables of the player data, moved out of the way of the views of the same names that gather the partitions'' rows (issue 17, sql/proxy/20_shelf.sql). Nobody reads them.';
revoke all on schema bayes_shelf from public;

-- The text of the views that read a table while it moves, to define them
-- again once the view that replaces the table stands.
create table if not exists bayes_shelf.dependent_view (
    view_name text primary key,
    view_options text[],
    definition text not null
);
comment on table bayes_shelf.dependent_view is
'Views reading a gathered table or its view while it moves (bayes_remote.shelve_tables, unshelve_tables): their options and text, to define them again over what replaces it.';
revoke all on table bayes_shelf.dependent_view from public;

create or replace function bayes_remote.gathered()
returns table (home_schema text, table_name text, per_partition boolean)
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    values
        ('public', 'user_bayesian_state', false),
        ('bayes', 'player_event', false),
        ('bayes', 'event_result', false),
        ('bayes', 'player_checkpoint', false),
        ('bayes', 'decay_run', true),
        ('bayes', 'decay_skipped', true),
        ('bayes', 'retention_run', true),
        ('bayes', 'retention_skipped', true)
$$;

comment on function bayes_remote.gathered is
'The tables whose rows the proxy gathers from the partitions (issue 17): their schema on a single node, their name, and whether each row comes with its partition (the runs).';
revoke all on function bayes_remote.gathered from public;

-- Records the views that read relation p_relation (their text names it
-- qualified), to define them again later (bayes_remote.redefine_dependents).
create or replace function bayes_remote.record_dependents(p_relation regclass)
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    insert into bayes_shelf.dependent_view (view_name, view_options, definition)
    select distinct r.ev_class::regclass::text, c.reloptions, pg_get_viewdef(r.ev_class)
    from pg_depend as d
    inner join pg_rewrite as r on d.classid = 'pg_rewrite'::regclass and d.objid = r.oid
    inner join pg_class as c on r.ev_class = c.oid
    where d.refclassid = 'pg_class'::regclass and d.refobjid = p_relation and r.ev_class <> p_relation
    on conflict (view_name) do nothing;
end
$$;

comment on function bayes_remote.record_dependents is
'Keeps the options and text of the views that read p_relation in bayes_shelf.dependent_view.';
revoke all on function bayes_remote.record_dependents from public;

create or replace function bayes_remote.redefine_dependents()
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v record;
begin
    for v in delete from bayes_shelf.dependent_view returning * loop
        execute format(
            'create or replace view %s %s as %s',
            v.view_name,
            case when v.view_options is not null then format('with (%s)', array_to_string(v.view_options, ', ')) else '' end,
            v.definition
        );
    end loop;
end
$$;

comment on function bayes_remote.redefine_dependents is
'Defines again, from their text, the views bayes_remote.record_dependents recorded: their names now resolve to what stands at home (a gathered table''s view, or the table itself).';
revoke all on function bayes_remote.redefine_dependents from public;

-- Moves each gathered table that is at home to bayes_shelf, after recording
-- the views that read it.
create or replace function bayes_remote.shelve_tables()
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    g record;
    v_home regclass;
begin
    for g in select * from bayes_remote.gathered() loop
        v_home := to_regclass(format('%I.%I', g.home_schema, g.table_name));
        if v_home is not null and (select c.relkind from pg_class as c where c.oid = v_home) = 'r' then
            perform bayes_remote.record_dependents(v_home);
            execute format('alter table %s set schema bayes_shelf', v_home);
        end if;
    end loop;
end
$$;

comment on function bayes_remote.shelve_tables is
'Moves the proxy''s own gathered tables to schema bayes_shelf (their views take their names), recording the views that read them.';
revoke all on function bayes_remote.shelve_tables from public;

-- What scripts/stack runs before it applies pending migrations to the proxy:
-- each gathered table back at home, the views that read its view defined
-- again over it, the views and the functions returning its rows dropped.
-- sql/proxy/, run after the migrations, serves the views again.
create or replace function bayes_remote.unshelve_tables()
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    g record;
    f regprocedure;
    v_view regclass;
    v_shelved regclass;
begin
    for g in select * from bayes_remote.gathered() loop
        v_shelved := to_regclass(format('bayes_shelf.%I', g.table_name));
        continue when v_shelved is null;
        v_view := to_regclass(format('%I.%I', g.home_schema, g.table_name));
        if v_view is not null and (select c.relkind from pg_class as c where c.oid = v_view) <> 'v' then
            raise exception 'both %.% and bayes_shelf.% are tables', g.home_schema, g.table_name, g.table_name;
        end if;
        if v_view is not null then
            perform bayes_remote.record_dependents(v_view);
            execute format('alter view %s rename to %I', v_view, g.table_name || '__gathered');
        end if;
        execute format('alter table %s set schema %I', v_shelved, g.home_schema);
        perform bayes_remote.redefine_dependents();
        execute format('drop view if exists %I.%I', g.home_schema, g.table_name || '__gathered');
        -- What returns its rows would keep a migration from dropping the table.
        for f in
            select p.oid::regprocedure
            from pg_proc as p
            where
                p.pronamespace = 'bayes_remote'::regnamespace
                and p.prorettype = (select c.reltype from pg_class as c where c.oid = v_shelved)
        loop
            execute format('drop function %s', f);
        end loop;
    end loop;
end
$$;

comment on function bayes_remote.unshelve_tables is
'Before migrations are applied to the proxy (scripts/stack): puts the proxy''s own gathered tables back at home and drops their views and the functions returning their rows; sql/proxy/20_shelf.sql to 22_views.sql serve them again.';
revoke all on function bayes_remote.unshelve_tables from public;

do $shelve$
begin
    perform bayes_remote.shelve_tables();
end
$shelve$;

-- Whether the views are served (the tables shelved): not while scripts/stack
-- applies migrations to the proxy.
create or replace function bayes_remote.serving()
returns boolean
language sql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select to_regclass('bayes_shelf.user_bayesian_state') is not null
$$;

comment on function bayes_remote.serving is
'Whether the proxy serves the gathering views (its own tables shelved), as it does but while migrations are applied to it (issue 17).';
revoke all on function bayes_remote.serving from public;
