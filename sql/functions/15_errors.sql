-- Errors with the SQLSTATEs of MODEL.md section 9 that PostgREST also answers
-- with the right HTTP status. PostgREST maps class P0 to 500, so a P0002
-- (unknown player) raised during an API request is raised the PostgREST way
-- (SQLSTATE PGRST, the error as JSON): the client gets 404 with "code":
-- "P0002". Outside PostgREST (psql, the app server's SQL) it is a plain P0002.

create or replace function bayes.raise_error(p_sqlstate text, p_message text, p_hint text default null)
returns void
language plpgsql
stable
security invoker
set search_path = pg_catalog, pg_temp
as $$
declare
    v_http_status integer := case p_sqlstate when 'P0002' then 404 end;
begin
    if v_http_status is not null and coalesce(current_setting('request.method', true), '') <> '' then
        raise sqlstate 'PGRST' using
            message = json_build_object(
                'code', p_sqlstate, 'message', p_message, 'details', null, 'hint', p_hint
            )::text,
            detail = json_build_object('status', v_http_status, 'headers', json_build_object())::text;
    end if;
    if p_hint is null then
        raise exception using errcode = p_sqlstate, message = p_message;
    end if;
    raise exception using errcode = p_sqlstate, message = p_message, hint = p_hint;
end
$$;

comment on function bayes.raise_error is
'Raises p_sqlstate with p_message (and p_hint); inside a PostgREST request a P0002 becomes HTTP 404 with code P0002.';
revoke all on function bayes.raise_error from public;
grant execute on function bayes.raise_error to authenticated, service_role;
