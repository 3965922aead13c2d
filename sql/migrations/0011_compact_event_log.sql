-- The compact event log and the idempotency window (issue 15).
--
-- Every message appends one event, for ever (until the retention horizon):
-- what an event holds is paid per message. The old row held the whole
-- result returned to the caller (about 1.3 KB of jsonb) and the input as
-- jsonb (about 480 B): about 2.2 KB a message on disk with its two indexes.
-- The new row keeps what replay, idempotency and the shadow tools need:
--
-- * the order (event_id, the primary key: appended at the right edge of its
--   index), the player (user_id: an index whose duplicates PostgreSQL stores
--   as posting lists, a few bytes an event), the time, the kind;
-- * the identity of the caller's message id: message_key, md5 of (player,
--   kind, message id) as a uuid, 16 bytes in the unique index whatever the
--   length of the id; the id itself stays in the row (shadow_pairs returns
--   it, and analysts look messages up by it) but in no index;
-- * the input packed by bayes_engine.eventlog (bytea, about 80 bytes; the
--   JSON form: bayes.event_input);
-- * the few facts of a message's result that the shadow tools and the
--   analytics read after the result is gone: the mode, n, the mood, the
--   fallback reason and whether the LLM was needed.
--
-- The first result of an input with a message id lives in bayes.event_result
-- for the idempotency window (bayes.params idempotency_window_h, 72 h), then
-- bayes.expire_event_results deletes it: a separate table, appended in the
-- same statement as the event and deleted by ranges of its time-ordered key,
-- because a result column nulled later would rewrite every event once.
--
-- Old events: the table is renamed bayes.player_event_v1 here, and converted
-- by sql/functions/98_event_log_upgrade.sql, in the functions migration that
-- follows this one: the packing is bayes_engine.eventlog's (PL/Python), which
-- a schema migration runs before it is installed. Between the two
-- migrations of a push no writer may run (the RPCs of the previous code
-- name the old columns): push both together, as `supabase db push` does.

create type bayes.event_kind as enum ('message', 'llm_scores', 'outcome', 'chapter');
comment on type bayes.event_kind is
'The writer that logged an event: bayes_process_message, bayes_apply_llm_scores, bayes_record_outcome, bayes_advance_chapter.';

create type bayes.rollout_mode as enum ('bayes', 'shadow');
comment on type bayes.rollout_mode is
'A player''s mode under bayes.rollout (issue 14): bayes (the engine decides) or shadow (the LLM is asked on every message).';

-- The names of MODEL.md section 1 (bayes_engine.vocab.MOODS), in their order.
create type bayes.mood as enum ('content', 'playful', 'anxious', 'avoidant', 'defensive', 'withdrawn');
comment on type bayes.mood is
'The six HMM moods of MODEL.md section 1, in their order.';

-- Section 7's reasons (bayes_engine.model.FALLBACK_REASONS), then the two of
-- the v1 engine that its events carry.
create type bayes.fallback_reason as enum (
    'cold_start', 'no_signals', 'uncertain', 'audit', 'bayesian_sufficient', 'high_variance', 'critical_zone'
);
comment on type bayes.fallback_reason is
'The reason of a message''s fallback decision (MODEL.md section 7); high_variance and critical_zone only in events of the v1 engine.';

-------------------------------------------------------------------------------
-- The old table, kept until the functions migration has converted it.
-------------------------------------------------------------------------------
alter table bayes.player_event rename to player_event_v1;
alter table bayes.player_event_v1 rename constraint player_event_pkey to player_event_v1_pkey;
alter table bayes.player_event_v1 rename constraint player_event_kind_known to player_event_v1_kind_known;
alter index bayes.player_event_user_kind_message_uq rename to player_event_v1_user_kind_message_uq;
alter sequence bayes.player_event_event_id_seq rename to player_event_v1_event_id_seq;
revoke all on table bayes.player_event_v1 from public, anon, authenticated, service_role;
comment on table bayes.player_event_v1 is
'The event log before issue 15, converted into bayes.player_event and dropped by the functions migration that follows its schema migration.';

-------------------------------------------------------------------------------
-- The compact log.
-------------------------------------------------------------------------------
create table bayes.player_event (
    event_id bigint generated always as identity primary key,
    user_id uuid not null,
    occurred_at timestamptz not null,
    message_key uuid,
    kind bayes.event_kind not null,
    player_mode bayes.rollout_mode,
    n integer,
    mood bayes.mood,
    fallback_reason bayes.fallback_reason,
    fallback_needed boolean,
    message_id text,
    input bytea not null,
    constraint player_event_message_key_with_id check ((message_key is null) = (message_id is null))
);

comment on table bayes.player_event is
'Append-only log of every input applied to a player state (issue 15''s compact layout); replaying it rebuilds the state. The result returned is kept for the idempotency window only, in bayes.event_result.';
comment on column bayes.player_event.event_id is
'Log order: replay applies a player''s events by increasing event_id.';
comment on column bayes.player_event.occurred_at is
'A message''s send time (p_sent_at); for the other kinds when the engine applied the input.';
comment on column bayes.player_event.message_key is
'bayes.message_key(user_id, kind, message_id): md5 of the three as a uuid, unique: a (player, kind, message id) is applied at most once.';
comment on column bayes.player_event.kind is
'The writer: message, llm_scores, outcome or chapter.';
comment on column bayes.player_event.player_mode is
'The player''s mode when the input was applied (the result''s "mode"; null in events older than issue 14).';
comment on column bayes.player_event.n is
'A message''s number in the player''s life (the result''s "n"); null for the other kinds.';
comment on column bayes.player_event.mood is
'The mood after a message (the result''s mood.state); null for the other kinds.';
comment on column bayes.player_event.fallback_reason is
'A message''s fallback reason (the result''s fallback.reason); null for the other kinds.';
comment on column bayes.player_event.fallback_needed is
'Whether the message needed the LLM (the result''s fallback.needed); null for the other kinds.';
comment on column bayes.player_event.message_id is
'The caller''s id of the message, as given (in no index: message_key is its identity).';
comment on column bayes.player_event.input is
'The input as bayes_engine.eventlog packs it (a few dozen bytes); bayes.event_input(kind, input) gives its JSON.';

-- Idempotency: one (player, kind, message id), by its fixed-width key.
create unique index player_event_message_key_uq
on bayes.player_event (message_key)
where message_key is not null;
-- A player's log (replay, the shadow tools): duplicates of user_id are
-- stored as posting lists, so this index costs a few bytes an event.
create index player_event_user_idx
on bayes.player_event (user_id);

alter table bayes.player_event enable row level security;
revoke all on table bayes.player_event from public, anon, authenticated, service_role;
grant select on table bayes.player_event to service_role;

-- The converted events keep their ids (and so their order): the identity
-- continues after the old one.
select
    setval(
        pg_get_serial_sequence('bayes.player_event', 'event_id'),
        coalesce((select max(e.event_id) from bayes.player_event_v1 as e), 0) + 1,
        false
    );

-------------------------------------------------------------------------------
-- The first results, for the idempotency window.
-------------------------------------------------------------------------------
create table bayes.event_result (
    event_id bigint primary key,
    written_at timestamptz not null,
    result json not null
);

-- The result is kept as the JSON text bayes.step wrote (json, about 950
-- bytes), not as jsonb (about 1.4 KB: every number a numeric, every key
-- with its offsets): a duplicate parses it again. PostgreSQL compresses a
-- value in a row only when the row passes about 2 KB (TOAST_TUPLE_THRESHOLD,
-- which toast_tuple_target does not lower), so a result is never compressed.

comment on table bayes.event_result is
'The result first returned for an input with a message id (bayes.player_event.event_id), kept for the idempotency window (idempotency_window_h) and then deleted by bayes.expire_event_results.';
comment on column bayes.event_result.written_at is
'When the result was first returned: a duplicate after written_at + idempotency_window_h gets "result_expired" and the current summary, whether or not the row is deleted yet.';

alter table bayes.event_result enable row level security;
revoke all on table bayes.event_result from public, anon, authenticated, service_role;
grant select on table bayes.event_result to service_role;

insert into bayes.params (name, value, description) values (
    'idempotency_window_h',
    '72',
    'Hours a message''s first result is kept: a message id sent again within them gets that result,'
    || ' later "result_expired" and the current summary'
);

-------------------------------------------------------------------------------
-- A deleted state takes its events and their results with it.
-------------------------------------------------------------------------------
create or replace function bayes.delete_player_events()
returns trigger
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
as $$
begin
    with deleted as (
        delete from bayes.player_event as e
        using old_states as o
        where e.user_id = o.user_id
        returning e.event_id
    )
    delete from bayes.event_result as r
    using deleted as d
    where r.event_id = d.event_id;
    return null;
end
$$;

comment on function bayes.delete_player_events() is
'Statement trigger of public.user_bayesian_state: deletes the events of deleted states and their kept results. SECURITY DEFINER because the event log is append-only for the API roles.';
