-- Who may read a player's state: the backend (service_role, or a database
-- role such as an analyst's that was granted EXECUTE) or the player himself.

create or replace function bayes.assert_may_read(p_user_id uuid)
returns void
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
begin
    if current_user = 'anon' then
        raise exception 'anonymous callers may not read player state'
            using errcode = '42501';
    end if;
    if current_user = 'authenticated' and (select auth.uid()) is distinct from p_user_id then
        raise exception 'a player may read only his own state'
            using errcode = '42501',
                  hint = 'Call with the service_role key, or with the JWT of player ' || p_user_id || '.';
    end if;
end
$$;

comment on function bayes.assert_may_read is
'Raises 42501 unless the caller is the backend (not anon, not authenticated) or the authenticated player p_user_id.';
revoke all on function bayes.assert_may_read from public;
grant execute on function bayes.assert_may_read to authenticated, service_role;
