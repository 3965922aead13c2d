-- Measurements on the message path (issue 16, item 1), kept in the event row
-- that every message writes anyway: when it was written, how long the engine
-- took inside the database, and how many metric features fired. The health
-- queries (bayes.health) read them over the last minutes and hours by
-- event_id ranges: bayes.event_id_at finds where a window starts with a
-- binary search of the primary key, so no index is added to the log.
--
-- Nullable columns with no default: adding them rewrites nothing. Events
-- older than this migration keep nulls (they are older than any window).

alter table bayes.player_event
add column recorded_at timestamptz,
add column db_time_us integer,
add column observations smallint;

comment on column bayes.player_event.recorded_at is
'When the engine wrote the event (clock_timestamp() at the write; null before issue 16). Increases with event_id up to the jitter of concurrent writes: bayes.event_id_at finds a window''s first event by it.';
comment on column bayes.player_event.db_time_us is
'A message''s time inside the database in microseconds: from the start of bayes_process_message to just before its write (clock_timestamp()); null for the other kinds and before issue 16.';
comment on column bayes.player_event.observations is
'A message''s number of metric features that fired (the result''s "observations"; 0: no_signals); null for the other kinds and before issue 16.';
