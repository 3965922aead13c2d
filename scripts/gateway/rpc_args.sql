-- The argument table of the gateway's guard (scripts/gateway/rpc_guard.lua),
-- from the live catalog: every function of schema public (what PostgREST
-- exposes as /rpc/<name>), each named input argument, its SQL type and the JSON
-- type it takes. scripts/stack writes the result to $STACK_DIR/gateway/rpc_args.json
-- whenever `up` runs, and reloads nginx when it changed.
--
--   {"<function>": {"<argument>": {"sql": "<SQL type>", "json": "<JSON type>"}}}
--
-- json: string (text and other string types, uuid, dates, times, intervals,
-- enums), number (double precision, real, numeric), integer (smallint,
-- integer, bigint), boolean, or any (json, jsonb, and every other type: the
-- database checks them). Domains count as their base type. Overloaded
-- functions: an argument whose overloads disagree takes any.
select coalesce(json_object_agg(fn, args order by fn), '{}')
from (
    select
        fn,
        json_object_agg(arg, json_build_object('sql', sql_type, 'json', json_type) order by arg) as args
    from (
        select
            p.proname as fn,
            a.name as arg,
            string_agg(distinct format_type(a.typ, null), ' or ') as sql_type,
            case when count(distinct k.json_type) = 1 then min(k.json_type) else 'any' end as json_type
        from pg_catalog.pg_proc as p
        cross join lateral unnest(
            coalesce(p.proallargtypes, p.proargtypes::oid []),
            p.proargnames,
            coalesce(p.proargmodes, array_fill('i'::"char", array[p.pronargs]))
        ) as a (typ, name, mode)
        inner join pg_catalog.pg_type as t on a.typ = t.oid
        inner join pg_catalog.pg_type as b on b.oid = (case when t.typtype = 'd' then t.typbasetype else t.oid end)
        cross join lateral (
            select case
                when b.typname in ('json', 'jsonb') then 'any'
                when b.typname = 'bool' then 'boolean'
                when b.typname in ('int2', 'int4', 'int8') then 'integer'
                when b.typname in ('float4', 'float8', 'numeric') then 'number'
                when b.typcategory in ('S', 'D', 'T') or b.typname = 'uuid' or b.typtype = 'e' then 'string'
                else 'any'
            end as json_type
        ) as k
        where
            p.pronamespace = 'public'::regnamespace
            and a.mode in ('i', 'b', 'v')
            and a.name is not null and a.name <> ''
        group by p.proname, a.name
    ) as per_argument
    group by fn
) as per_function;
