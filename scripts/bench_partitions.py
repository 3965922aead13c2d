"""Section "partitions" of scripts/bench.py (issue 17): what the PL/Proxy hop costs a call, and the
throughput of the partitioned mode against a single node, measured side by side in one run.

scripts/bench starts, beside its single node, a partitioned stack of its own (4 partitions, each a
PostgreSQL cluster, and the proxy that PostgREST serves; .stack-bench-partitions/, ports 200 above
the bench stack's, partitions 300 above), fresh, and stops it at the end. Every message is a real
chat line of chatterbot-corpus (the first line of each conversation, bayes_dev.lifetime), in turn,
with a fresh message id and a reply gap. The pg_cron jobs of every node are paused while the section
runs (and set back as they were).

(a) Per-call latency, one client, prepared statements, autocommit. The players are spread over every
    partition (consecutive calls go to different partitions); every side runs the same sequence of
    players and messages, in alternating blocks (a b c ... a b c ...) so that a noisy neighbour hurts
    all sides alike. For bayes_process_message and for the read bayes_get_state, the path is cut
    into steps, each a side of its own:

      direct       on the player's partition: public.<rpc> (psycopg on the partition, as postgres,
                   as the single node's benchmarks call it)
      entry        on the partition: bayes_partition.<rpc>('service_role', ...), logged in as
                   bayes_proxy (what the proxy runs there: the role, claims and seed set, then
                   public.<rpc>)
      remote       at the proxy: bayes_remote.<rpc>('service_role', ...), the PL/Proxy function
                   alone (routing by hashtext, the partition's connection, arguments and result as
                   text)
      no block     at the proxy: the RPC's own wrapper without its exception block and with
                   bayes_remote.caller_role() written inline (bench_partitions.*, made from the
                   wrapper's own text: pg_get_functiondef; each cut must be found exactly once)
      inline role  at the proxy: the wrapper with bayes_remote.caller_role() written inline
      proxy        at the proxy: public.<rpc>, the RPC as clients call it

    The ratio proxy / direct (p50 and p99) is the figure of the issue (target: <= 1.3 x for
    bayes_process_message at synchronous_commit = on, printed for every node); each step's
    difference to the one before says where the hop's cost goes.

    The bare hop, for the players of partition 0: a PL/Proxy function that returns 1 (RUN ON
    hashtext(p_user_id::text)), the same with RUN ON 0 (no hash to compute), the same with the three
    SET clauses of the RPCs' PL/Proxy functions (search_path, DateStyle, TimeZone), and one that returns
    a constant jsonb, the text of a real bayes_process_message result, each against the same function
    called on the partition.

(b) Throughput of the whole: bayes_process_message calls per second at 1, 2 and 4 clients (threads,
    each its own connection and its own players, 2 on every partition), --partitions-seconds each,
    --partitions-rounds rounds (the order of the kinds reversed every other round; the table gives
    the mean): the single node (its players with auth.users rows, as there), the partitions called
    directly (the client picks the player's partition: the floor of the partitioned mode, without
    its proxy), the proxy, and through each stack's API (the gateway and PostgREST, supabase-py with
    the service key; both APIs warmed up first, untimed, at the highest client count). On this
    machine the proxy, the partitions and the clients share the same cores: the ratio says what the
    partitioned mode costs in CPU, not what separate hosts would give. The load average at the start
    and the end says how quiet the machine was.

(c) The first call in a fresh backend (its connection made beforehand): on the single node, on a
    partition, and at the proxy, whose first call to each partition makes PL/Proxy's connection there
    (a new backend of the partition, which loads the engine); and the login alone that PL/Proxy's
    connection makes (bayes_proxy, TCP, SCRAM).

It leaves the schema bench_partitions nowhere (created on the proxy and the partitions, dropped at
the end); its players stay (their states and events).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import statistics
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from bayes_dev import lifetime
from bayes_dev.support import Client
from psycopg.conninfo import make_conninfo

Target = tuple[str, str, bool]

SCHEMA = "bench_partitions"
CRON_JOBS = ("bayes-run-decay", "bayes-run-retention", "bayes-record-health")
# The two RPCs of (a): their signature, the arguments after (p_role, p_claims, p_seed) of their
# bayes_partition and bayes_remote functions, and the call of the public RPC.
RPCS = {
    "bayes_process_message": {
        "signature": "(uuid, text, timestamptz, text, double precision, boolean)",
        "args": "%s, %s, now(), %s, %s, null",  # p_user_id, p_message, p_sent_at, p_message_id, p_reply_gap_s, ...
        "public": "select public.bayes_process_message(%s, %s, p_message_id => %s, p_reply_gap_s => %s)",
    },
    "bayes_get_state": {"signature": "(uuid)", "args": "%s", "public": "select public.bayes_get_state(%s)"},
}
STEPS = ("direct", "entry", "remote", "no_block", "inline_role", "proxy")
STEP_LABELS = {
    "direct": "direct: public.{rpc} on the partition",
    "entry": "entry: bayes_partition.{rpc} (bayes_proxy)",
    "remote": "remote: bayes_remote.{rpc} at the proxy",
    "no_block": "wrapper, no exception block, role inline",
    "inline_role": "wrapper, caller_role() inline",
    "proxy": "proxy: public.{rpc} at the proxy",
}
STEP_NOTES = {
    "entry": "set_config of role, claims and seed; service_role instead of postgres",
    "remote": "the PL/Proxy hop: routing, a round trip to the partition, text I/O",
    "no_block": "the wrapper's definer call, check_not_null, current_setting",
    "inline_role": "the exception block (a subtransaction) and its variables",
    "proxy": "bayes_remote.caller_role()",
}
ROLE_INLINE = (
    "case current_setting('role') when 'anon' then 'anon' when 'authenticated' then 'authenticated'"
    " else 'service_role' end"
)
# The exception block of a wrapper: its `begin`, the call it returns, and everything from `exception` to
# its `end;` (group 2: the return statement, kept).
BLOCK_RE = re.compile(
    r"\n(\s*)begin\n(\s*return bayes_remote\.\w+\(.*?\);\n)\s*exception when others then\n.*?\n\1end;\n", re.S
)


def add_arguments(parser) -> None:
    group = parser.add_argument_group("section partitions (the partitioned mode, issue 17)")
    group.add_argument("--partitions-calls", type=int, default=2000, help="timed calls of each side in (a)")
    group.add_argument("--partitions-block", type=int, default=100, help="calls per block in (a)")
    group.add_argument("--partitions-seconds", type=float, default=4.0, help="duration of each throughput run")
    group.add_argument("--partitions-rounds", type=int, default=2, help="throughput runs of each kind and count")
    group.add_argument("--partitions-fresh", type=int, default=10, help="fresh backends of each kind in (c)")
    group.add_argument(
        "--partitions-clients", default="1,2,4", help="client counts of the throughput runs (comma-separated)"
    )
    group.add_argument(
        "--partitions-api",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the throughput through the API (the gateway and PostgREST of each stack)",
    )


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def dsn_as(dsn: str, **changes: str) -> str:
    return make_conninfo(dsn, **changes)


@dataclass
class Nodes:
    """The two stacks: the single node and the partitioned one (its proxy and partitions, in order)."""

    single: str
    proxy: str
    partitions: list[str]
    single_api: tuple[str, str]  # (API URL, service key)
    proxy_api: tuple[str, str]
    proxy_login: dict[str, str] = field(default_factory=dict)  # the user mapping the proxy logs in with

    @classmethod
    def from_envs(cls, single_env: dict[str, str], part_env: dict[str, str]) -> Nodes:
        return cls(
            single=single_env["DB_URL"],
            proxy=part_env["DB_URL"],
            partitions=part_env["PARTITION_URLS"].split(","),
            single_api=(single_env["API_URL"], single_env["SERVICE_ROLE_KEY"]),
            proxy_api=(part_env["API_URL"], part_env["SERVICE_ROLE_KEY"]),
        )


@dataclass
class Result:
    """What the section measured, for its report and for the tests."""

    settings: dict[str, dict[str, str]] = field(default_factory=dict)  # node -> name -> setting
    players: list[uuid.UUID] = field(default_factory=list)  # every player the section made on the proxy
    single_players: list[uuid.UUID] = field(default_factory=list)
    part_of: dict[uuid.UUID, int] = field(default_factory=dict)
    latency: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # rpc -> step -> ms
    hop: dict[str, list[float]] = field(default_factory=dict)
    throughput: dict[tuple[str, int], float] = field(default_factory=dict)  # (kind, clients) -> calls/s
    client_cpu: dict[tuple[str, int], float] = field(default_factory=dict)  # share of one core
    first: dict[str, list[float]] = field(default_factory=dict)  # (c): ms
    messages: dict[str, int] = field(default_factory=dict)  # bayes_process_message calls: "proxy", "single"


# --- the nodes ---------------------------------------------------------------


def check_nodes(nodes: Nodes) -> dict[str, dict[str, str]]:
    """Each partition URL is the partition of its rank; the settings of every node."""
    settings = {}
    names = ("synchronous_commit", "fsync", "wal_sync_method")
    for label, dsn in [("single node", nodes.single), ("proxy", nodes.proxy)] + [
        (f"partition {i}", url) for i, url in enumerate(nodes.partitions)
    ]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            settings[label] = dict(
                conn.execute("select name, setting from pg_settings where name = any(%s)", (list(names),)).fetchall()
            )
            if label.startswith("partition "):
                row = conn.execute("select partition_index, partition_count from bayes.partition").fetchone()
                expected = (int(label.split()[1]), len(nodes.partitions))
                if row != expected:
                    raise RuntimeError(f"bench partitions: {dsn} is partition {row}, not {expected}")
    with psycopg.connect(nodes.proxy, autocommit=True) as conn:
        row = conn.execute(
            "select umoptions from pg_catalog.pg_user_mappings where srvname = 'bayes_partitions'"
            " and usename = 'public'"
        ).fetchone()
    if row is None:
        raise RuntimeError("bench partitions: the proxy has no user mapping for server bayes_partitions")
    nodes.proxy_login = dict(option.split("=", 1) for option in row[0])
    return settings


@contextlib.contextmanager
def cron_paused(dsns: list[str]):
    """The engine's pg_cron jobs inactive on every node meanwhile, then as they were."""
    saved = []
    try:
        for dsn in dsns:
            with psycopg.connect(dsn, autocommit=True) as conn:
                jobs = conn.execute(
                    "select jobid, active from cron.job where jobname = any(%s)", (list(CRON_JOBS),)
                ).fetchall()
                saved.append((dsn, jobs))
                for jobid, _ in jobs:
                    conn.execute("select cron.alter_job(%s, active => false)", (jobid,))
        yield
    finally:
        for dsn, jobs in saved:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for jobid, active in jobs:
                    conn.execute("select cron.alter_job(%s, active => %s)", (jobid, active))


def spread_players(proxy: psycopg.Connection, count: int, n: int) -> list[tuple[uuid.UUID, int]]:
    """`count` new player ids, with their partitions, round-robin over the n partitions (hashtext, as
    PL/Proxy routes: hashtext(p_user_id::text) & (n - 1))."""
    by_part: dict[int, list[uuid.UUID]] = {i: [] for i in range(n)}
    per = -(-count // n)
    while min(len(v) for v in by_part.values()) < per:
        ids = [uuid.uuid4() for _ in range(64 * n)]
        rows = proxy.execute("select u, hashtext(u::text) & %s from unnest(%s::uuid[]) as u", (n - 1, ids)).fetchall()
        for user_id, part in rows:
            if len(by_part[part]) < per:
                by_part[part].append(user_id)
    out = [(by_part[i % n][i // n], i % n) for i in range(per * n)]
    return out[:count]


# --- (a) latency ---------------------------------------------------------------


def cut_wrapper(text: str, rpc: str, variant: str) -> str:
    """The wrapper public.<rpc> made into bench_partitions.<rpc>_<variant>: caller_role() inline, and
    for no_block also without its exception block. Raises when a cut is not found exactly once."""
    head = f"CREATE OR REPLACE FUNCTION public.{rpc}("
    parts = [
        (head, f"CREATE OR REPLACE FUNCTION {SCHEMA}.{rpc}_{variant}("),
        ("bayes_remote.caller_role()", ROLE_INLINE),
    ]
    for old, new in parts:
        found = text.count(old)
        if found != 1:
            raise RuntimeError(
                f"bench partitions: {old!r} was found {found} times in public.{rpc} (expected once):"
                " the wrappers of sql/proxy/11_rpc_writers.sql and 12_rpc_readers.sql changed;"
                " update cut_wrapper in scripts/bench_partitions.py"
            )
        text = text.replace(old, new)
    if variant == "no_block":
        text, found = BLOCK_RE.subn(lambda m: "\n" + m.group(2), text)
        if found != 1 or "exception" in text.split("$function$")[1].lower():
            raise RuntimeError(
                f"bench partitions: the exception block of public.{rpc} was found {found} times (expected"
                " once): update BLOCK_RE in scripts/bench_partitions.py"
            )
    return text


def setup_schema(nodes: Nodes, payload: str) -> None:
    """bench_partitions on the partitions (noop, payload) and on the proxy (their PL/Proxy functions and
    the wrapper variants)."""
    drop_schema(nodes)
    for url in nodes.partitions:
        with psycopg.connect(url, autocommit=True) as conn, conn.transaction():
            conn.execute(f"create schema {SCHEMA}")
            conn.execute(f"grant usage on schema {SCHEMA} to bayes_proxy")
            conn.execute(
                f"create function {SCHEMA}.noop(p_user_id uuid) returns integer language sql volatile as 'select 1'"
            )
            literal = conn.execute("select quote_literal(%s::text)", (payload,)).fetchone()[0]
            conn.execute(
                f"create function {SCHEMA}.payload(p_user_id uuid) returns jsonb language sql volatile"
                f" as $$ select {literal}::jsonb $$"
            )
            conn.execute(f"grant execute on all functions in schema {SCHEMA} to bayes_proxy")
    with psycopg.connect(nodes.proxy, autocommit=True) as conn, conn.transaction():
        conn.execute(f"create schema {SCHEMA}")
        pinned = "set search_path = pg_catalog, pg_temp set datestyle = 'ISO' set timezone = 'UTC'"
        for name, run_on, returns, settings in (
            ("noop", "hashtext(p_user_id::text)", "integer", ""),
            ("noop_fixed", "0", "integer", ""),
            ("noop_pinned", "hashtext(p_user_id::text)", "integer", pinned),
            ("payload", "hashtext(p_user_id::text)", "jsonb", ""),
        ):
            target = "payload" if name == "payload" else "noop"
            conn.execute(
                f"create function {SCHEMA}.{name}(p_user_id uuid) returns {returns} language plproxy volatile"
                f" {settings} as $$ cluster 'bayes_partitions'; run on {run_on}; target {SCHEMA}.{target}; $$"
            )
        for rpc, spec in RPCS.items():
            text = conn.execute(
                "select pg_get_functiondef(%s::regprocedure)", (f"public.{rpc}{spec['signature']}",)
            ).fetchone()[0]
            for variant in ("no_block", "inline_role"):
                conn.execute(cut_wrapper(text, rpc, variant))


def drop_schema(nodes: Nodes) -> None:
    for dsn in [nodes.proxy, *nodes.partitions]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"drop schema if exists {SCHEMA} cascade")


class Caller:
    """The sides of (a), each a call for the j-th (player, message) of the sequence."""

    def __init__(self, nodes: Nodes, players: list[tuple[uuid.UUID, int]], messages: list[str]):
        options = {"autocommit": True, "prepare_threshold": 0}
        self.proxy = psycopg.connect(nodes.proxy, **options)
        self.direct = [psycopg.connect(url, **options) for url in nodes.partitions]
        login = {"user": nodes.proxy_login["user"], "password": nodes.proxy_login.get("password", "")}
        self.entry = [psycopg.connect(dsn_as(url, **login), **options) for url in nodes.partitions]
        self.players = players
        self.messages = messages
        self.messages_sent = 0

    def close(self) -> None:
        for conn in [self.proxy, *self.direct, *self.entry]:
            conn.close()

    def _message(self, j: int) -> tuple[uuid.UUID, int, tuple]:
        user_id, part = self.players[j % len(self.players)]
        text = self.messages[j % len(self.messages)]
        return user_id, part, (user_id, text, uuid.uuid4().hex, 30.0 + j % 600)

    def side(self, rpc: str, step: str) -> Callable[[int], None]:
        spec = RPCS[rpc]
        internal = f"('service_role', null, null, null, {spec['args']})"
        sql = {
            "direct": spec["public"],
            "entry": f"select bayes_partition.{rpc}{internal}",
            "remote": f"select bayes_remote.{rpc}{internal}",
            "no_block": spec["public"].replace(f"public.{rpc}(", f"{SCHEMA}.{rpc}_no_block("),
            "inline_role": spec["public"].replace(f"public.{rpc}(", f"{SCHEMA}.{rpc}_inline_role("),
            "proxy": spec["public"],
        }[step]
        writes = rpc == "bayes_process_message"

        def call(j: int) -> None:
            user_id, part, args = self._message(j)
            conn = {"direct": self.direct, "entry": self.entry}.get(step)
            conn = conn[part] if conn else self.proxy
            conn.execute(sql, args if writes else (user_id,)).fetchone()
            if writes:
                self.messages_sent += 1

        return call

    def hop_side(self, name: str) -> Callable[[int], None]:
        """The bare hop's sides, for the players of partition 0 (RUN ON 0 sends every call there)."""
        players = [p for p in self.players if p[1] == 0]
        function, on_proxy = {
            "noop_direct": ("noop", False),
            "noop_proxy": ("noop", True),
            "noop_fixed": ("noop_fixed", True),
            "noop_pinned": ("noop_pinned", True),
            "payload_direct": ("payload", False),
            "payload_proxy": ("payload", True),
        }[name]
        sql = f"select {SCHEMA}.{function}(%s)"

        def call(j: int) -> None:
            user_id, _ = players[j % len(players)]
            (self.proxy if on_proxy else self.direct[0]).execute(sql, (user_id,)).fetchone()

        return call


def alternate(sides: dict[str, Callable[[int], None]], calls: int, block: int, warmup: int = 50) -> dict[str, list]:
    """Every side `calls` times (each the same sequence j = 0, 1, ...), in alternating blocks, after
    `warmup` untimed calls each (plans, caches, the backends' interpreters, PL/Proxy's connections)."""
    for side in sides.values():
        for j in range(warmup):
            side(-1 - j)
    out: dict[str, list[float]] = {name: [] for name in sides}
    done = 0
    while done < calls:
        n = min(block, calls - done)
        for name, side in sides.items():
            samples = out[name]
            for j in range(done, done + n):
                t = time.perf_counter_ns()
                side(j)
                samples.append((time.perf_counter_ns() - t) / 1e6)
        done += n
    return out


def latency(nodes: Nodes, players, messages, args, result: Result) -> None:
    calls, block = args.partitions_calls, args.partitions_block
    caller = Caller(nodes, players, messages)
    try:
        for rpc in RPCS:
            print(
                f"\n(a) {rpc}: {calls} calls of each of {len(STEPS)} sides, 1 client, alternating blocks of {block}"
                f" ({len(players)} players over {len(nodes.partitions)} partitions) ...",
                flush=True,
            )
            sides = {step: caller.side(rpc, step) for step in STEPS}
            started = time.perf_counter()
            result.latency[rpc] = alternate(sides, calls, block)
            print(f"  {time.perf_counter() - started:.0f} s", flush=True)
            print_steps(rpc, result.latency[rpc], block)
        names = ("noop_direct", "noop_proxy", "noop_fixed", "noop_pinned", "payload_direct", "payload_proxy")
        print(f"\n(a) the bare hop: {calls} calls of each of {len(names)} sides ...", flush=True)
        result.hop = alternate({name: caller.hop_side(name) for name in names}, calls, block)
        print_hop(result.hop)
    finally:
        result.messages["proxy"] = result.messages.get("proxy", 0) + caller.messages_sent
        caller.close()


def block_ratios(a: list[float], b: list[float], block: int) -> list[float]:
    """p50(a) / p50(b) of every block (the sides alternate block by block)."""
    return [statistics.median(a[k : k + block]) / statistics.median(b[k : k + block]) for k in range(0, len(a), block)]


def print_steps(rpc: str, samples: dict[str, list[float]], block: int) -> None:
    p50 = {k: statistics.median(v) for k, v in samples.items()}
    p99 = {k: pct(v, 0.99) for k, v in samples.items()}
    print(f"  {'side':<58} {'p50 ms':>8} {'p99 ms':>8} {'/ direct':>9} {'step us':>8}  the step adds")
    previous = None
    for step in STEPS:
        added = "" if previous is None else f"{(p50[step] - p50[previous]) * 1000:+8.1f}"
        print(
            f"  {STEP_LABELS[step].format(rpc=rpc):<58} {p50[step]:8.3f} {p99[step]:8.3f}"
            f" {p50[step] / p50['direct']:9.2f} {added:>8}  {STEP_NOTES.get(step, '')}"
        )
        previous = step
    ratios = block_ratios(samples["proxy"], samples["direct"], block)
    print(
        f"  proxy / direct: p50 {p50['proxy'] / p50['direct']:.2f} x, p99 {p99['proxy'] / p99['direct']:.2f} x;"
        f" the hop adds {(p50['proxy'] - p50['direct']) * 1000:.0f} us at p50; the {len(ratios)} blocks' p50 ratios"
        f" {min(ratios):.2f}..{max(ratios):.2f}, median {statistics.median(ratios):.2f}"
    )


def print_hop(samples: dict[str, list[float]]) -> None:
    p50 = {k: statistics.median(v) for k, v in samples.items()}
    labels = {
        "noop_direct": "a function returning 1, on the partition",
        "noop_proxy": "the same through PL/Proxy, RUN ON hashtext",
        "noop_fixed": "the same through PL/Proxy, RUN ON 0",
        "noop_pinned": "RUN ON hashtext, with the RPCs' three SET clauses",
        "payload_direct": "a constant jsonb result, on the partition",
        "payload_proxy": "the same through PL/Proxy, RUN ON hashtext",
    }
    print(f"  {'side (the players of partition 0)':<58} {'p50 ms':>8} {'p99 ms':>8}")
    for name, label in labels.items():
        print(f"  {label:<58} {p50[name]:8.3f} {pct(samples[name], 0.99):8.3f}")
    print(
        f"  a PL/Proxy call adds {(p50['noop_proxy'] - p50['noop_direct']) * 1000:.0f} us"
        f" (routing by hashtext {(p50['noop_proxy'] - p50['noop_fixed']) * 1000:+.0f} us of it; the SET clauses"
        f" of search_path, DateStyle and TimeZone {(p50['noop_pinned'] - p50['noop_proxy']) * 1000:+.0f} us more);"
        f" with the result as jsonb {(p50['payload_proxy'] - p50['payload_direct']) * 1000:.0f} us"
    )


# --- (c) first calls ----------------------------------------------------------------


def first_calls(nodes: Nodes, players, single_players, messages, repeats: int, result: Result) -> None:
    """The first bayes_process_message of a fresh backend (its connection made beforehand, a `select 1`
    answered: only the call is timed), on the single node, on a partition, and at the proxy, whose first
    call to each partition makes PL/Proxy's connection there (a new backend of the partition, which loads
    the engine); and the login alone that PL/Proxy's connection makes (bayes_proxy, TCP, SCRAM)."""
    n = len(nodes.partitions)
    login = {"user": nodes.proxy_login["user"], "password": nodes.proxy_login.get("password", "")}
    print(f"\n(c) the first call in a fresh backend, {repeats} backends each ...", flush=True)
    out: dict[str, list[float]] = {k: [] for k in ("login", "single", "direct", "proxy", "proxy_second", "proxy_warm")}

    def timed(conn, sql: str, params) -> float:
        t = time.perf_counter_ns()
        conn.execute(sql, params).fetchone()
        return (time.perf_counter_ns() - t) / 1e6

    sql = RPCS["bayes_process_message"]["public"]
    for r in range(repeats):
        (first, part), (second, _) = players[r % n], players[(r + 1) % n]  # consecutive: two partitions
        text = messages[r % len(messages)]
        t = time.perf_counter_ns()
        psycopg.connect(dsn_as(nodes.partitions[part], **login), autocommit=True).close()
        out["login"].append((time.perf_counter_ns() - t) / 1e6)
        with psycopg.connect(nodes.single, autocommit=True) as conn:
            conn.execute("select 1")
            out["single"].append(timed(conn, sql, (single_players[r % len(single_players)], text, None, 60.0)))
        with psycopg.connect(nodes.partitions[part], autocommit=True) as conn:
            conn.execute("select 1")
            out["direct"].append(timed(conn, sql, (first, text, None, 60.0)))
        with psycopg.connect(nodes.proxy, autocommit=True) as conn:
            conn.execute("select 1")
            out["proxy"].append(timed(conn, sql, (first, text, None, 60.0)))
            out["proxy_second"].append(timed(conn, sql, (second, text, None, 60.0)))
            out["proxy_warm"].append(timed(conn, sql, (first, text, None, 60.0)))
        result.messages["single"] = result.messages.get("single", 0) + 1
        result.messages["proxy"] = result.messages.get("proxy", 0) + 4
    result.first = out
    labels = {
        "single": "single node: first call",
        "direct": "a partition, directly: first call",
        "proxy": "proxy: first call (PL/Proxy connects to the partition)",
        "proxy_second": "proxy: next call, to another partition (connects)",
        "proxy_warm": "proxy: a third call, to the first partition again",
        "login": "the login alone: bayes_proxy to a partition (SCRAM)",
    }
    print(f"  {'':<58} {'median ms':>9} {'max ms':>8}")
    for key, label in labels.items():
        print(f"  {label:<58} {statistics.median(out[key]):9.1f} {max(out[key]):8.1f}")
    print(
        f"  a proxy backend pays this once per partition it reaches ({n} here): PostgREST's pool of"
        " connections at the proxy, each to every partition"
    )


# --- (b) throughput -------------------------------------------------------------


class Worker(threading.Thread):
    """One client: its own connection (or API client) and players, bayes_process_message in a loop."""

    def __init__(self, call: Callable[[int], None], start_at: threading.Barrier, stop_at: list[float]):
        super().__init__(daemon=True)
        self.call = call
        self.barrier = start_at
        self.stop_at = stop_at
        self.count = 0
        self.total = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for j in range(20):  # warm up
                self.call(j)
                self.total += 1
            self.barrier.wait()
            j = 20
            while time.perf_counter() < self.stop_at[0]:
                self.call(j)
                j += 1
                self.count += 1
                self.total += 1
        except BaseException as exc:  # noqa: BLE001 - reported by the caller
            self.error = exc
            self.barrier.abort()


def sql_client(dsn: str, players: list[uuid.UUID], messages: list[str]) -> tuple[Callable[[int], None], Callable]:
    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=0)
    sql = RPCS["bayes_process_message"]["public"]

    def call(j: int) -> None:
        conn.execute(
            sql, (players[j % len(players)], messages[j % len(messages)], uuid.uuid4().hex, 30.0 + j % 600)
        ).fetchone()

    return call, conn.close


def direct_client(partitions: list[str], players: list[tuple[uuid.UUID, int]], messages: list[str]):
    """The client routes: each call on its player's partition, over a connection to each."""
    conns = [psycopg.connect(url, autocommit=True, prepare_threshold=0) for url in partitions]
    sql = RPCS["bayes_process_message"]["public"]

    def call(j: int) -> None:
        user_id, part = players[j % len(players)]
        conns[part].execute(sql, (user_id, messages[j % len(messages)], uuid.uuid4().hex, 30.0 + j % 600)).fetchone()

    def close() -> None:
        for conn in conns:
            conn.close()

    return call, close


def api_client(api: tuple[str, str], players: list[uuid.UUID], messages: list[str]):
    client = Client(*api)

    def call(j: int) -> None:
        client.rpc(
            "bayes_process_message",
            {
                "p_user_id": str(players[j % len(players)]),
                "p_message": messages[j % len(messages)],
                "p_message_id": uuid.uuid4().hex,
                "p_reply_gap_s": 30.0 + j % 600,
            },
        )

    return call, lambda: None


def rate(make: Callable[[int], tuple], clients: int, seconds: float) -> tuple[float, float, int]:
    """Calls per second of `clients` workers together, the client process's CPU (share of one core),
    and every call made (warm-up included)."""
    made = [make(k) for k in range(clients)]
    barrier = threading.Barrier(clients + 1)
    stop_at = [float("inf")]
    workers = [Worker(call, barrier, stop_at) for call, _ in made]
    for w in workers:
        w.start()
    try:
        barrier.wait()
    except threading.BrokenBarrierError:
        pass
    cpu, start = time.process_time(), time.perf_counter()
    stop_at[0] = start + seconds
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    for _, close in made:
        close()
    for w in workers:
        if w.error is not None:
            raise w.error
    return sum(w.count for w in workers) / wall, cpu / wall, sum(w.total for w in workers)


KINDS = {
    "single": "single node, SQL",
    "direct": "partitions, SQL direct",
    "proxy": "partitioned, SQL at the proxy",
    "single_api": "single node, API",
    "proxy_api": "partitioned, API at the proxy",
}


def throughput(nodes: Nodes, sets, messages, args, result: Result) -> None:
    clients = [int(c) for c in str(args.partitions_clients).split(",")]
    kinds = ["single", "direct", "proxy"] + (["single_api", "proxy_api"] if args.partitions_api else [])
    seconds, rounds = args.partitions_seconds, args.partitions_rounds
    print(
        f"\n(b) throughput of bayes_process_message at {', '.join(map(str, clients))} clients (threads, a connection"
        f" each, players of their own): {rounds} rounds of {seconds:g} s for each of"
        f" {', '.join(KINDS[k] for k in kinds)} (the order reversed every other round) ...",
        flush=True,
    )
    runs: dict[tuple[str, int], list[float]] = {}
    cpus: dict[tuple[str, int], list[float]] = {}
    if args.partitions_api:
        # PostgREST's pool opens its connections as requests come; at the proxy, each one's first call to
        # each partition makes PL/Proxy's connection there, and that backend loads the engine ((c) below).
        print(f"  warm-up of both APIs: {max(clients)} clients for {seconds:g} s each, untimed ...", flush=True)
        for mode, api in (("single", nodes.single_api), ("proxy", nodes.proxy_api)):
            players = [[p if mode == "single" else p[0] for p in ps] for ps in sets[mode]]
            _, _, total = rate(
                lambda k, api=api, players=players: api_client(api, players[k], messages), max(clients), seconds
            )
            result.messages[mode] = result.messages.get(mode, 0) + total
    for count in clients:
        for r in range(rounds):
            for kind in kinds if r % 2 == 0 else kinds[::-1]:
                mode = "single" if kind.startswith("single") else "proxy"

                def make(k: int, kind=kind, mode=mode):
                    players = sets[mode][k]
                    if kind == "direct":
                        return direct_client(nodes.partitions, players, messages)
                    if mode == "proxy":
                        players = [user_id for user_id, _ in players]
                    if kind.endswith("_api"):
                        api = nodes.proxy_api if mode == "proxy" else nodes.single_api
                        return api_client(api, players, messages)
                    return sql_client(nodes.proxy if mode == "proxy" else nodes.single, players, messages)

                calls_per_s, cpu, total = rate(make, count, seconds)
                runs.setdefault((kind, count), []).append(calls_per_s)
                cpus.setdefault((kind, count), []).append(cpu)
                result.messages[mode] = result.messages.get(mode, 0) + total
                print(
                    f"  {count} client(s), {KINDS[kind]:<30} {calls_per_s:7.0f} calls/s  (this client's CPU {cpu:.0%})",
                    flush=True,
                )
    for key, values in runs.items():
        result.throughput[key] = statistics.mean(values)
        result.client_cpu[key] = statistics.mean(cpus[key])
    print(f"\n  calls/s, the mean of {rounds} rounds:")
    print(f"  {'clients':>7}   " + "   ".join(KINDS[k] for k in kinds) + "   proxy / single")
    for count in clients:
        cells = "   ".join(f"{result.throughput[(k, count)]:>{len(KINDS[k])}.0f}" for k in kinds)
        ratio = result.throughput[("proxy", count)] / result.throughput[("single", count)]
        api = ""
        if args.partitions_api:
            api = f", API {result.throughput[('proxy_api', count)] / result.throughput[('single_api', count)]:.2f}"
        print(f"  {count:>7}   {cells}   SQL {ratio:.2f}{api}")


# --- the section ------------------------------------------------------------------


def measure(single_env: dict[str, str], part_env: dict[str, str], args) -> Result:
    nodes = Nodes.from_envs(single_env, part_env)
    result = Result()
    result.settings = check_nodes(nodes)
    n = len(nodes.partitions)
    print(f"\nthe partitioned mode (issue 17): a proxy and {n} partitions, and the single node, side by side")
    for node, values in result.settings.items():
        print(f"  {node:<12} " + ", ".join(f"{k}={v}" for k, v in sorted(values.items())))
    print("  load average (1, 5, 15 min) at the start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    messages = lifetime.corpus_messages()
    print(f"  messages: the {len(messages):,} chat lines of chatterbot-corpus (the first of each conversation)")
    clients = max(int(c) for c in str(args.partitions_clients).split(","))
    with cron_paused([nodes.single, nodes.proxy, *nodes.partitions]):
        with psycopg.connect(nodes.proxy, autocommit=True) as proxy:
            players = spread_players(proxy, 4 * n + 2 * n * clients, n)
            for user_id, _ in players:
                proxy.execute("select public.bayes_process_message(%s, 'hello')", (user_id,))
        result.messages["proxy"] = len(players)
        result.players = [p for p, _ in players]
        result.part_of = dict(players)
        lat_players, rest = players[: 4 * n], players[4 * n :]
        with psycopg.connect(nodes.single, autocommit=True) as single:
            single_players = [uuid.uuid4() for _ in range(2 * n * clients)]
            for user_id in single_players:
                single.execute(
                    "insert into auth.users (id, email) values (%s, %s)", (user_id, f"partitions-{user_id}@bench.local")
                )
                single.execute("select public.bayes_process_message(%s, 'hello')", (user_id,))
        result.messages["single"] = len(single_players)
        result.single_players = single_players
        sets = {
            "proxy": [rest[k * 2 * n : (k + 1) * 2 * n] for k in range(clients)],  # (player, partition)
            "single": [single_players[k * 2 * n : (k + 1) * 2 * n] for k in range(clients)],
        }
        with psycopg.connect(nodes.proxy, autocommit=True) as proxy:
            payload = proxy.execute(
                f"{RPCS['bayes_process_message']['public']}::text",
                (lat_players[0][0], messages[0], uuid.uuid4().hex, 60.0),
            ).fetchone()[0]
        result.messages["proxy"] += 1
        try:
            setup_schema(nodes, payload)
            print(
                f"  schema {SCHEMA} on the proxy and the partitions (dropped at the end): the wrapper variants,"
                f" the bare hop's functions (their jsonb: a real result, {len(payload)} bytes)"
            )
            latency(nodes, lat_players, messages, args, result)
        finally:
            drop_schema(nodes)
        throughput(nodes, sets, messages, args, result)
        first_calls(nodes, lat_players, single_players, messages, args.partitions_fresh, result)
    print("  load average (1, 5, 15 min) at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    return result


def targets(result: Result) -> list[Target]:
    out: list[Target] = []
    sync = sorted({values["synchronous_commit"] for values in result.settings.values()})
    for rpc in RPCS:
        samples = result.latency[rpc]
        ratio = statistics.median(samples["proxy"]) / statistics.median(samples["direct"])
        if rpc == "bayes_process_message":
            out.append(
                (
                    f"{rpc}: p50 through the proxy <= 1.3 x a direct call (synchronous_commit = {'/'.join(sync)})",
                    f"{ratio:.2f} x",
                    ratio <= 1.3 and sync == ["on"],
                )
            )
    return out


def run(single_env: dict[str, str], part_env: dict[str, str], args) -> list[Target]:
    result = measure(single_env, part_env, args)
    return targets(result)
