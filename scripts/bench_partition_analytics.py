#!/usr/bin/env python3
"""What the analytics of docs/analytics.md cost in the partitioned mode (issue 17):
every query of the document at the proxy (its views gather every partition's
rows with RUN ON ALL) against the same query on a single node holding the
same players, and against one partition read directly.

    scripts/stack up --partitions 4                      # the partitioned stack
    BAYES_STACK_DIR=.stack-single BAYES_DB_PORT=... scripts/stack up   # a single node
    .venv/bin/python scripts/bench_partition_analytics.py \\
        --proxy postgresql://...proxy --single postgresql://...single --players 20000

The players are engine-made (bayes_dev.players.populate) on the single node,
then copied to the partitions of their hashes (the same states, times and
ids on both sides); both sides lose them at the end. Each query runs
--repeat times on each side, the median is reported (a busy 2-core machine:
orders of magnitude, not precise figures). Partition URLs come from the
proxy's foreign server bayes_partitions (as postgres).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid

import psycopg
from bayes_dev import players
from bayes_dev.analytics_doc import doc_blocks

STATE_COLUMNS = "user_id, state, version, last_message_at, decayed_at, created_at, updated_at, decay_due_at"


def partition_urls(proxy) -> list[str]:
    """The partitions of the proxy's PL/Proxy cluster, in order, reached as postgres with the proxy's password."""
    (options,) = proxy.execute("select srvoptions from pg_foreign_server where srvname = 'bayes_partitions'").fetchone()
    parts = {}
    for option in options:
        name, _, conninfo = option.partition("=")
        if name.startswith("partition_"):
            parts[int(name.removeprefix("partition_"))] = conninfo
    password = proxy.info.password or "postgres"
    return [f"{parts[i]} user=postgres password={password}" for i in sorted(parts)]


def timed(conn, sql: str, repeat: int) -> tuple[float, int]:
    times, rows = [], 0
    for _ in range(repeat):
        t = time.perf_counter()
        rows = len(conn.execute(sql).fetchall())
        times.append(time.perf_counter() - t)
    return statistics.median(times), rows


def parallel_seconds(urls: list[str], sql: str) -> float:
    """Wall time of sql run at once on every partition (what a RUN ON ALL of it would take there)."""
    done = []

    def one(url: str) -> None:
        with psycopg.connect(url) as conn:
            conn.execute(sql).fetchall()

    threads = [threading.Thread(target=one, args=(url,)) for url in urls]
    t = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.append(time.perf_counter() - t)
    return done[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", required=True)
    parser.add_argument("--single", required=True)
    parser.add_argument("--players", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    tag = f"bench-pa-{uuid.uuid4().hex[:8]}"
    proxy = psycopg.connect(args.proxy, autocommit=True)
    single = psycopg.connect(args.single, autocommit=True)
    urls = partition_urls(proxy)
    parts = [psycopg.connect(url, autocommit=True) for url in urls]
    n = len(parts)
    ids: list = []
    try:
        t = time.perf_counter()
        players.populate(single, args.players, time.time(), tag=tag, seed=11)
        ids = [r[0] for r in single.execute("select id from auth.users where email like %s", (tag + "-%",))]
        for i, part in enumerate(parts):
            rows = single.execute(
                f"select {STATE_COLUMNS.replace('state,', 'state::text,')} from public.user_bayesian_state"
                " where user_id = any(%s) and (hashtext(user_id::text) & %s) = %s",
                (ids, n - 1, i),
            ).fetchall()
            with part.transaction():
                part.execute("set local bayes.state_writer = 'engine'")
                with part.cursor().copy(f"copy public.user_bayesian_state ({STATE_COLUMNS}) from stdin") as copy:
                    for row in rows:
                        copy.write_row(row)
            part.execute("analyze public.user_bayesian_state")
        print(f"{args.players} players on the single node and on {n} partitions ({time.perf_counter() - t:.0f} s)")

        total = {
            name: conn.execute("select count(*) from public.user_bayesian_state").fetchone()[0]
            for name, conn in (("proxy", proxy), ("single", single))
        }
        (state_bytes,) = single.execute(
            "select sum(pg_column_size(s.*)) from public.user_bayesian_state as s"
        ).fetchone()
        print(
            f"players in all: proxy {total['proxy']}, single node {total['single']}; "
            f"the rows of public.user_bayesian_state: {state_bytes / 1e6:.1f} MB"
        )

        print(f"\n{'query':44} {'rows':>6} {'single':>9} {'proxy':>9} {'ratio':>6}")
        for block_id, sql in doc_blocks("sql"):
            s, rows = timed(single, sql, args.repeat)
            p, _ = timed(proxy, sql, args.repeat)
            print(f"{block_id:44} {rows:6d} {s * 1e3:7.0f}ms {p * 1e3:7.0f}ms {p / s:6.1f}")

        print("\nthe gathering alone, and one partition read directly:")
        for label, conn, sql in (
            ("count(*) of user_bayesian_state, single node", single, "select count(*) from public.user_bayesian_state"),
            ("count(*) of user_bayesian_state, proxy", proxy, "select count(*) from public.user_bayesian_state"),
            (
                "count(*) of user_bayesian_state, partition 0",
                parts[0],
                "select count(*) from public.user_bayesian_state",
            ),
            (
                "one player by id, single node",
                single,
                f"select * from bayes.player_summary where user_id = '{ids[0]}'",
            ),
            ("one player by id, proxy", proxy, f"select * from bayes.player_summary where user_id = '{ids[0]}'"),
        ):
            seconds, _ = timed(conn, sql, args.repeat)
            print(f"  {label:52} {seconds * 1e3:8.0f} ms")

        window = (
            "select count(*) filter (where p.readiness between 0.4 and 0.9), count(*)"
            " from bayes.player_summary as p where p.composite > p.boss_threshold - 4"
            " and p.composite < p.boss_threshold + 15"
        )
        everything = "select * from bayes.player_summary"
        print("\nbayes.player_summary's functions at the proxy (on the rows a query keeps) or on the partitions:")
        seconds, _ = timed(proxy, window, args.repeat)
        print(f"  {'near-boss window, functions at the proxy':52} {seconds * 1e3:8.0f} ms")
        seconds, _ = timed(proxy, everything, 1)
        print(f"  {'every column of every player, at the proxy':52} {seconds * 1e3:8.0f} ms")
        seconds = parallel_seconds(urls, everything)
        print(f"  {'every column of every player, partitions at once':52} {seconds * 1e3:8.0f} ms")
        seconds, _ = timed(single, everything, 1)
        print(f"  {'every column of every player, single node':52} {seconds * 1e3:8.0f} ms")
    finally:
        if ids:
            single.execute("delete from auth.users where id = any(%s)", (ids,))
            for part in parts:
                part.execute("delete from public.user_bayesian_state where user_id = any(%s)", (ids,))
        for conn in (proxy, single, *parts):
            conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
