#!/usr/bin/env python3
"""What the health signals cost in the partitioned mode (issue 17): the proxy's bayes.health, which gathers every
partition's parts with one RUN ON ALL and combines them (sql/proxy/31_health.sql), against bayes.health on one
partition (the single node's, over that partition's players only).

Runs on a partitioned stack that is up (the variables of scripts/stack: BAYES_STACK_DIR, BAYES_DB_PORT, ...;
for example BAYES_STACK_DIR=.stack-bench-partitions BAYES_DB_PORT=56522 BAYES_API_PORT=56521
BAYES_REST_PORT=56530 scripts/stack up --partitions 4), whose data it replaces: it empties the partitions' logs
and states and pauses the pg_cron jobs of the proxy and the partitions (it takes the snapshots itself).

1. Source traffic through the proxy's real RPCs: --source-players players (half of them in mode bayes) send
   --source-messages chat lines of chatterbot-corpus each, the LLM stand-in answering what asks for it (every
   shadow message, and fallback.needed).
2. On each partition, its own source events are copied (with the states) to players of the same partition until
   the partitions hold --messages messages together, the players interleaved as live traffic writes them,
   recorded_at spread evenly over a span ending now (as scripts/bench_health.py (b) does on one node):
   worst case 50 minutes (every message in the long window), then a day (24 h).
3. After VACUUM ANALYZE, the median of --repeats runs of each statement (one warm connection each):
   the proxy's bayes.health() and record_health(), the RUN ON ALL alone (bayes_remote.health_parts), one
   partition's bayes.health() and its bayes_partition.health_parts; and what travels: the rows of each kind and
   their bytes as text (PL/Proxy's wire format), the latency histogram against the messages it stands for.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "plpython"))

import psycopg  # noqa: E402
from bayes_dev import lifetime  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

ENGINE_WRITER = "-c bayes.state_writer=engine"
PROCESS_SQL = "select public.bayes_process_message(%s, %s, p_message_id => %s, p_reply_gap_s => %s)"
LLM_SQL = "select public.bayes_apply_llm_scores(%s, %s, %s)"
JOBS = ("bayes-record-health", "bayes-run-decay", "bayes-run-retention")

SOURCE_SQL = """
create unlogged table public.bench_ph_source as
select e.*, row_number() over (partition by e.user_id order by e.event_id) as k
from bayes.player_event as e
"""
# copy c of source player u: u itself for c = 0, else the first of md5(u/c/j), j = 0..63, that hashes to this
# partition (each does with probability 1/n: none of 64 with (1 - 1/n)^64, 1e-8 for n = 4)
COPY_USERS_SQL = """
create unlogged table public.bench_ph_users as
select s.user_id as source, g.c, case when g.c = 0 then s.user_id else (
    select x.id
    from generate_series(0, 63) as j
    cross join lateral (select md5(s.user_id::text || '/' || g.c || '/' || j)::uuid as id) as x
    where (hashtext(x.id::text) & (%(count)s - 1)) = %(index)s
    order by j
    limit 1
) end as user_id
from (select distinct user_id from public.bench_ph_source) as s
cross join generate_series(0, %(copies)s - 1) as g (c)
"""
COPY_STATES_SQL = """
insert into public.user_bayesian_state (user_id, state, version, last_message_at, decayed_at, decay_due_at)
select u.user_id, s.state, s.version, s.last_message_at, s.decayed_at, s.decay_due_at
from public.bench_ph_users as u
inner join public.bench_ph_state as s on s.user_id = u.source
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
        u.user_id, s.occurred_at, s.kind, s.player_mode, s.n, s.mood, s.fallback_reason, s.fallback_needed,
        s.message_id, s.input, s.db_time_us, s.observations,
        row_number() over (order by s.k, s.user_id, u.c) as i
    from public.bench_ph_source as s
    inner join public.bench_ph_users as u on u.source = s.user_id
) as c
where c.i <= %(events)s
order by c.i
"""
# the parts at the proxy's default windows and pairs
PARTS_CALL = "{fn}(now(), array[300, 3600], now() - interval '24 hours', 2000)"


def stack_env() -> dict[str, str]:
    out = subprocess.run(
        [str(ROOT / "scripts" / "stack"), "env"], capture_output=True, text=True, check=True, env=os.environ
    ).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if not values.get("PARTITION_URLS"):
        sys.exit("bench_partition_health: the stack is not partitioned (scripts/stack up --partitions 4)")
    return values


def quiet(urls: list[str]) -> None:
    """Every pg_cron job of the stack paused, none under way."""
    for url in urls:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "select cron.alter_job(jobid, active => false) from cron.job where jobname = any(%s)", (list(JOBS),)
            )
            while conn.execute(
                "select count(*) from cron.job_run_details where status in ('starting', 'running')"
            ).fetchone()[0]:
                time.sleep(0.2)


def source_traffic(proxy_url: str, partitions: list[str], args) -> None:
    corpus = lifetime.corpus_messages()
    standin = lifetime.StandIn()
    for url in partitions:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("truncate bayes.player_event, bayes.event_result, bayes.health_snapshot, bayes.health_change")
            conn.execute("truncate public.user_bayesian_state cascade")
            conn.execute("update bayes.rollout set bayes_percent = 50")
    started = time.perf_counter()
    players = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-partition-health/{i}")) for i in range(args.source_players)]
    sent = answered = 0
    with psycopg.connect(proxy_url, autocommit=True, prepare_threshold=0) as proxy:
        proxy.execute("truncate bayes.health_snapshot, bayes.health_change")
        for k in range(args.source_messages):
            for i, user_id in enumerate(players):
                line = corpus[(i * 7919 + k * 104729) % len(corpus)]
                (result,) = proxy.execute(PROCESS_SQL, (user_id, line, f"m{k}", 30.0 + (i + k) % 300)).fetchone()
                sent += 1
                if result["mode"] == "shadow" or result["fallback"]["needed"]:
                    proxy.execute(LLM_SQL, (user_id, Jsonb(standin.deltas(line)), f"m{k}")).fetchone()
                    answered += 1
    print(
        f"  source: {len(players)} players x {args.source_messages} chat lines of chatterbot-corpus through the"
        f" proxy's bayes_process_message ({sent:,}), bayes_apply_llm_scores when the LLM is asked ({answered:,}),"
        f" in {time.perf_counter() - started:.0f} s",
        flush=True,
    )
    for url in partitions:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("drop table if exists public.bench_ph_source, public.bench_ph_state")
            conn.execute(SOURCE_SQL)
            conn.execute("create unlogged table public.bench_ph_state as select * from public.user_bayesian_state")


def build_logs(partitions: list[str], messages: int, span_s: float) -> None:
    n = len(partitions)
    started = time.perf_counter()
    total_messages = total_events = 0
    for index, url in enumerate(partitions):
        with psycopg.connect(url, autocommit=True, options=ENGINE_WRITER) as conn:
            source_messages, source_events = conn.execute(
                "select count(*) filter (where kind = 'message'), count(*) from public.bench_ph_source"
            ).fetchone()
            events = round(messages / n * source_events / source_messages)
            copies = -(-events // source_events)
            conn.execute("drop table if exists public.bench_ph_users")
            conn.execute("truncate bayes.player_event, bayes.event_result, public.user_bayesian_state")
            conn.execute(COPY_USERS_SQL, {"count": n, "index": index, "copies": copies})
            if conn.execute("select count(*) from public.bench_ph_users where user_id is null").fetchone()[0]:
                raise RuntimeError("bench_partition_health: a copy found no player id of its partition")
            conn.execute(COPY_STATES_SQL)
            end_at = conn.execute("select now()").fetchone()[0]
            conn.execute(COPY_EVENTS_SQL, {"events": events, "span_s": span_s, "end_at": end_at})
            conn.execute("vacuum analyze bayes.player_event, public.user_bayesian_state")
            m, e = conn.execute(
                "select count(*) filter (where kind = 'message'), count(*) from bayes.player_event"
            ).fetchone()
            total_messages, total_events = total_messages + m, total_events + e
    print(
        f"  {total_messages:,} messages ({total_events:,} events) over {n} partitions, recorded_at over the"
        f" {span_s / 3600:g} h before now, built in {time.perf_counter() - started:.0f} s",
        flush=True,
    )


def median_ms(conn, sql: str, repeats: int) -> float:
    conn.execute(sql).fetchall()  # untimed: plans, caches, PL/Python, PL/Proxy's connections
    times = []
    for _ in range(repeats):
        t = time.perf_counter_ns()
        conn.execute(sql).fetchall()
        times.append((time.perf_counter_ns() - t) / 1e6)
    return statistics.median(times)


def measure(proxy_url: str, partitions: list[str], repeats: int) -> None:
    statements = [
        (proxy_url, "proxy: select * from bayes.health()", "select * from bayes.health()"),
        (proxy_url, "proxy: select bayes.record_health()", "select bayes.record_health()"),
        (
            proxy_url,
            "proxy: the RUN ON ALL alone (bayes_remote.health_parts)",
            "select count(*) from " + PARTS_CALL.format(fn="bayes_remote.health_parts"),
        ),
        (partitions[0], "partition 0: select * from bayes.health()", "select * from bayes.health()"),
        (
            partitions[0],
            "partition 0: its parts (bayes_partition.health_parts)",
            "select count(*) from " + PARTS_CALL.format(fn="bayes_partition.health_parts"),
        ),
        (
            partitions[0],
            "partition 0: select count(*) from bayes.player_event",
            "select count(*) from bayes.player_event",
        ),
    ]
    print(f"    {'statement (median of ' + str(repeats) + ')':<62} {'ms':>9}")
    for url, label, sql in statements:
        with psycopg.connect(url, autocommit=True) as conn:
            print(f"    {label:<62} {median_ms(conn, sql, repeats):9.1f}", flush=True)
    with psycopg.connect(proxy_url, autocommit=True) as proxy:
        kinds = proxy.execute(
            "select p.kind, count(*), sum(length(p::text)) from "
            + PARTS_CALL.format(fn="bayes_remote.health_parts")
            + " as p group by p.kind order by p.kind"
        ).fetchall()
        seen = dict(
            proxy.execute(
                "select window_s, samples from bayes.health() where signal = 'latency_p99_ms' order by window_s"
            ).fetchall()
        )
    histogram = {k: c for k, c, _ in kinds}.get("latency", 0)
    print(
        "    what the RUN ON ALL brings back: "
        + ", ".join(f"{kind} {count:,} rows ({size / 1024:,.0f} KiB as text)" for kind, count, size in kinds)
    )
    print(
        f"    the latency histograms: {histogram:,} rows (a row per partition, window and distinct db_time_us) for"
        f" {sum(seen.values()):,} timed messages of the two windows (5 min: {seen.get(300, 0):,},"
        f" 1 h: {seen.get(3600, 0):,})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=200_000, help="messages of all partitions together")
    parser.add_argument("--source-players", type=int, default=64)
    parser.add_argument("--source-messages", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    env = stack_env()
    partitions = env["PARTITION_URLS"].split(",")
    print(f"the health signals across {len(partitions)} partitions (issue 17)", flush=True)
    quiet([env["DB_URL"], *partitions])
    source_traffic(env["DB_URL"], partitions, args)
    try:
        for case, span_s in (("worst case: every message in the long window", 3000.0), ("a day of traffic", 86400.0)):
            print(f"\n  {case}", flush=True)
            build_logs(partitions, args.messages, span_s)
            measure(env["DB_URL"], partitions, args.repeats)
    finally:
        for url in partitions:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "drop table if exists public.bench_ph_source, public.bench_ph_state, public.bench_ph_users"
                )


if __name__ == "__main__":
    main()
