"""Benchmarks of the per-message path, run by scripts/bench on its own stack.

Every figure is measured in this run, on loopback, with psycopg (prepared
statements, autocommit), side by side:

  (a) bare     a single-row JSONB UPDATE by primary key (the floor: one
               statement, one commit)
  (b) rpc      bayes_process_message (one call, one transaction, one row
               lock, the state and an event written)
  (c) app      the app-server pattern: SELECT the state, the same math in
               Python in the client (the bayes_engine package itself), then
               one statement that UPDATEs the row and inserts the event; two
               round trips and no lock between them

The three run interleaved in blocks, so that a noisy neighbour hurts all of
them alike; the report gives ratios against (a).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "plpython"))
sys.path.insert(0, str(ROOT / "tests"))

from bayes_engine import codec, events  # noqa: E402
from bayes_engine.params import Params  # noqa: E402
from support import stack_env  # noqa: E402

MESSAGES = [
    "hey! how was your day? I missed talking to you",
    "haha that is so funny 😂 you always make me laugh",
    "I think you are amazing and kind, thank you for listening. What do you dream about?",
    "ok",
    "whatever, this is boring",
    "I feel like I can be honest with you. I have a secret I never told anyone, it is about my "
    "family and how afraid I was growing up. Do you ever feel that way? I hope you do not think "
    "less of me for it, I just want to be real with someone for once and you feel safe.",
    "let's go to a bar tonight and do something crazy and wild",
    "why? what do you mean?",
]

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
        decayed_at = greatest(s.decayed_at, to_timestamp(%(sent_at)s)), updated_at = now()
    where s.user_id = %(user_id)s
    returning s.version
)
insert into bayes.player_event (user_id, kind, message_id, occurred_at, input, result, state_version)
select %(user_id)s, 'message', %(message_id)s, to_timestamp(%(sent_at)s), %(input)s::jsonb,
       %(result)s::jsonb, u.version
from updated as u
"""


def new_players(conn, count: int, tag: str) -> list[uuid.UUID]:
    players = [uuid.uuid4() for _ in range(count)]
    for user_id in players:
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{tag}-{user_id}@bench.local"))
        conn.execute("select public.bayes_process_message(%s, 'hello')", (user_id,))
    return players


class Runner:
    """The three operations on one connection."""

    def __init__(self, dsn: str, players: list[uuid.UUID]):
        self.conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)
        self.players = players
        self.i = 0
        row = self.conn.execute("select bayes.params_snapshot()::text").fetchone()
        self.params = Params.from_snapshot(json.loads(row[0]))
        row = self.conn.execute("select state::text from public.user_bayesian_state where user_id = %s",
                                (players[0],)).fetchone()
        self.bare_state = row[0]

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
        result, event_input = events.apply_message(state, self.params, str(user_id), text, now, last, decayed, gap)
        result.update(user_id=str(user_id), message_id=message_id, duplicate=False, version=version + 1)
        self.conn.execute(APP_WRITE_SQL, {
            "state": codec.encode(state), "sent_at": now, "user_id": user_id, "message_id": message_id,
            "input": json.dumps(event_input), "result": json.dumps(result),
        })


def latencies(dsn: str, players, calls: int, block: int) -> dict[str, list[float]]:
    runner = Runner(dsn, players)
    ops = {"bare": runner.bare, "rpc": runner.rpc, "app": runner.app}
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
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("select 1")  # the backend exists and answered: only the call is timed
                if state_text is None:
                    state_text = conn.execute("select state::text from public.user_bayesian_state where user_id = %s",
                                              (user_id,)).fetchone()[0]
                t = time.perf_counter_ns()
                if name == "bare":
                    conn.execute(BARE_SQL, (state_text, user_id))
                else:
                    conn.execute(RPC_SQL, (user_id, MESSAGES[i % len(MESSAGES)], uuid.uuid4().hex, 60.0)).fetchone()
                out[name].append((time.perf_counter_ns() - t) / 1e6)
    return out


def state_size_after(dsn: str, messages: int) -> tuple[int, int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        (user_id,) = new_players(conn, 1, "size")
        for i in range(1, messages):
            conn.execute(RPC_SQL, (user_id, MESSAGES[i % len(MESSAGES)], None, float(5 + 97 * i % 7000)))
        jsonb_text = conn.execute("select state::text from public.user_bayesian_state where user_id = %s",
                                  (user_id,)).fetchone()[0]
        compact = len(codec.encode(codec.decode(jsonb_text)).encode())  # the text the engine writes
        jsonb_text = len(jsonb_text.encode())  # jsonb's own output, with a space after each : and ,
        n = conn.execute("select (state->>'n')::int from public.user_bayesian_state where user_id = %s",
                         (user_id,)).fetchone()[0]
        assert n == messages, n
    return compact, jsonb_text


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT MET"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="timed calls per operation at 1 client")
    parser.add_argument("--block", type=int, default=100, help="calls per block when interleaving")
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--fresh", type=int, default=20, help="fresh backends for the first-call timing")
    parser.add_argument("--size-messages", type=int, default=1000, help="messages before the state size is read")
    args = parser.parse_args()

    dsn = stack_env()["DB_URL"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        server = conn.execute("select version()").fetchone()[0].split(",")[0]
        settings = dict(conn.execute(
            "select name, setting from pg_settings where name in ('fsync', 'synchronous_commit', 'wal_sync_method')"
        ).fetchall())
        players = new_players(conn, 16, "lat")
        sets = [new_players(conn, 8, f"tp{j}") for j in range(2)]
    print(f"server: {server}; fsync={settings['fsync']}, synchronous_commit={settings['synchronous_commit']}, "
          f"wal_sync_method={settings['wal_sync_method']}; loopback TCP, psycopg {psycopg.__version__}, "
          f"prepared, autocommit")

    print(f"\n1 client: {args.calls} calls of each, interleaved in blocks of {args.block} ...", flush=True)
    lat = latencies(dsn, players, args.calls, args.block)
    p50 = {k: statistics.median(v) for k, v in lat.items()}
    p99 = {k: pct(v, 0.99) for k, v in lat.items()}
    names = {"bare": "(a) bare UPDATE", "rpc": "(b) bayes_process_message", "app": "(c) app-server pattern"}
    print(f"  {'operation':<28} {'p50 ms':>8} {'p99 ms':>8} {'p50 / (a)':>10}")
    for key in ("bare", "rpc", "app"):
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
    print("\ntargets (issue 3):")
    print(f"  (b) p50 <= 1.6 x (a):                   {rpc_vs_bare:.2f} x   {verdict(rpc_vs_bare <= 1.6)}")
    print(f"  (b) at least 1.5 x faster than (c):     {app_vs_rpc:.2f} x   {verdict(app_vs_rpc >= 1.5)}")
    print(f"  (b) throughput at 2 clients >= 0.6 x (a): {tp_ratio:.2f} x   {verdict(tp_ratio >= 0.6)}")
    print(f"  first call in a fresh backend <= 30 ms:  median {first_median:.1f} ms   "
          f"{verdict(first_median <= 30)}")
    print(f"  state after {args.size_messages} messages <= 512 bytes:  {max(compact, jsonb_text)} bytes   "
          f"{verdict(max(compact, jsonb_text) <= 512)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
