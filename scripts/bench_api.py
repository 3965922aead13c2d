"""The comparison the game's engineers make (issue 15), section `api` of scripts/bench: one message
through the stack's own gateway and PostgREST, with supabase-py and the service key, one client:

  (1) rpc      supabase.rpc("bayes_process_message", {...}).execute(): one HTTP request; the state and
               its event written in one transaction under the row lock
  (2) pattern  the research's two-call pattern: supabase-py select of the state row, the same math in
               the client (the bayes_engine package, as (c) of the message section), then upsert of
               the state (supabase-py's defaults: the row comes back); two HTTP requests, no lock
               between them, no event

service_role may not write public.user_bayesian_state (issue 12), so (2) reads and writes a table of
its own that this section creates on the bench stack, public.bench_client_state (the columns,
generated columns, checks and indexes of public.user_bayesian_state; its trigger and foreign key
aside), granted to service_role, announced to PostgREST with NOTIFY pgrst, and dropped at the end.

The two run interleaved in blocks (noise hits both alike). Where the time goes is measured in the
same run: PostgREST's own Server-Timing header (scripts/bench starts PostgREST with
PGRST_SERVER_TIMING_ENABLED=true: jwt, parse, plan, transaction, response), the same requests
straight to PostgREST without the gateway (postgrest-py, the client supabase-py wraps), the database
alone (the same statements over psycopg, prepared), and the floor of the client and HTTP: a
supabase-py select of one column of one row by primary key.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from datetime import UTC, datetime

import psycopg
from bayes_dev import players as population
from bayes_dev.support import Client
from bayes_engine import codec, events
from bayes_engine.model import Message, RowTimes
from bayes_engine.params import Params
from postgrest import SyncPostgrestClient

MESSAGES = population.MESSAGES
TABLE = "bench_client_state"
CREATE_SQL = f"""
create table public.{TABLE} (like public.user_bayesian_state including all);
grant select, insert, update on table public.{TABLE} to service_role;
notify pgrst, 'reload schema';
"""
DROP_SQL = f"drop table if exists public.{TABLE}; notify pgrst, 'reload schema';"
COLUMNS = "state,version,last_message_at,decayed_at"
STORED = "user_id, state, version, last_message_at, decayed_at, created_at, updated_at"  # not the generated ones
# What PostgREST runs for (1) and (2), over psycopg: the database's share of each.
DB_RPC_SQL = "select public.bayes_process_message(%s, %s, p_message_id => %s, p_reply_gap_s => %s)"
DB_SELECT_SQL = f"select state, version, last_message_at, decayed_at from public.{TABLE} where user_id = %s"
DB_UPSERT_SQL = f"""
insert into public.{TABLE} as s (user_id, state, version, last_message_at, decayed_at, updated_at)
values (%s, %s::jsonb, %s, %s, %s, %s)
on conflict (user_id) do update set state = excluded.state, version = excluded.version,
    last_message_at = excluded.last_message_at, decayed_at = excluded.decayed_at, updated_at = excluded.updated_at
returning s.*
"""
PHASES = ("jwt", "parse", "plan", "transaction", "response")
# PostgREST 12.0 writes each duration of Server-Timing in microseconds (seconds x 1e6), whatever the
# header's specification says (milliseconds).
US_PER_MS = 1000.0


def add_arguments(parser) -> None:
    parser.add_argument("--api-calls", type=int, default=1000, help="timed calls of each kind in the api section")
    parser.add_argument("--api-players", type=int, default=16, help="players of the api section")


def _epoch(text: str | None) -> float | None:
    return None if text is None else datetime.fromisoformat(text).timestamp()


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat()


class Timings:
    """Server-Timing of the responses (ms per phase), as PostgREST reports them."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def hook(self, response) -> None:
        header = response.headers.get("server-timing", "")
        self.last = {
            part.split(";")[0].strip(): float(part.split("dur=")[1]) / US_PER_MS
            for part in header.split(",")
            if "dur=" in part
        }


class ApiClient:
    """(1), (2) and the floor through one supabase-py client (keep-alive); the same through postgrest-py
    straight to PostgREST."""

    def __init__(self, env: dict[str, str], rest_url: str, params: Params, players: list[uuid.UUID]):
        self.timings = Timings()
        self.gateway = Client(env["API_URL"], env["SERVICE_ROLE_KEY"]).sb
        self.gateway.postgrest.session.event_hooks["response"].append(self.timings.hook)
        key = env["SERVICE_ROLE_KEY"]
        self.direct = SyncPostgrestClient(rest_url, headers={"apikey": key, "Authorization": f"Bearer {key}"})
        self.direct.session.event_hooks["response"].append(self.timings.hook)
        self.params = params
        self.players = players
        self.i = 0

    def _next(self):
        self.i += 1
        return str(self.players[self.i % len(self.players)]), MESSAGES[self.i % len(MESSAGES)], 30.0 + self.i % 600

    def rpc(self, api) -> dict:
        user_id, text, gap = self._next()
        args = {"p_user_id": user_id, "p_message": text, "p_message_id": uuid.uuid4().hex, "p_reply_gap_s": gap}
        return api.rpc("bayes_process_message", args).execute().data

    def pattern(self, api) -> dict:
        user_id, text, gap = self._next()
        row = api.table(TABLE).select(COLUMNS).eq("user_id", user_id).execute().data[0]
        phases = dict(self.timings.last)
        now = time.time()
        state = codec.decode(row["state"], self.params)
        result, _ = events.apply_message(
            state,
            self.params,
            user_id,
            Message(text, now, gap),
            RowTimes(_epoch(row["last_message_at"]), _epoch(row["decayed_at"])),
        )
        result.update(user_id=user_id, duplicate=False, version=row["version"] + 1)
        at = _iso(now)
        api.table(TABLE).upsert(
            {
                "user_id": user_id,
                "state": json.loads(codec.encode(state)),
                "version": row["version"] + 1,
                "last_message_at": at,
                "decayed_at": at,
                "updated_at": at,
            }
        ).execute()
        self.timings.last = {k: v + phases.get(k, 0.0) for k, v in self.timings.last.items()}  # both requests
        return result

    def floor(self, api) -> None:
        user_id, _, _ = self._next()
        api.table(TABLE).select("version").eq("user_id", user_id).execute()


class DbClient:
    """The database's share: the same statements over psycopg (prepared, autocommit), the math between."""

    def __init__(self, dsn: str, params: Params, players: list[uuid.UUID]):
        self.conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)
        self.params = params
        self.players = players
        self.i = 0

    def _next(self):
        self.i += 1
        return self.players[self.i % len(self.players)], MESSAGES[self.i % len(MESSAGES)], 30.0 + self.i % 600

    def rpc(self) -> None:
        user_id, text, gap = self._next()
        self.conn.execute(DB_RPC_SQL, (user_id, text, uuid.uuid4().hex, gap)).fetchone()

    def pattern(self) -> None:
        user_id, text, gap = self._next()
        state, version, last, decayed = self.conn.execute(DB_SELECT_SQL, (user_id,)).fetchone()
        now = time.time()
        state = codec.decode(state, self.params)
        last_s = None if last is None else last.timestamp()
        decayed_s = None if decayed is None else decayed.timestamp()
        events.apply_message(state, self.params, str(user_id), Message(text, now, gap), RowTimes(last_s, decayed_s))
        at = datetime.fromtimestamp(now, UTC)
        self.conn.execute(DB_UPSERT_SQL, (user_id, codec.encode(state), version + 1, at, at, at)).fetchall()


def _timed(op, out: list[float], phases: list[dict] | None = None, timings: Timings | None = None) -> None:
    t = time.perf_counter_ns()
    op()
    out.append((time.perf_counter_ns() - t) / 1e6)
    if phases is not None:
        phases.append(dict(timings.last))


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(dsn: str, env: dict[str, str], rest_url: str, args) -> list[tuple[str, str, bool]]:
    calls, block = args.api_calls, args.block
    print(f"\nthrough PostgREST: supabase-py, service key, one client, {calls} calls of each ...", flush=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        params = Params.from_snapshot(json.loads(conn.execute("select bayes.params_snapshot()::text").fetchone()[0]))
        players = [uuid.uuid4() for _ in range(args.api_players)]
        for user_id in players:
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"api-{user_id}@bench.local"))
            conn.execute("select public.bayes_process_message(%s, 'hello')", (user_id,))
        conn.execute(DROP_SQL)
        conn.execute(CREATE_SQL)
        print(f"  created public.{TABLE} for (2) (dropped at the end): service_role may not write the state table")
        conn.execute(
            f"insert into public.{TABLE} ({STORED}) select {STORED} from public.user_bayesian_state"
            " where user_id = any(%s)",
            (players,),
        )
    try:
        client = ApiClient(env, rest_url, params, players)
        for _ in range(100):  # PostgREST's schema cache reload is asynchronous: wait until it sees the table
            try:
                client.floor(client.gateway)
                break
            except Exception:  # noqa: BLE001 - PGRST205 until the reload is done
                time.sleep(0.1)
        db = DbClient(dsn, params, players)
        kinds = {
            "rpc": lambda: client.rpc(client.gateway),
            "pattern": lambda: client.pattern(client.gateway),
            "rpc_direct": lambda: client.rpc(client.direct),
            "pattern_direct": lambda: client.pattern(client.direct),
            "floor": lambda: client.floor(client.gateway),
            "floor_direct": lambda: client.floor(client.direct),
            "db_rpc": db.rpc,
            "db_pattern": db.pattern,
        }
        for op in kinds.values():  # warm up: connections, plans, the interpreters of the backends
            for _ in range(30):
                op()
        lat: dict[str, list[float]] = {name: [] for name in kinds}
        phases: dict[str, list[dict]] = {name: [] for name in kinds}
        done = 0
        while done < calls:
            for name, op in kinds.items():
                http = not name.startswith("db_")
                for _ in range(block):
                    _timed(op, lat[name], phases[name] if http else None, client.timings)
            done += block
        db.conn.close()
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(DROP_SQL)
        print(f"  dropped public.{TABLE}")

    p50 = {k: statistics.median(v) for k, v in lat.items()}
    p99 = {k: pct(v, 0.99) for k, v in lat.items()}
    names = {
        "rpc": "(1) rpc, via the gateway",
        "pattern": "(2) select+math+upsert, gateway",
        "rpc_direct": "(1) rpc, PostgREST direct",
        "pattern_direct": "(2) pattern, PostgREST direct",
        "floor": "floor: 1-column select, gateway",
        "floor_direct": "floor: the same, direct",
        "db_rpc": "(1) database alone (psycopg)",
        "db_pattern": "(2) database alone (psycopg)",
    }
    header = f"{'operation':<34} {'p50 ms':>8} {'p99 ms':>8}"
    print(f"\n  {header}   PostgREST Server-Timing, median ms: {' '.join(PHASES)}")
    for key, label in names.items():
        timing = ""
        if phases[key] and phases[key][0]:
            timing = " ".join(f"{statistics.median(p.get(ph, 0.0) for p in phases[key]):.3f}" for ph in PHASES)
        print(f"  {label:<34} {p50[key]:8.3f} {p99[key]:8.3f}   {timing}")
    ratio = p50["rpc"] / p50["pattern"]
    ratio99 = p99["rpc"] / p99["pattern"]
    print(f"\n  (1) / (2): p50 {ratio:.2f}, p99 {ratio99:.2f}")
    # PostgREST 12.0's "transaction" phase reads about 0.25 ms for an RPC that takes over 1 ms in the
    # database alone: it does not cover the statement's execution, so the split below uses the database
    # alone (over psycopg: one loopback round trip each, the client's math included for (2)) instead.
    for kind in ("rpc", "pattern"):
        total = p50[kind]
        gateway = p50[kind] - p50[f"{kind}_direct"]
        database = p50[f"db_{kind}"]
        print(
            f"  {names[kind][:3]} {total:.3f} ms = gateway and its guard {gateway:.3f}"
            f" + the database alone (psycopg) {database:.3f}"
            f" + PostgREST, HTTP and supabase-py {total - gateway - database:.3f}"
            f" (the floor, a one-column select through the gateway: {p50['floor']:.3f})"
        )
    return [("(1) rpc p50 <= 0.55 x (2) the two-call pattern, through PostgREST", f"{ratio:.2f} x", ratio <= 0.55)]
