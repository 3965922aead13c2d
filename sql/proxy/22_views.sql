-- The views of the analytics across partitions (issue 17; the overview is
-- sql/proxy/20_shelf.sql), and no bulk decay or retention at the proxy.

-- Writes to the views. On a single node the API roles may not write these
-- tables (42501), except service_role's DELETE of a player's state, which
-- deletes his events with it (what replaces auth.users' cascade here). A
-- view without an INSTEAD OF trigger answers any write with 55000 ("cannot
-- update view") before the privileges are checked; with one, the privileges
-- are checked first (42501, as on a single node), and what the trigger does
-- is left to a role that holds the privilege: a state's DELETE is routed to
-- the player's partition, any other write is refused.
create or replace function bayes_remote.refuse_view_write()
returns trigger
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception using
        errcode = '42501',
        message = format('%s.%s at the proxy is read-only', tg_table_schema, tg_table_name),
        hint = 'The RPCs write the engine''s tables, on the partitions; a player''s state is deleted with DELETE.';
end
$$;

comment on function bayes_remote.refuse_view_write is
'INSTEAD OF trigger of the proxy''s gathering views (issue 17): 42501, they are read-only.';
revoke all on function bayes_remote.refuse_view_write from public;

create or replace function bayes_remote.delete_player(p_role text, p_claims text, p_user_id uuid)
returns bigint
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
set datestyle = 'ISO'
set timezone = 'UTC'
set client_min_messages = 'warning'
as $$
    cluster 'bayes_partitions';
    run on hashtext(p_user_id::text);
    target bayes_partition.delete_player;
$$;

comment on function bayes_remote.delete_player is
'Runs bayes_partition.delete_player on the partition of p_user_id (issue 17).';
revoke all on function bayes_remote.delete_player from public;

create or replace function bayes_remote.delete_player_row()
returns trigger
language plpgsql
volatile
-- Definer: so that no API role may execute bayes_remote.delete_player,
-- whose role and claims are arguments; the caller is read as the RPCs read
-- him (bayes_remote.caller_role), after PostgreSQL checked his DELETE on
-- the view.
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_deleted bigint;
    v_sqlstate text;
    v_message text;
    v_detail text;
    v_hint text;
begin
    begin
        v_deleted := bayes_remote.delete_player(
            bayes_remote.caller_role(), current_setting('request.jwt.claims', true), old.user_id
        );
    exception when others then
        get stacked diagnostics
            v_sqlstate = returned_sqlstate, v_message = message_text,
            v_detail = pg_exception_detail, v_hint = pg_exception_hint;
        perform bayes_remote.raise_partition_error(v_sqlstate, v_message, v_detail, v_hint);
    end;
    if v_deleted = 0 then
        return null;
    end if;
    return old;
end
$$;

comment on function bayes_remote.delete_player_row is
'INSTEAD OF DELETE trigger of the proxy''s view public.user_bayesian_state (issue 17): deletes the player on his partition, as the caller''s API role (his events go with his state, by the partition''s trigger). Not atomic with the proxy''s transaction: the partition commits at once.';
revoke all on function bayes_remote.delete_player_row from public;

-- Serves each gathered table's view at home: a reader bayes_remote.read_<name>()
-- (security definer, since only it may call the gathering function, whose
-- role and claims are arguments) and the view over it, granted SELECT
-- exactly as the proxy's own table is (the migrations' grants), then the
-- views that read the table defined again over the view. The readers are
-- written here from the gathering functions' results, one pattern for all.
create or replace function bayes_remote.serve_views()
returns void
language plpgsql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    g record;
    v_gather regprocedure;
    v_reader text;
    v_home text;
    v_grantee text;
begin
    for g in select * from bayes_remote.gathered() loop
        v_gather := format('bayes_remote.%I(text, text)', g.table_name)::regprocedure;
        v_reader := format('bayes_remote.%I', 'read_' || g.table_name);
        v_home := format('%I.%I', g.home_schema, g.table_name);
        execute format(
            $f$
            create or replace function %1$s()
            returns %2$s
            language plpgsql
            stable
            security definer
            set search_path = pg_catalog, pg_temp
            as $body$
            declare
                v_role text := bayes_remote.reader_role(%3$L);
            begin
                if v_role is not null then
                    return query select * from %4$s(v_role, current_setting('request.jwt.claims', true));
                end if;
            end
            $body$
            $f$,
            v_reader, pg_get_function_result(v_gather), v_home, v_gather::oid::regproc
        );
        execute format(
            'comment on function %s() is %L',
            v_reader,
            format(
                'The rows of %s on every partition that the caller may read (issue 17): those of the API role he'
                ' is (bayes_remote.reader_role), gathered by %s. Security definer: only it may pass a role and'
                ' claims to the partitions. EXECUTE to public: the view %s calls it with its caller''s rights, and'
                ' it checks that the caller may select that view.',
                v_home, v_gather::oid::regproc, v_home
            )
        );
        execute format('revoke all on function %s() from public', v_reader);
        execute format('grant execute on function %s() to public', v_reader);

        execute format(
            'create or replace view %s with (security_invoker = true) as select * from %s()', v_home, v_reader
        );
        execute format(
            'comment on view %s is %L',
            v_home,
            format(
                'The partitioned mode (issue 17): every partition''s rows of %s (RUN ON ALL through %s)%s, those'
                ' the caller may read as on a single node (row-level security on each partition). Read-only; its'
                ' rows all travel to the proxy (docs/analytics.md, "The partitioned mode").',
                v_home, v_reader,
                case when g.per_partition then ', each with its partition (run ids are per partition)' else '' end
            )
        );
        if v_home = 'public.user_bayesian_state' then
            execute format(
                'create or replace trigger read_only instead of insert or update on %s'
                ' for each row execute function bayes_remote.refuse_view_write()',
                v_home
            );
            execute format(
                'create or replace trigger delete_on_partition instead of delete on %s'
                ' for each row execute function bayes_remote.delete_player_row()',
                v_home
            );
        else
            execute format(
                'create or replace trigger read_only instead of insert or update or delete on %s'
                ' for each row execute function bayes_remote.refuse_view_write()',
                v_home
            );
        end if;
        execute format('revoke all on table %s from public, anon, authenticated, service_role', v_home);
        for v_grantee in
            select a.grantee::regrole::text
            from pg_class as c
            cross join lateral aclexplode(c.relacl) as a
            where
                c.oid = format('bayes_shelf.%I', g.table_name)::regclass
                and a.privilege_type = 'SELECT'
                and a.grantee <> c.relowner
                and a.grantee <> 0
        loop
            execute format('grant select on table %s to %s', v_home, v_grantee);
        end loop;
        -- and DELETE as on the shelved table (service_role's, on the states)
        for v_grantee in
            select a.grantee::regrole::text
            from pg_class as c
            cross join lateral aclexplode(c.relacl) as a
            where
                c.oid = format('bayes_shelf.%I', g.table_name)::regclass
                and a.privilege_type = 'DELETE'
                and a.grantee <> c.relowner
                and a.grantee <> 0
        loop
            execute format('grant delete on table %s to %s', v_home, v_grantee);
        end loop;
    end loop;
    perform bayes_remote.redefine_dependents();
end
$$;

comment on function bayes_remote.serve_views is
'Serves the views of the gathered tables at home (after bayes_remote.shelve_tables): their readers bayes_remote.read_<name>(), the views granted SELECT as the shelved tables are, and the views that read them defined again (issue 17).';
revoke all on function bayes_remote.serve_views from public;

do $serve$
begin
    perform bayes_remote.serve_views();
end
$serve$;

-- Nothing to decay or fold at the proxy: each partition runs its own jobs.
do $cron$
begin
    if to_regclass('cron.job') is not null then
        perform cron.unschedule(j.jobid)
        from cron.job as j
        where j.jobname in ('bayes-run-decay', 'bayes-run-retention') and j.database = current_database();
    end if;
end
$cron$;
