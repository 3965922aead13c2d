"""Benchmarks of the per-message path, run by scripts/bench on its own stack.

Every figure is measured in this run, on loopback, with psycopg (prepared
statements, autocommit), side by side:

  (a) bare     a single-row JSONB UPDATE by primary key (the floor: one
               statement, one commit)
  (b) rpc      bayes_process_message (one call, one transaction, one row
               lock, the state and an event written)
  (c) app      the app-server pattern: SELECT the state, the same math in
               Python in the client (the bayes_engine package itself), then
               one statement that UPDATEs the row and inserts the event and
               its kept result as the engine does (the packed input, issue
               15); two round trips and no lock between them

The three run interleaved in blocks, so that a noisy neighbour hurts all of
them alike; the report gives ratios against (a).

Bulk decay (--only decay), on a population of players all due for decay
(scripts/bayes_dev/players.py; last message 100 to 400 hours ago, every row
due: decay_due_at at the start of its decay window, as migration 0013 leaves
the rows written before it):

  (a) bare     one set-based UPDATE that rewrites every row of the population
               without decaying it, writing the columns the decay writes
               (state, version, decayed_at kept, decay_due_at moved by 1 us
               so that its index is written as the decay writes it), run
               before and after the decay
  (d) decay    a bulk run up to p_now (the DO block of
               bayes.run_decay_command): batches of committed transactions,
               each row through the Python decay and its new due time

with VACUUM + CHECKPOINT before each; the report gives (d) against the mean
of the two (a), and the table's size around the run.

Absence (--only absence, issue 15): a population whose states come from
real messages (players.py) and whose last message is 0 to 24 h before the
first run, then a bulk run every 15 simulated minutes for 30 days (2,880
runs, as pg_cron's default cadence): the bulk writes per player (every run
rewrote every absent player before issue 15), by the distance D of his
composite to where decay takes it, and the same simulation in Python
(bayes_engine: decay and due times, no database) at other tolerances.

Live traffic during a bulk run (--only live): bayes_process_message latency
of active players (just sent messages, not due) and of returning players
(each call a different due player), first idle, then while
a bulk run (bayes.run_decay_command) runs on another connection.

Both of these start by emptying auth.users (and so every state) of the
bench's own stack. The pg_cron job bayes-run-decay is paused on that stack,
so that only the bench decays players.

Through PostgREST (--only api, issue 15): bayes_process_message with supabase-py against the
research's two-call pattern (select, the math in the client, upsert), one client: scripts/bench_api.py.

The lifetime LLM call rate (--only fallback, issue 13): scripts/bench_fallback.py.

Shadow cohorts, counterfactual replay and calibration (--only shadow, issue 14):
scripts/bench_shadow.py (the fallback section's population, as shadow players
through the RPCs; it starts by emptying auth.users and the event log of the
bench's stack).

The bytes of the compact event log (--only eventlog, issue 15): a million
message events through bayes_process_message, bytes per event and per kept
result, and the old layout on the same events: scripts/bench_eventlog.py (it
starts by emptying auth.users and the event log of the bench's stack).

What the health signals cost (--only health, issue 16): what the measurements
of the event row add to bayes_process_message (the real functions against
variants made from their own text without them, in alternating blocks), and
one bayes.health(), bayes.record_health() and bayes.event_id_at on a log of a
million events against a scan of that log: scripts/bench_health.py (it starts
by emptying auth.users and the event log of the bench's stack).

The partitioned mode (--only partitions, issue 17): per-call latency through
the PL/Proxy proxy against a direct call on the player's partition, step by
step, and the throughput of the whole at 1, 2 and 4 clients against the single
node: scripts/bench_partitions.py, on a partitioned stack (4 partitions) that
scripts/bench starts beside the single node when the section runs.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import bench_absence
import bench_api
import bench_eventlog
import bench_fallback
import bench_health
import bench_partitions
import bench_shadow
import psycopg
from bayes_dev import players as population
from bayes_dev.support import partitioned_stack_env, stack_env
from bayes_engine import codec, cohort, decay_due, eventlog, events
from bayes_engine.model import Message, RowTimes
from bayes_engine.params import Params

MESSAGES = population.MESSAGES  # the messages the benchmarks send
# The benchmark's own writes of the state table (the baselines (a) and (c), the decay's baseline, the
# populations) store states the codec made, as the engine's writers do: like them, they skip the table's
# check of each written state (trigger user_bayesian_state_valid). (a') measures that check.
ENGINE_WRITER = "-c bayes.state_writer=engine"

BARE_SQL = (
    "update public.user_bayesian_state set state = %s::jsonb, version = version + 1, updated_at = now()"
    " where user_id = %s"
)
RPC_SQL = "select public.bayes_process_message(%s, %s, p_message_id => %s, p_reply_gap_s => %s)"
APP_SELECT_SQL = (
    "select state::text, version, extract(epoch from last_message_at)::float8,"
    " extract(epoch from decayed_at)::float8, extract(epoch from now())::float8"
    " from public.user_bayesian_state where user_id = %s"
)
APP_WRITE_SQL = """
with updated as (
    update public.user_bayesian_state as s
    set state = %(state)s::jsonb, version = s.version + 1,
        last_message_at = greatest(s.last_message_at, to_timestamp(%(sent_at)s)),
        decayed_at = greatest(s.decayed_at, to_timestamp(%(sent_at)s)),
        decay_due_at = to_timestamp(%(due_at)s), updated_at = now()
    where s.user_id = %(user_id)s
    returning s.user_id
),
event as (
    insert into bayes.player_event (
        user_id, occurred_at, message_key, kind, player_mode, n, mood, fallback_reason, fallback_needed,
        message_id, input
    )
    select u.user_id, to_timestamp(%(sent_at)s), md5(u.user_id::text || '/message/' || %(message_id)s)::uuid, 'message',
           %(mode)s, %(n)s, %(mood)s, %(reason)s, %(needed)s, %(message_id)s, %(input)s
    from updated as u
    returning event_id
)
insert into bayes.event_result (event_id, written_at, result)
select e.event_id, now(), %(result)s::json from event as e
"""


class Runner:
    """The three operations on one connection."""

    def __init__(self, dsn: str, players: list[uuid.UUID]):
        self.conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0, options=ENGINE_WRITER)
        self.players = players
        self.i = 0
        row = self.conn.execute("select bayes.params_snapshot()::text").fetchone()
        self.params = Params.from_snapshot(json.loads(row[0]))
        row = self.conn.execute(
            "select state::text from public.user_bayesian_state where user_id = %s", (players[0],)
        ).fetchone()
        self.bare_state = row[0]
        self.checked_conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)  # an operator's session

    def checked(self):
        """(a) as an operator's UPDATE: the trigger validates the state with the codec (bayes.state_problem)."""
        user_id, _, _ = self._next()
        self.checked_conn.execute(BARE_SQL, (self.bare_state, user_id))

    def _next(self):
        self.i += 1
        return self.players[self.i % len(self.players)], MESSAGES[self.i % len(MESSAGES)], 30.0 + self.i % 600

    def bare(self):
        user_id, _, _ = self._next()
        self.conn.execute(BARE_SQL, (self.bare_state, user_id))

    def rpc(self):
        user_id, text, gap = self._next()
        self.conn.execute(RPC_SQL, (user_id, text, uuid.uuid4().hex, gap)).fetchone()

    def app(self):
        user_id, text, gap = self._next()
        state_text, version, last, decayed, now = self.conn.execute(APP_SELECT_SQL, (user_id,)).fetchone()
        state = codec.decode(state_text)
        message_id = uuid.uuid4().hex
        result, event_input = events.apply_message(
            state, self.params, str(user_id), Message(text, now, gap), RowTimes(last, decayed)
        )
        mode = cohort.player_mode(str(user_id), 0.0)
        # the decay due time the engine stores with every write (issue 15), for the row's times after it
        due_at = decay_due.due_at(
            self.params, state, now if last is None else max(last, now), now if decayed is None else max(decayed, now)
        )
        result.update(user_id=str(user_id), message_id=message_id, duplicate=False, version=version + 1, mode=mode)
        self.conn.execute(
            APP_WRITE_SQL,
            {
                "state": codec.encode(state),
                "sent_at": now,
                "user_id": user_id,
                "message_id": message_id,
                "mode": mode,
                "n": result["n"],
                "mood": result["mood"]["state"],
                "reason": result["fallback"]["reason"],
                "needed": result["fallback"]["needed"],
                "input": eventlog.pack("message", event_input),
                "result": json.dumps(result),
                "due_at": due_at,
            },
        )


def latencies(dsn: str, players, calls: int, block: int) -> dict[str, list[float]]:
    runner = Runner(dsn, players)
    ops = {"bare": runner.bare, "rpc": runner.rpc, "app": runner.app, "checked": runner.checked}
    for op in ops.values():  # warm up: plans, caches, the interpreter of this backend
        for _ in range(50):
            op()
    out = {name: [] for name in ops}
    done = 0
    while done < calls:
        for name, op in ops.items():
            samples = out[name]
            for _ in range(block):
                t = time.perf_counter_ns()
                op()
                samples.append((time.perf_counter_ns() - t) / 1e6)
        done += block
    runner.conn.close()
    runner.checked_conn.close()
    return out


def _throughput_worker(args):
    dsn, players, op_name, seconds, start_at = args
    runner = Runner(dsn, players)
    op = getattr(runner, op_name)
    for _ in range(20):
        op()
    while time.time() < start_at:
        time.sleep(0.001)
    count = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        op()
        count += 1
    runner.conn.close()
    runner.checked_conn.close()
    return count / seconds


def throughput(dsn: str, player_sets, op_name: str, seconds: float) -> float:
    """Calls per second of `op_name` with one process per player set (no shared rows)."""
    start_at = time.time() + 1.0
    with multiprocessing.get_context("spawn").Pool(len(player_sets)) as pool:
        rates = pool.map(_throughput_worker, [(dsn, ps, op_name, seconds, start_at) for ps in player_sets])
    return sum(rates)


def first_calls(dsn: str, players, repeats: int) -> dict[str, list[float]]:
    """Time of the first statement in a fresh backend (connection set up beforehand)."""
    out = {"bare": [], "rpc": []}
    state_text = None
    for i in range(repeats):
        user_id = players[i % len(players)]
        for name in ("bare", "rpc"):
            with psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER) as conn:
                conn.execute("select 1")  # the backend exists and answered: only the call is timed
                if state_text is None:
                    state_text = conn.execute(
                        "select state::text from public.user_bayesian_state where user_id = %s", (user_id,)
                    ).fetchone()[0]
                t = time.perf_counter_ns()
                if name == "bare":
                    conn.execute(BARE_SQL, (state_text, user_id))
                else:
                    conn.execute(RPC_SQL, (user_id, MESSAGES[i % len(MESSAGES)], uuid.uuid4().hex, 60.0)).fetchone()
                out[name].append((time.perf_counter_ns() - t) / 1e6)
    return out


def state_size_after(dsn: str, messages: int) -> tuple[int, int]:
    with psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER) as conn:
        (user_id,) = population.new_players(conn, 1, "size")
        for i in range(1, messages):
            conn.execute(RPC_SQL, (user_id, MESSAGES[i % len(MESSAGES)], None, float(5 + 97 * i % 7000)))
        jsonb_text = conn.execute(
            "select state::text from public.user_bayesian_state where user_id = %s", (user_id,)
        ).fetchone()[0]
        compact = len(codec.encode(codec.decode(jsonb_text)).encode())  # the text the engine writes
        jsonb_text = len(jsonb_text.encode())  # jsonb's own output, with a space after each : and ,
        n = conn.execute(
            "select (state->>'n')::int from public.user_bayesian_state where user_id = %s", (user_id,)
        ).fetchone()[0]
        assert n == messages, n
    return compact, jsonb_text


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


Target = tuple[str, str, bool]  # what is checked, the measured value, met


def message_bench(dsn: str, args) -> list[Target]:
    with psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER) as conn:
        players = population.new_players(conn, 16, "lat")
        sets = [population.new_players(conn, 8, f"tp{j}") for j in range(2)]

    print(f"\n1 client: {args.calls} calls of each, interleaved in blocks of {args.block} ...", flush=True)
    lat = latencies(dsn, players, args.calls, args.block)
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    p99 = {k: pct(v, 0.99) for k, v in lat.items()}
    names = {
        "bare": "(a) bare UPDATE",
        "rpc": "(b) bayes_process_message",
        "app": "(c) app-server pattern",
        "checked": "(a') (a), state checked",
    }
    print(f"  {'operation':<28} {'p50 ms':>8} {'p99 ms':>8} {'p50 / (a)':>10}")
    for key in ("bare", "rpc", "app", "checked"):
        print(f"  {names[key]:<28} {p50[key]:8.3f} {p99[key]:8.3f} {p50[key] / p50['bare']:10.2f}")

    print(f"\n2 clients, {args.seconds:g} s each, separate players ...", flush=True)
    tps = {key: throughput(dsn, sets, key, args.seconds) for key in ("bare", "rpc", "app")}
    for key in ("bare", "rpc", "app"):
        print(f"  {names[key]:<28} {tps[key]:8.0f} calls/s  {tps[key] / tps['bare']:5.2f} x (a)")

    print(f"\nfirst call in a fresh backend ({args.fresh} backends each) ...", flush=True)
    first = first_calls(dsn, players, args.fresh)
    for key in ("bare", "rpc"):
        v = first[key]
        print(f"  {names[key]:<28} median {statistics.median(v):6.1f} ms   max {max(v):6.1f} ms")

    print(f"\nstate after {args.size_messages} messages ...", flush=True)
    compact, jsonb_text = state_size_after(dsn, args.size_messages)
    print(f"  compact JSON (as encoded) {compact} bytes; jsonb's text output (with spaces) {jsonb_text} bytes")

    rpc_vs_bare = p50["rpc"] / p50["bare"]
    app_vs_rpc = p50["app"] / p50["rpc"]
    tp_ratio = tps["rpc"] / tps["bare"]
    first_median = statistics.median(first["rpc"])
    size = max(compact, jsonb_text)
    return [
        ("(b) p50 <= 1.6 x (a)", f"{rpc_vs_bare:.2f} x", rpc_vs_bare <= 1.6),
        ("(b) at least 1.5 x faster than (c)", f"{app_vs_rpc:.2f} x", app_vs_rpc >= 1.5),
        ("(b) throughput at 2 clients >= 0.6 x (a)", f"{tp_ratio:.2f} x", tp_ratio >= 0.6),
        ("first call in a fresh backend <= 30 ms", f"median {first_median:.1f} ms", first_median <= 30),
        (f"state after {args.size_messages} messages <= 512 bytes", f"{size} bytes", size <= 512),
    ]


# --- bulk decay ------------------------------------------------------------

# Due for decay at %(p_now)s: the predicate of bayes.decay_batch (s a state row).
DUE_PREDICATE = "s.decay_due_at < %(p_now)s and (s.decayed_at is null or s.decayed_at < %(p_now)s)"
DUE_COUNT_SQL = f"select count(*) from public.user_bayesian_state as s where {DUE_PREDICATE}"
# Every row due at once, as migration 0013 leaves the rows written before it.
ALL_DUE_SQL = """
update public.user_bayesian_state as s
set decay_due_at = greatest(s.decayed_at, s.last_message_at + make_interval(secs => 3600 * cp.decay_grace_h))
from bayes.chapter_params as cp
where cp.chapter = s.chapter and s.last_message_at is not null
"""
# The baseline rewrites every row of the population once (all due before the
# run), as the decay does, without decaying it: the same columns (its due
# time moved by 1 us, so that the index on it is written too; a null one
# stays null, as the decay's never), decayed_at kept.
BASELINE_SQL = """
update public.user_bayesian_state as s
set state = s.state, version = s.version + 1, decayed_at = s.decayed_at,
    decay_due_at = s.decay_due_at - interval '1 microsecond', updated_at = now()
where s.last_message_at is not null
"""
LAST_RUN_SQL = (
    "select run_id, status, players, batches, extract(epoch from finished_at - started_at)::float8, decay_to"
    " from bayes.decay_run order by run_id desc limit 1"
)
TABLE_SIZE_SQL = "select pg_size_pretty(pg_total_relation_size('public.user_bayesian_state'))"
ABSENT_H = (100.0, 300.0)  # populations: last message 100 to 400 h ago, past every chapter's grace (<= 72 h)


def timed(label: str, fn: Callable[[], object], heartbeat: float | None = 15.0) -> tuple[float, object]:
    """Run fn, saying so before and after (and every `heartbeat` s meanwhile); its seconds and result."""
    print(f"  {label} ...", flush=True)
    start = time.perf_counter()
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(heartbeat):
            print(f"    ... {time.perf_counter() - start:.0f} s", flush=True)

    ticker = threading.Thread(target=beat, daemon=True) if heartbeat else None
    if ticker:
        ticker.start()
    try:
        result = fn()
    finally:
        stop.set()
        if ticker:
            ticker.join()
    seconds = time.perf_counter() - start
    print(f"  {label}: {seconds:.1f} s", flush=True)
    return seconds, result


class NoticePrinter:
    """Prints a bulk run's notices: at most one batch line every `every` s, and the final one."""

    def __init__(self, every: float = 10.0):
        self.every = every
        self.last = time.perf_counter()

    def __call__(self, diag: psycopg.errors.Diagnostic) -> None:
        message = diag.message_primary or ""
        if not message.startswith("bayes.run_decay"):
            return
        now = time.perf_counter()
        if "done:" in message or "did nothing" in message or now - self.last >= self.every:
            self.last = now
            print(f"    {message}", flush=True)


def settle(conn) -> None:
    """VACUUM the state table, then CHECKPOINT: every timed statement starts from the same kind of table."""

    def run() -> None:
        conn.execute("vacuum public.user_bayesian_state")
        conn.execute("checkpoint")

    timed("vacuum + checkpoint", run)


def fresh_population(conn, count: int, tag: str) -> None:
    """An empty player table (the section before may have left players), then `count` players all due."""
    conn.execute("truncate auth.users cascade")
    absent_from, absent_span = ABSENT_H
    timed(
        f"populating {count:,} players (last message {absent_from:g} to {absent_from + absent_span:g} h ago)",
        lambda: population.populate(
            conn, count, time.time() - absent_from * 3600, max_absent_h=absent_span, seed=4, tag=tag
        ),
    )


def run_decay_sql(conn, p_now=None, batch: int = 5000) -> str:
    """The DO block of a bulk run (bayes.run_decay_command): what pg_cron's job runs."""
    return conn.execute("select bayes.run_decay_command(%s, %s)", (p_now, batch)).fetchone()[0]


def decay_bench(dsn: str, args) -> list[Target]:
    count, batch = args.decay_players, args.decay_batch
    print(f"\nbulk decay of {count:,} players vs a bare set-based UPDATE of the same rows ...", flush=True)
    with psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER) as conn:
        conn.add_notice_handler(NoticePrinter())
        fresh_population(conn, count, "decay")
        timed("every row due (decay_due_at at its window's start)", lambda: conn.execute(ALL_DUE_SQL))
        p_now: datetime = conn.execute("select now()").fetchone()[0]
        due = conn.execute(DUE_COUNT_SQL, {"p_now": p_now}).fetchone()[0]
        print(f"  p_now = {p_now.isoformat()}: {due:,} players due", flush=True)

        settle(conn)
        base1, rows1 = timed("(a) bare UPDATE of the due rows", lambda: conn.execute(BASELINE_SQL).rowcount)
        settle(conn)
        size_before = conn.execute(TABLE_SIZE_SQL).fetchone()[0]
        command = run_decay_sql(conn, p_now, batch)
        decay, _ = timed(f"(d) a bulk run up to p_now, batch {batch}", lambda: conn.execute(command), heartbeat=None)
        size_after = conn.execute(TABLE_SIZE_SQL).fetchone()[0]
        run_id, status, run_players, run_batches, run_seconds, _ = conn.execute(LAST_RUN_SQL).fetchone()
        settle(conn)
        size_vacuumed = conn.execute(TABLE_SIZE_SQL).fetchone()[0]
        base2, rows2 = timed("(a) bare UPDATE of the same rows again", lambda: conn.execute(BASELINE_SQL).rowcount)
        left = conn.execute(DUE_COUNT_SQL, {"p_now": p_now}).fetchone()[0]

    base = (base1 + base2) / 2
    ratio = decay / base
    print(f"\n  {'statement':<36} {'rows':>10} {'seconds':>8} {'players/s':>10} {'/ mean (a)':>10}")
    for name, rows, seconds in (
        ("(a) bare UPDATE, before the decay", rows1, base1),
        (f"(d) bulk run, batch {batch}", run_players, decay),
        ("(a) bare UPDATE, after the decay", rows2, base2),
    ):
        print(f"  {name:<36} {rows:>10,} {seconds:8.1f} {rows / seconds:10,.0f} {seconds / base:10.2f}")
    print(
        f"  table size (pg_total_relation_size): {size_before} before the decay, {size_after} right after it, "
        f"{size_vacuumed} after VACUUM"
    )
    run_ok = status == "done" and run_players == count and rows1 == count and rows2 == count and left == 0
    print(
        f"  bayes.decay_run: run {run_id} {status}, {run_players:,} players in {run_batches} batches, "
        f"{run_seconds:.1f} s; still due afterwards: {left:,}   "
        f"{'ok' if run_ok else f'MISMATCH (expected {count:,} players everywhere and none left due)'}"
    )
    return [
        (f"bulk decay of {count:,} due players <= 3 x a bare UPDATE", f"{ratio:.2f} x", ratio <= 3.0),
        (f"bayes.decay_run says {count:,} players", f"{run_players:,}", run_ok),
    ]


# --- live traffic during a bulk run ---------------------------------------


class LiveClient:
    """bayes_process_message for the two kinds of players, on one connection."""

    def __init__(self, dsn: str, active: list[uuid.UUID], returning: list[uuid.UUID]):
        self.conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0, options=ENGINE_WRITER)
        self.active = active
        self.returning: Iterator[uuid.UUID] = iter(returning)  # each returning player is called once
        self.rnd = random.Random(11)
        self.i = 0

    def active_call(self) -> None:
        self.i += 1
        user_id = self.active[self.rnd.randrange(len(self.active))]
        self.conn.execute(
            RPC_SQL, (user_id, MESSAGES[self.i % len(MESSAGES)], uuid.uuid4().hex, 30.0 + self.i % 600)
        ).fetchone()

    def returning_call(self) -> None:
        self.i += 1
        self.conn.execute(
            RPC_SQL, (next(self.returning), MESSAGES[self.i % len(MESSAGES)], uuid.uuid4().hex, None)
        ).fetchone()

    def sample(self, out: dict[str, list[float]]) -> None:
        """One call of each kind, timed."""
        for name, op in (("active", self.active_call), ("returning", self.returning_call)):
            t = time.perf_counter_ns()
            op()
            out[name].append((time.perf_counter_ns() - t) / 1e6)


def live_bench(dsn: str, args) -> list[Target]:
    count, batch = args.live_players, args.decay_batch
    print(
        f"\nlive traffic during a bulk decay run of {count:,} players (1 client, prepared, autocommit) ...", flush=True
    )
    with psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER) as conn:
        fresh_population(conn, count, "live")
        timed("every row due (decay_due_at at its window's start)", lambda: conn.execute(ALL_DUE_SQL))
        _, active = timed(
            f"{args.live_active} active players, a first message each through the RPC",
            lambda: population.new_players(conn, args.live_active, "active"),
        )
        returning = [
            row[0]
            for row in conn.execute(
                "select user_id from public.user_bayesian_state where user_id <> all(%s) order by user_id", (active,)
            )
        ]
        random.Random(7).shuffle(returning)
        settle(conn)

    client = LiveClient(dsn, active, returning)
    for _ in range(50):  # warm up: plans, caches, the interpreter of this backend
        client.sample({"active": [], "returning": []})
    idle: dict[str, list[float]] = {"active": [], "returning": []}
    print(f"  idle: {args.live_calls} calls of each kind, alternating ...", flush=True)
    for _ in range(args.live_calls):
        client.sample(idle)

    print(f"  during: a bulk run (batch {batch}) on another connection ...", flush=True)
    during: dict[str, list[float]] = {"active": [], "returning": []}
    decay_conn = psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER)
    decay_conn.add_notice_handler(NoticePrinter())
    command = run_decay_sql(decay_conn, None, batch)
    started = threading.Event()

    def run() -> float:
        started.set()
        t = time.perf_counter()
        decay_conn.execute(command)
        return time.perf_counter() - t

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(run)
        started.wait()
        while True:  # at least one sample of each kind, however short the run
            client.sample(during)
            if future.done():
                break
        run_wall = future.result()  # raises what the run raised
    run_id, status, run_players, run_batches, run_seconds, decay_to = decay_conn.execute(LAST_RUN_SQL).fetchone()
    left = decay_conn.execute(DUE_COUNT_SQL, {"p_now": decay_to}).fetchone()[0]
    decay_conn.close()
    client.conn.close()

    print(
        f"  run {run_id} {status}: {run_players:,} players in {run_batches} batches, {run_wall:.1f} s "
        f"(log: {run_seconds:.1f} s); {len(during['active'])} calls of each kind during it; "
        f"still due afterwards: {left:,}"
    )
    names = {"active": "(i) active players", "returning": "(ii) returning players"}
    print(
        f"\n  {'kind':<24} {'p50 idle':>9} {'p99 idle':>9} {'p50 run':>9} {'p99 run':>9} {'max run':>9} "
        f"{'run > 20 ms':>12} {'p99 run / idle':>15}"
    )
    targets = []
    for key, name in names.items():
        p99_idle, p99_run = pct(idle[key], 0.99), pct(during[key], 0.99)
        slow = sum(ms > 20 for ms in during[key]) / len(during[key])
        ratio = p99_run / p99_idle
        print(
            f"  {name:<24} {statistics.median(idle[key]):9.3f} {p99_idle:9.3f} {statistics.median(during[key]):9.3f}"
            f" {p99_run:9.3f} {max(during[key]):9.3f} {slow:12.2%} {ratio:15.2f}"
        )
        targets.append((f"{name}: p99 during a run <= 3 x idle", f"{ratio:.2f} x", ratio <= 3.0))
    print("  (ms, and the share of the calls during the run that took over 20 ms; a returning player whose row")
    print("  is in the batch being decayed waits for that batch's commit)")
    return targets


# --- main ------------------------------------------------------------------

SECTIONS = ("message", "api", "decay", "live", "absence", "fallback", "shadow", "eventlog", "health", "partitions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--only", action="append", choices=SECTIONS, help="run only this section (repeatable); default: all of them"
    )
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per operation at 1 client")
    parser.add_argument("--block", type=int, default=100, help="calls per block when interleaving")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--fresh", type=int, default=20, help="fresh backends for the first-call timing")
    parser.add_argument("--size-messages", type=int, default=1000, help="messages before the state size is read")
    parser.add_argument("--decay-players", type=int, default=1_000_000, help="players of the bulk-decay section")
    parser.add_argument("--decay-batch", type=int, default=5000, help="p_batch of bayes.run_decay")
    parser.add_argument("--live-players", type=int, default=200_000, help="due players of the live section")
    parser.add_argument("--live-active", type=int, default=300, help="active players of the live section")
    parser.add_argument("--live-calls", type=int, default=2000, help="idle calls of each kind in the live section")
    bench_api.add_arguments(parser)
    bench_absence.add_arguments(parser)
    bench_fallback.add_arguments(parser)
    bench_shadow.add_arguments(parser)
    bench_eventlog.add_arguments(parser)
    bench_health.add_arguments(parser)
    bench_partitions.add_arguments(parser)
    args = parser.parse_args()
    sections = [name for name in SECTIONS if name in (args.only or SECTIONS)]

    dsn = stack_env()["DB_URL"]
    with psycopg.connect(dsn, autocommit=True, options=ENGINE_WRITER) as conn:
        server = conn.execute("select version()").fetchone()[0].split(",")[0]
        settings = dict(
            conn.execute(
                "select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'wal_sync_method')"
            ).fetchall()
        )
        conn.execute("select cron.alter_job(jobid, active => false) from cron.job where jobname = 'bayes-run-decay'")
    print(
        f"server: {server}; fsync={settings['fsync']}, synchronous_commit={settings['synchronous_commit']}, "
        f"wal_sync_method={settings['wal_sync_method']}; loopback TCP, psycopg {psycopg.__version__}, "
        f"prepared, autocommit; pg_cron job bayes-run-decay paused"
    )

    targets: dict[str, list[Target]] = {}
    if "message" in sections:
        targets["issue 3"] = message_bench(dsn, args)
    if "api" in sections:
        env = stack_env()
        rest_url = f"http://127.0.0.1:{os.environ['BAYES_REST_PORT']}"
        targets.setdefault("issue 15", []).extend(bench_api.run(dsn, env, rest_url, args))
    if "decay" in sections:
        targets.setdefault("issue 4", []).extend(decay_bench(dsn, args))
    if "live" in sections:
        targets.setdefault("issue 4", []).extend(live_bench(dsn, args))
    if "absence" in sections:
        targets.setdefault("issue 15", []).extend(bench_absence.run(dsn, args))
    problems: list[str] = []
    if "fallback" in sections:
        targets["issue 13"], problems = bench_fallback.run(dsn, args)
    if "shadow" in sections:
        targets["issue 14"], shadow_problems = bench_shadow.run(dsn, args)
        problems += shadow_problems
    if "eventlog" in sections:
        targets.setdefault("issue 15", []).extend(bench_eventlog.run(dsn, args))
    if "health" in sections:
        targets["issue 16"] = bench_health.run(dsn, args)
    if "partitions" in sections:
        targets["issue 17"] = bench_partitions.run(stack_env(), partitioned_stack_env(), args)
    for issue, checks in targets.items():
        print(f"\ntargets ({issue}):")
        width = max(len(label) for label, _, _ in checks) + 1
        for label, value, ok in checks:
            print(f"  {label + ':':<{width}}  {value:>14}   {verdict(ok)}")
    for problem in problems:
        print(f"\nFAILED: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
