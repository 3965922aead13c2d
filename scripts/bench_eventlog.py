"""Section "eventlog" of scripts/bench.py: the bytes of the compact event log (issue 15).

--eventlog-players players (default 10,000) each send --eventlog-messages
messages (default 100: a million message events) through
bayes_process_message, the messages of bayes_dev.players.MESSAGES, each with
a message id of 32 characters (md5 hex, as a uuid's hex), interleaved as live
traffic writes them (round k: every player's k-th message), in parallel
connections (--eventlog-connections, disjoint players), server-side loops of
one round of one connection's players per statement. Then VACUUM ANALYZE and:

- bytes per message event: pg_total_relation_size('bayes.player_event')
  (heap, TOAST, every index) / the events, with each index's share;
- bytes per result held in the idempotency window:
  pg_total_relation_size('bayes.event_result') / the kept results (every
  message here has an id and was written within the window);
- the layout before issue 15 on the same events: the first
  --eventlog-old-sample events (in log order) copied into a table of the old
  layout (its columns and indexes, the input as jsonb through
  bayes.event_input, the kept result), and its bytes per event.

It starts by emptying auth.users and the event log of the bench's stack.
"""

from __future__ import annotations

import threading
import time

import psycopg
from bayes_dev.players import MESSAGES

Target = tuple[str, str, bool]

ROUND_SQL = """
do $$
declare
    v_messages text[] := %(messages)s;
    v_players uuid[] := array(select u.id from auth.users as u where u.email like %(tag)s order by u.id);
    v_sent timestamptz := %(start)s::timestamptz + make_interval(secs => %(k)s * 60);
begin
    for p in 1..coalesce(array_length(v_players, 1), 0) loop
        perform public.bayes_process_message(
            v_players[p], v_messages[1 + (%(k)s + p) %% array_length(v_messages, 1)],
            v_sent, md5(v_players[p]::text || '/' || %(k)s), 30.0 + %(k)s
        );
    end loop;
end
$$
"""

# The layout before issue 15 (sql/migrations/0001 and 0002), in a table of the bench's own.
OLD_LAYOUT_SQL = """
create table public.bench_old_player_event (
    event_id bigint generated always as identity,
    user_id uuid not null,
    kind text not null,
    message_id text,
    occurred_at timestamptz not null,
    input jsonb not null,
    result jsonb not null,
    state_version bigint not null,
    created_at timestamptz not null default now(),
    constraint bench_old_kind_known check (kind in ('message', 'llm_scores', 'outcome', 'chapter')),
    primary key (user_id, event_id)
);
create unique index bench_old_user_kind_message_uq
on public.bench_old_player_event (user_id, kind, message_id) where message_id is not null;
"""
OLD_COPY_SQL = """
insert into public.bench_old_player_event (user_id, kind, message_id, occurred_at, input, result, state_version)
select e.user_id, e.kind::text, e.message_id, e.occurred_at, bayes.event_input(e.kind, e.input), r.result, e.n + 1
from bayes.player_event as e
inner join bayes.event_result as r on r.event_id = e.event_id
order by e.event_id
limit %s
"""


def add_arguments(parser) -> None:
    group = parser.add_argument_group("section eventlog (the bytes of the compact event log, issue 15)")
    group.add_argument("--eventlog-players", type=int, default=10_000, help="players")
    group.add_argument("--eventlog-messages", type=int, default=100, help="messages per player")
    group.add_argument("--eventlog-connections", type=int, default=2, help="parallel connections")
    group.add_argument(
        "--eventlog-old-sample", type=int, default=100_000, help="events copied into the old layout to compare"
    )


def _quoted_messages() -> str:
    return "array[" + ",".join("'" + m.replace("'", "''") + "'" for m in MESSAGES) + "]"


def _write(dsn: str, tag: str, rounds: int, start, done: list[int], errors: list[BaseException]) -> None:
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for k in range(1, rounds + 1):
                sql = ROUND_SQL.replace("%(messages)s", _quoted_messages()).replace("%(tag)s", f"'{tag}'")
                sql = sql.replace("%(start)s", f"'{start.isoformat()}'").replace("%(k)s", str(k)).replace("%%", "%")
                conn.execute(sql)
                done[0] += 1
    except BaseException as exc:  # noqa: BLE001 - reported by the caller
        errors.append(exc)


def run(dsn: str, args) -> list[Target]:
    players, rounds, connections = args.eventlog_players, args.eventlog_messages, args.eventlog_connections
    total = players * rounds
    print(
        f"\nthe compact event log (issue 15): {players} players x {rounds} messages = {total} message events"
        f" through bayes_process_message, {connections} connections",
        flush=True,
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate auth.users cascade")
        conn.execute("truncate bayes.player_event, bayes.event_result")
        conn.execute("drop table if exists public.bench_old_player_event")
        for c in range(connections):
            conn.execute(
                "insert into auth.users (id, email)"
                " select gen_random_uuid(), 'eventlog-' || %s || '-' || i || '@bench.local'"
                " from generate_series(1, %s) as i",
                (c, players // connections + (1 if c < players % connections else 0)),
            )
        start = conn.execute(
            "select date_trunc('second', now()) - make_interval(mins => %s)", (rounds + 5,)
        ).fetchone()[0]
    done = [[0] for _ in range(connections)]
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_write, args=(dsn, f"eventlog-{c}-%", rounds, start, done[c], errors))
        for c in range(connections)
    ]
    began = time.perf_counter()
    for t in threads:
        t.start()
    last = began
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        now = time.perf_counter()
        if now - last >= 30 or not any(t.is_alive() for t in threads):
            last = now
            written = sum(d[0] for d in done) * players // connections
            print(f"  {written:>9} events written ({now - began:.0f} s)", flush=True)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    seconds = time.perf_counter() - began
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("vacuum analyze bayes.player_event, bayes.event_result")
        events, total_bytes, heap, results, kept_bytes = conn.execute(
            "select (select count(*) from bayes.player_event where kind = 'message'),"
            " pg_total_relation_size('bayes.player_event'), pg_relation_size('bayes.player_event'),"
            " (select count(*) from bayes.event_result), pg_total_relation_size('bayes.event_result')"
        ).fetchone()
        indexes = conn.execute(
            "select indexrelid::regclass::text, pg_relation_size(indexrelid) from pg_index"
            " where indrelid = 'bayes.player_event'::regclass order by 1"
        ).fetchall()
        inputs = conn.execute("select avg(length(input)) from bayes.player_event").fetchone()[0]
        sample = min(args.eventlog_old_sample, events)
        conn.execute(OLD_LAYOUT_SQL)
        conn.execute(OLD_COPY_SQL, (sample,))
        conn.execute("vacuum analyze public.bench_old_player_event")
        old_bytes = conn.execute("select pg_total_relation_size('public.bench_old_player_event')").fetchone()[0]
        conn.execute("drop table public.bench_old_player_event")
    per_event = total_bytes / events
    print(f"  written in {seconds:.0f} s ({events / seconds:.0f} messages/s)")
    print(f"  bayes.player_event: {total_bytes / 1e6:.1f} MB over {events} message events = {per_event:.1f} bytes each")
    print(f"    heap {heap / events:.1f} bytes an event (inputs {float(inputs):.1f} bytes on average)")
    for name, size in indexes:
        print(f"    {name:<40} {size / events:6.1f} bytes an event")
    print(
        f"  bayes.event_result (the idempotency window): {kept_bytes / 1e6:.1f} MB over {results} results"
        f" = {kept_bytes / results:.0f} bytes each"
    )
    print(
        f"  the layout before issue 15, the first {sample} of these events copied into it:"
        f" {old_bytes / sample:.0f} bytes an event ({old_bytes / sample / per_event:.1f} x the compact log)"
    )
    return [
        ("bytes per message event <= 300 (heap, TOAST, indexes)", f"{per_event:.1f}", per_event <= 300),
        (f"message events measured >= 1,000,000 ({events})", f"{events}", events >= 1_000_000),
    ]
