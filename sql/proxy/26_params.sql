-- The parameters in the partitioned mode (issue 17): the engine's behaviour
-- lives on the partitions, so every partition must run with the parameters
-- that a designer sets at the proxy (bayes.params, bayes.chapter_params,
-- bayes.rollout; MODEL.md section 9: changing a row changes the next call).
--
-- * The proxy's own tables keep their checks (the single node's triggers):
--   an invalid value is refused at the proxy with the single node's error,
--   and nothing is pushed.
-- * At the commit of a transaction that changed them, a deferred constraint
--   trigger pushes the whole parameter set (bayes.params_document) to every
--   partition (RUN ON ALL bayes_partition.set_params), once per transaction
--   and set of values. A transaction rolled back pushes nothing.
-- * NOT ATOMIC: each partition commits the pushed parameters on its own. If
--   one refuses them or cannot be reached, the commit at the proxy fails
--   (its error names the partition), the proxy keeps the old values, and
--   the partitions that accepted the push before keep the new ones until
--   the next push. bayes.params_drift() lists every difference between the
--   proxy and a partition; bayes.push_params() pushes the proxy's set again
--   (scripts/stack does at every `up`). TRUNCATE is not pushed by the
--   trigger: push_params() after it.

create or replace function bayes_remote.params_documents()
returns table (partition integer, document jsonb)
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
    cluster 'bayes_partitions';
    run on all;
    target bayes_partition.params_document;
$$;

comment on function bayes_remote.params_documents is
'Every partition''s index and parameter document (RUN ON ALL bayes_partition.params_document, issue 17).';
revoke all on function bayes_remote.params_documents from public;

create or replace function bayes_remote.set_params(p_document jsonb)
returns table (partition integer, changed text[])
language plproxy
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
    cluster 'bayes_partitions';
    run on all;
    target bayes_partition.set_params;
$$;

comment on function bayes_remote.set_params is
'Makes every partition''s parameters those of p_document (RUN ON ALL bayes_partition.set_params, issue 17); each partition commits on its own.';
revoke all on function bayes_remote.set_params from public;

create or replace function bayes.push_params()
returns table (partition integer, changed text[])
language sql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select s.partition, s.changed
    from bayes_remote.set_params(bayes.params_document()) as s
    order by s.partition
$$;

comment on function bayes.push_params is
'Pushes the proxy''s parameters (bayes.params, bayes.chapter_params, bayes.rollout) to every partition (issue 17): one row per partition with the tables it changed (empty: it had them already). Not atomic: each partition commits on its own. The owner''s.';
revoke all on function bayes.push_params from public;

-- A parameter document as (item, value) pairs: params.<name> (its value) and
-- params.<name>.description, chapter_params.<chapter>.<column>,
-- rollout.<column>.
create or replace function bayes_remote.params_items(p_document jsonb)
returns table (item text, value jsonb)
language sql
immutable
security invoker
set search_path = pg_catalog, pg_temp
as $$
    select 'params.' || p.key, p.value -> 'value'
    from jsonb_each(p_document -> 'params') as p
    union all
    select 'params.' || p.key || '.description', p.value -> 'description'
    from jsonb_each(p_document -> 'params') as p
    union all
    select 'chapter_params.' || c.key || '.' || x.key, x.value
    from jsonb_each(p_document -> 'chapter_params') as c
    cross join lateral jsonb_each(c.value) as x
    union all
    select 'rollout.' || x.key, x.value
    from jsonb_each(case jsonb_typeof(p_document -> 'rollout') when 'object' then p_document -> 'rollout' end) as x
$$;

comment on function bayes_remote.params_items is
'A parameter document (bayes.params_document) as (item, value) pairs: params.<name>, params.<name>.description, chapter_params.<chapter>.<column>, rollout.<column>.';
revoke all on function bayes_remote.params_items from public;

create or replace function bayes.params_drift()
returns table (partition integer, item text, proxy_value jsonb, partition_value jsonb)
language sql
volatile
security invoker
set search_path = pg_catalog, pg_temp
as $$
    with docs as materialized (
        select d.partition, d.document from bayes_remote.params_documents() as d
    ),

    proxy as materialized (
        select d.partition, i.item, i.value
        from docs as d
        cross join bayes_remote.params_items(bayes.params_document()) as i
    ),

    remote as (
        select d.partition, i.item, i.value
        from docs as d
        cross join lateral bayes_remote.params_items(d.document) as i
    )

    select coalesce(x.partition, r.partition), coalesce(x.item, r.item), x.value, r.value
    from proxy as x
    full join remote as r on x.partition = r.partition and x.item = r.item
    where x.value is distinct from r.value
    order by 1, 2
$$;

comment on function bayes.params_drift is
'Where a partition''s parameters differ from the proxy''s (issue 17): one row per partition and item (params.<name>, params.<name>.description, chapter_params.<chapter>.<column>, rollout.<column>) with both values (null: missing). No row: every partition runs with the proxy''s parameters. bayes.push_params() ends a drift. The owner''s.';
revoke all on function bayes.params_drift from public;

-- The constraint triggers' function: at the commit of a transaction that
-- changed the parameters, push them (once per set of values: the digest of
-- the last set pushed in this transaction is kept in a local setting).
create or replace function bayes_remote.push_params_at_commit()
returns trigger
language plpgsql
volatile
-- Definer: whoever may change the parameters at the proxy makes every
-- partition take them; bayes_remote is not his to call.
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_document jsonb;
    v_digest text;
    v_sqlstate text;
    v_message text;
    v_detail text;
begin
    if not bayes_remote.serving() then
        return null;  -- migrations at the proxy: scripts/stack pushes after them
    end if;
    v_document := bayes.params_document();
    v_digest := md5(v_document::text);
    if current_setting('bayes.params_pushed', true) is not distinct from v_digest then
        return null;
    end if;
    begin
        perform bayes_remote.set_params(v_document);
    exception when others then
        get stacked diagnostics v_sqlstate = returned_sqlstate, v_message = message_text, v_detail = pg_exception_detail;
        raise exception using
            errcode = v_sqlstate,
            message = v_message,
            detail = v_detail,
            hint = 'Nothing changed at the proxy; the partitions that took the new parameters before keep them '
            || '(each commits on its own): bayes.params_drift() lists the differences, bayes.push_params() '
            || 'pushes the proxy''s parameters again.';
    end;
    perform set_config('bayes.params_pushed', v_digest, true);
    return null;
end
$$;

comment on function bayes_remote.push_params_at_commit is
'Deferred constraint trigger of bayes.params, bayes.chapter_params and bayes.rollout at the proxy (issue 17): pushes the parameters to every partition when the transaction commits, once per set of values; a partition''s refusal fails the commit, naming it.';
revoke all on function bayes_remote.push_params_at_commit from public;

set local client_min_messages = warning;

drop trigger if exists params_push on bayes.params;
create constraint trigger params_push
after insert or update or delete on bayes.params
deferrable initially deferred
for each row execute function bayes_remote.push_params_at_commit();

drop trigger if exists chapter_params_push on bayes.chapter_params;
create constraint trigger chapter_params_push
after insert or update or delete on bayes.chapter_params
deferrable initially deferred
for each row execute function bayes_remote.push_params_at_commit();

drop trigger if exists rollout_push on bayes.rollout;
create constraint trigger rollout_push
after insert or update or delete on bayes.rollout
deferrable initially deferred
for each row execute function bayes_remote.push_params_at_commit();

-- At every `up`: the partitions take the proxy's parameters.
do $push$
begin
    perform bayes.push_params();
end
$push$;
