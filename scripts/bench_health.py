"""Section "health" of scripts/bench.py: what the health signals of issue 16 cost.

(a) What the measurements add to bayes_process_message (issue 16, item 1;
    target: under 3% of its p50). Side by side in one run, on one connection
    (prepared, autocommit), the message section's call (16 players, the
    messages of bayes_dev.players.MESSAGES, a fresh message id and a reply
    gap each) against two functions:

      A  the real bayes_process_message and bayes.save_state;
      B  the same path without the measurements: both functions created
         again from their own text (pg_get_functiondef) with the clock read
         of the RPC's first line, the clock read of the write and the three
         columns (recorded_at, db_time_us, observations) cut out. Each cut
         is an exact piece of text that must be found once: if the real
         functions change, the section fails instead of timing a "variant"
         equal to the original.

    B replaces A in place (create or replace, the same names and signatures:
    the path in between, bayes.apply_input, is the real one), in alternating
    blocks A B A B ... of --health-block calls; after every swap, untimed
    warm-up calls (the backend compiles the new text) and a check that the
    last event written has the measurements (A) or has none (B). The real
    functions are put back at the end, and compared with the originals.

(b) One health query on 1,000,000 events. --health-source-players players of
    the fallback section's population (real chat lines of chatterbot-corpus,
    the LLM stand-in's answers when the result says fallback.needed) go
    through bayes_process_message and bayes_apply_llm_scores; their events
    (with the measurements the RPCs wrote: db_time_us, observations, the
    fallback columns) are then copied, with their players' states, into a
    log of --health-events events, the players interleaved as live traffic
    writes them (round k: every player's k-th event), recorded_at spread
    evenly over a span ending now:

      worst case   the span is 50 minutes: the long window (1 hour) holds every
                   event, the short one (5 minutes) a tenth of them;
      a day        the span is 24 hours (a log that holds a day of traffic): the
                   windows hold 1/24 and 1/288 of it.

    After VACUUM ANALYZE, the median of --health-repeats runs of
    `select * from bayes.health()`, `select bayes.record_health()` (also in a
    fresh backend each time, as pg_cron runs it) and
    `select bayes.event_id_at(now() - interval '5 minutes')`, next to the
    baseline `select count(*) from bayes.player_event` (a scan of the whole
    log), measured in the same run.

The bytes per event after the three columns: the eventlog section
(`scripts/bench --only eventlog`).

It starts by emptying auth.users and the event log of the bench's stack, and
pauses the pg_cron job bayes-record-health there (the section takes its
snapshots itself).
"""

from __future__ import annotations

import json
import statistics
import time
import uuid

import psycopg
from bayes_dev import lifetime
from bayes_dev.players import MESSAGES, new_players
from bayes_engine import params

Target = tuple[str, str, bool]

# The message section's call (scripts/bench.py RPC_SQL).
RPC_SQL = "select public.bayes_process_message(%s, %s, p_message_id => %s, p_reply_gap_s => %s)"
# Benchmarks write states the codec made, as the engine's writers do (scripts/bench.py ENGINE_WRITER).
ENGINE_WRITER = "-c bayes.state_writer=engine"
FUNCTIONDEF_SQL = "select pg_get_functiondef(%s::regprocedure)"
SAVE_STATE = (
    "bayes.save_state(uuid, jsonb, text, text, uuid, timestamptz, bytea, jsonb, json, timestamptz,"
    " double precision, timestamptz)"
)
PROCESS_MESSAGE = "public.bayes_process_message(uuid, text, timestamptz, text, double precision, boolean)"
FINGERPRINT_SQL = "select md5(prosrc) from pg_proc where oid = %s::regprocedure"
LAST_EVENT_SQL = (
    "select recorded_at is not null, db_time_us is not null, observations is not null"
    " from bayes.player_event order by event_id desc limit 1"
)

# The cuts that make B: (the text of A, what B has instead). Each must occur exactly once.
SAVE_STATE_CUTS = [
    ("declare\n    v_now timestamptz := clock_timestamp();\nbegin", "begin"),
    (
        "message_id, input,\n            recorded_at, db_time_us, observations\n        )",
        "message_id, input\n        )",
    ),
    (
        "            p_input,\n"
        "            -- the measurements of the health queries (issue 16): one clock\n"
        "            -- read, the time inside the database up to here, and the\n"
        "            -- message's feature count (bayes.health)\n"
        "            v_now,\n"
        "            case when p_started_at is not null then (extract(epoch from v_now - p_started_at) * 1e6)::integer"
        " end,\n"
        "            case when p_kind = 'message' then (p_result ->> 'observations')::smallint end\n",
        "            p_input\n",
    ),
]
PROCESS_MESSAGE_CUTS = [
    (
        "    -- the start of the in-database time the event records (bayes.health)\n"
        "    v_started_at timestamptz := clock_timestamp();\n",
        "",
    ),
    ("        p_sent_at,\n        v_started_at\n    );", "        p_sent_at\n    );"),
]
MEASURED_WORDS = ("clock_timestamp", "recorded_at", "db_time_us", "v_now", "v_started_at")


def add_arguments(parser) -> None:
    group = parser.add_argument_group("section health (what the health signals cost, issue 16)")
    group.add_argument("--health-calls", type=int, default=6000, help="timed calls of each side in (a)")
    group.add_argument("--health-block", type=int, default=500, help="calls per block in (a)")
    group.add_argument("--health-warmup", type=int, default=30, help="untimed calls after each swap in (a)")
    group.add_argument("--health-events", type=int, default=1_000_000, help="events of the log in (b)")
    group.add_argument(
        "--health-source-players", type=int, default=100, help="players whose RPC calls make the events copied in (b)"
    )
    group.add_argument("--health-source-messages", type=int, default=100, help="messages of each of them")
    group.add_argument("--health-repeats", type=int, default=7, help="runs of each timed statement in (b)")


def cut(text: str, cuts: list[tuple[str, str]], name: str) -> str:
    """`text` with every cut made; raises when a cut's text is not found exactly once."""
    for old, new in cuts:
        found = text.count(old)
        if found != 1:
            raise RuntimeError(
                f"bench health: the text to cut from {name} was found {found} times (expected once): {old!r}."
                " The function changed: update SAVE_STATE_CUTS / PROCESS_MESSAGE_CUTS in scripts/bench_health.py."
            )
        text = text.replace(old, new)
    body = text.split("$function$")[1]
    left = [word for word in MEASURED_WORDS if word in body]
    if left:
        raise RuntimeError(f"bench health: the variant of {name} still mentions {left}")
    return text


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- (a) the overhead -------------------------------------------------------


def overhead(dsn: str, args) -> list[Target]:
    calls, block, warmup = args.health_calls, args.health_block, args.health_warmup
    with psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER) as admin:
        players = new_players(admin, 16, "health")
        real = {name: admin.execute(FUNCTIONDEF_SQL, (name,)).fetchone()[0] for name in (SAVE_STATE, PROCESS_MESSAGE)}
        fingerprints = {name: admin.execute(FINGERPRINT_SQL, (name,)).fetchone()[0] for name in real}
        variant = {
            SAVE_STATE: cut(real[SAVE_STATE], SAVE_STATE_CUTS, "bayes.save_state"),
            PROCESS_MESSAGE: cut(real[PROCESS_MESSAGE], PROCESS_MESSAGE_CUTS, "bayes_process_message"),
        }
    print(
        f"\n(a) what the measurements add to bayes_process_message: {calls} calls of each side, 1 client,"
        f" alternating blocks of {block} (A B A B ...), {warmup} untimed calls after each swap",
        flush=True,
    )
    print("  A: the real bayes_process_message and bayes.save_state (recorded_at, db_time_us, observations)")
    print(
        "  B: both created again from their own text without the two clock reads and the three columns"
        " (the rest of the path, bayes.apply_input and bayes.step, is the real one)"
    )
    samples: dict[str, list[float]] = {"A": [], "B": []}
    block_p50: dict[str, list[float]] = {"A": [], "B": []}
    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0, options=ENGINE_WRITER)
    admin = psycopg.connect(dsn, autocommit=True)
    i = 0

    def call() -> None:
        nonlocal i
        i += 1
        conn.execute(
            RPC_SQL, (players[i % len(players)], MESSAGES[i % len(MESSAGES)], uuid.uuid4().hex, 30.0 + i % 600)
        ).fetchone()

    try:
        done = 0
        while done < calls:
            n = min(block, calls - done)
            for side in ("A", "B"):
                functions = real if side == "A" else variant
                with admin.transaction():
                    for text in functions.values():
                        admin.execute(text)
                for _ in range(warmup):
                    call()
                measured = conn.execute(LAST_EVENT_SQL).fetchone()
                expected = (True, True, True) if side == "A" else (False, False, False)
                if measured != expected:
                    raise RuntimeError(f"bench health: side {side} wrote an event with measurements {measured}")
                times = []
                for _ in range(n):
                    t = time.perf_counter_ns()
                    call()
                    times.append((time.perf_counter_ns() - t) / 1e6)
                samples[side] += times
                block_p50[side].append(statistics.median(times))
            done += n
    finally:
        with admin.transaction():
            for text in real.values():
                admin.execute(text)
        restored = {name: admin.execute(FINGERPRINT_SQL, (name,)).fetchone()[0] for name in real}
        admin.close()
        conn.close()
    if restored != fingerprints:
        raise RuntimeError("bench health: the real functions were not restored as they were")
    print("  the real functions are back (md5 of their text as before the section)")

    p50 = {k: statistics.median(v) for k, v in samples.items()}
    p99 = {k: pct(v, 0.99) for k, v in samples.items()}
    paired = [a - b for a, b in zip(block_p50["A"], block_p50["B"], strict=True)]
    print(f"  {'side':<44} {'p50 ms':>8} {'p99 ms':>8} {'block p50s, min..max':>22}")
    for side, name in (("A", "A real (measured)"), ("B", "B without the measurements")):
        print(
            f"  {name:<44} {p50[side]:8.3f} {p99[side]:8.3f} {min(block_p50[side]):10.3f}..{max(block_p50[side]):.3f}"
        )
    added_p50 = (p50["A"] - p50["B"]) * 1000
    added_p99 = (p99["A"] - p99["B"]) * 1000
    share = added_p50 / 1000 / p50["A"]
    paired_us = statistics.median(paired) * 1000
    print(
        f"  A - B: p50 {added_p50:+.1f} us ({share:+.2%} of A's p50), p99 {added_p99:+.1f} us;"
        f" median of the {len(paired)} block pairs' p50 differences {paired_us:+.1f} us"
        f" ({paired_us / 1000 / p50['A']:+.2%})"
    )
    print(
        "  (a difference smaller than the spread of the block p50s is noise: the machine is shared;"
        " a negative one means none could be seen)"
    )
    expressions_us = expression_cost(dsn, players[0])
    print(
        f"  the added expressions alone (the clock read, db_time_us, observations from a real result), evaluated"
        f" {EXPRESSION_ROWS:,} times in one statement against the same statement without them:"
        f" {expressions_us:.3f} us a message ({expressions_us / 1000 / p50['A']:.4%} of A's p50;"
        f" the bytes they add to the row are in A - B only)"
    )
    return [("(a) the measurements add < 3% of bayes_process_message's p50", f"{share:+.2%}", share < 0.03)]


EXPRESSION_ROWS = 1_000_000
# What save_state computes for the three columns (and the RPC's first clock read), per row of a
# generate_series, against the same rows without it; each column is used, so that none is skipped.
EXPRESSIONS_SQL = """
select count(*) from (
    select
        clock_timestamp() as started_at,
        clock_timestamp() as recorded_at,
        (extract(epoch from clock_timestamp() - %(started)s::timestamptz) * 1e6)::integer as db_time_us,
        (%(result)s::jsonb ->> 'observations')::smallint as observations
    from generate_series(1, %(rows)s) as g
    offset 0
) as s
where s.started_at is not null and s.recorded_at is not null and s.db_time_us is not null
    and s.observations is not null
"""
WITHOUT_SQL = """
select count(*) from (select g from generate_series(1, %(rows)s) as g offset 0) as s where s.g is not null
"""


def expression_cost(dsn: str, user_id: uuid.UUID, repeats: int = 7) -> float:
    """Microseconds a message of the measurements' expressions (median of `repeats` pairs of runs)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = conn.execute(RPC_SQL, (user_id, MESSAGES[2], uuid.uuid4().hex, 45.0)).fetchone()[0]
        args = {"started": conn.execute("select now()").fetchone()[0], "result": json.dumps(result)}
        args["rows"] = EXPRESSION_ROWS
        differences = []
        for _ in range(repeats):
            t = time.perf_counter_ns()
            conn.execute(EXPRESSIONS_SQL, args).fetchone()
            with_ns = time.perf_counter_ns() - t
            t = time.perf_counter_ns()
            conn.execute(WITHOUT_SQL, args).fetchone()
            differences.append(with_ns - (time.perf_counter_ns() - t))
    return statistics.median(differences) / 1000 / EXPRESSION_ROWS


# --- (b) one health query on a million events -------------------------------

SOURCE_SQL = """
create unlogged table public.bench_health_source as
select
    e.*,
    row_number() over (partition by e.user_id order by e.event_id) as k
from bayes.player_event as e
"""
# The players of the copies: copy c of player u is u itself for c = 0, else md5(u/c) as a uuid, with u's
# state. Then the events, copy c of each source event, interleaved as live traffic writes them (round k: every
# player's k-th event, copies after one another), recorded_at spread evenly over [now - span, now].
COPY_USERS_SQL = """
insert into auth.users (id, email)
select md5(u.id::text || '/' || c)::uuid, 'copy-' || c || '-' || u.email
from auth.users as u cross join generate_series(1, %(copies)s - 1) as c
where u.email like 'health-source-%%'
"""
COPY_STATES_SQL = """
insert into public.user_bayesian_state (user_id, state, version, last_message_at, decayed_at, decay_due_at)
select md5(s.user_id::text || '/' || c)::uuid, s.state, s.version, s.last_message_at, s.decayed_at, s.decay_due_at
from public.user_bayesian_state as s
inner join auth.users as u on u.id = s.user_id and u.email like 'health-source-%%'
cross join generate_series(1, %(copies)s - 1) as c
"""
COPY_EVENTS_SQL = """
insert into bayes.player_event (
    user_id, occurred_at, message_key, kind, player_mode, n, mood, fallback_reason, fallback_needed, message_id,
    input, recorded_at, db_time_us, observations
)
select
    c.user_id, c.occurred_at,
    case when c.message_id is not null then md5(c.user_id::text || '/' || c.kind || '/' || c.message_id)::uuid end,
    c.kind, c.player_mode, c.n, c.mood, c.fallback_reason, c.fallback_needed, c.message_id, c.input,
    %(end_at)s::timestamptz - make_interval(secs => %(span_s)s::float8 * (%(events)s - c.i) / %(events)s),
    c.db_time_us, c.observations
from (
    select
        case when g.c = 0 then s.user_id else md5(s.user_id::text || '/' || g.c)::uuid end as user_id,
        s.occurred_at, s.kind, s.player_mode, s.n, s.mood, s.fallback_reason, s.fallback_needed, s.message_id,
        s.input, s.db_time_us, s.observations,
        row_number() over (order by s.k, s.user_id, g.c) as i
    from public.bench_health_source as s
    cross join generate_series(0, %(copies)s - 1) as g (c)
) as c
where c.i <= %(events)s
order by c.i
"""
LOG_FACTS_SQL = """
select
    count(*),
    count(*) filter (where kind = 'message'),
    count(*) filter (where kind = 'llm_scores'),
    count(*) filter (where recorded_at >= now() - interval '5 minutes'),
    count(*) filter (where recorded_at >= now() - interval '1 hour'),
    count(distinct user_id),
    (select count(*) from (
        select recorded_at < lag(recorded_at) over (order by event_id) as back from bayes.player_event
    ) as o where o.back)
from bayes.player_event
"""
STATEMENTS = [
    ("baseline: select count(*) from bayes.player_event", "select count(*) from bayes.player_event"),
    ("select * from bayes.health()", "select * from bayes.health()"),
    ("select bayes.record_health()", "select bayes.record_health()"),
    (
        "select bayes.event_id_at(now() - interval '5 minutes')",
        "select bayes.event_id_at(now() - interval '5 minutes')",
    ),
]


def source_traffic(dsn: str, args) -> int:
    """The source players through the real RPCs (the fallback section's population); their event count."""
    corpus = lifetime.corpus_messages()
    standin = lifetime.StandIn()
    deltas = [standin.deltas(text) for text in corpus]
    defaults = params.Params.from_snapshot(params.DEFAULT_SNAPSHOT)
    players = lifetime.population(16, args.health_source_players, args.health_source_messages, len(corpus))
    started = time.perf_counter()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate auth.users cascade")  # the players of (a)
        conn.execute("truncate bayes.player_event, bayes.event_result")
        day0 = lifetime.day0_for(players, lifetime.db_now(conn), defaults.g["max_message_age_h"])
        for player in players:
            user_id = player.ids["policy"]
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"health-source-{user_id}"))
            lifetime.db_run(conn, player, "policy", day0, corpus, deltas)
        events = conn.execute("select count(*) from bayes.player_event").fetchone()[0]
    print(
        f"  source: {len(players)} players x {args.health_source_messages} messages of chatterbot-corpus through"
        f" bayes_process_message, bayes_apply_llm_scores when fallback.needed (the fallback section's stand-in):"
        f" {events:,} events in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    return events


def build_log(dsn: str, events: int, source_events: int, span_s: float) -> None:
    copies = -(-events // source_events)
    with psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER) as conn:
        conn.execute("delete from auth.users where email not like 'health-source-%'")  # the copies of a last build
        conn.execute("truncate bayes.player_event, bayes.event_result, bayes.health_snapshot, bayes.health_change")
        started = time.perf_counter()
        conn.execute(COPY_USERS_SQL, {"copies": copies})
        conn.execute(COPY_STATES_SQL, {"copies": copies})
        end_at = conn.execute("select now()").fetchone()[0]
        conn.execute(COPY_EVENTS_SQL, {"copies": copies, "events": events, "span_s": span_s, "end_at": end_at})
        conn.execute("vacuum analyze bayes.player_event, public.user_bayesian_state, auth.users")
        total, messages, answers, short, long, players, backwards = conn.execute(LOG_FACTS_SQL).fetchone()
    print(
        f"  {total:,} events ({messages:,} messages, {answers:,} LLM answers) of {players:,} players, {copies} copies"
        f" of the source, recorded_at over the {span_s / 3600:g} h before now, built in"
        f" {time.perf_counter() - started:.0f} s; in the last 5 minutes {short:,}, in the last hour {long:,}",
        flush=True,
    )
    if total != events or backwards:
        raise RuntimeError(f"bench health: the log has {total} events, {backwards} recorded before the one before")


def messages_total(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("select count(*) from bayes.player_event where kind = 'message'").fetchone()[0]


def time_statements(dsn: str, repeats: int) -> dict[str, float]:
    """Median ms of each statement on one warm connection, and of record_health in a fresh backend each run."""
    out: dict[str, list[float]] = {label: [] for label, _ in STATEMENTS}
    fresh_label = "select bayes.record_health(), in a fresh backend"
    out[fresh_label] = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _label, sql in STATEMENTS:  # a first, untimed run: plans, caches, the interpreter of this backend
            conn.execute(sql).fetchall()
        for _ in range(repeats):
            for label, sql in STATEMENTS:
                t = time.perf_counter_ns()
                conn.execute(sql).fetchall()
                out[label].append((time.perf_counter_ns() - t) / 1e6)
            with psycopg.connect(dsn, autocommit=True) as fresh:
                fresh.execute("select 1")  # the backend exists: only the call is timed
                t = time.perf_counter_ns()
                fresh.execute("select bayes.record_health()").fetchall()
                out[fresh_label].append((time.perf_counter_ns() - t) / 1e6)
    return {label: statistics.median(v) for label, v in out.items()}


def health_query(dsn: str, args) -> list[Target]:
    events = args.health_events
    print(f"\n(b) one health query on {events:,} events", flush=True)
    source_events = source_traffic(dsn, args)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SOURCE_SQL)
    targets: list[Target] = []
    try:
        for case, span_s in (("worst case: every event in the long window", 3000.0), ("a day of traffic", 86400.0)):
            print(f"\n  {case}", flush=True)
            build_log(dsn, events, source_events, span_s)
            medians = time_statements(dsn, args.health_repeats)
            with psycopg.connect(dsn, autocommit=True) as conn:
                seen = dict(
                    conn.execute(
                        "select window_s, samples from bayes.health() where signal = 'messages_per_second'"
                    ).fetchall()
                )
                messages = conn.execute(
                    "select count(*) filter (where recorded_at >= now() - interval '5 minutes'),"
                    " count(*) filter (where recorded_at >= now() - interval '1 hour')"
                    " from bayes.player_event where kind = 'message'"
                ).fetchone()
            base = medians[STATEMENTS[0][0]]
            print(f"    {'statement (median of ' + str(args.health_repeats) + ')':<58} {'ms':>9} {'/ baseline':>11}")
            for label, ms in medians.items():
                print(f"    {label:<58} {ms:9.1f} {ms / base:11.2f}")
            print(
                f"    bayes.health() counted {seen.get(300, 0):,} and {seen.get(3600, 0):,} messages in its windows"
                f" (the brute force over recorded_at, just after: {messages[0]:,} and {messages[1]:,})"
            )
            if case.startswith("worst"):
                targets.append(
                    (
                        "(b) the worst case: bayes.health's long window holds every message of the log",
                        f"{seen.get(3600, 0):,}",
                        seen.get(3600, 0) == messages[1] == messages_total(dsn),
                    )
                )
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("drop table if exists public.bench_health_source")
    return targets


def run(dsn: str, args) -> list[Target]:
    print("\nthe health signals (issue 16)", flush=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate auth.users cascade")
        conn.execute("truncate bayes.player_event, bayes.event_result")
        conn.execute(
            "select cron.alter_job(jobid, active => false) from cron.job where jobname = 'bayes-record-health'"
        )
    return overhead(dsn, args) + health_query(dsn, args)
