"""Retention's cost (issue 15): a retention run (bayes.run_retention_command) pruning half of a log
against a bare DELETE of the same rows in the same database, the longest wait of a live message
during the run, and the per-run search for players with old events (the states, never the log)
against one scan of the log. Run against a dev stack:
DB_URL=... .venv/bin/python scripts/bench_retention.py [players]

The players are one engine-written history (51 old events: 48 messages, an LLM score, an outcome,
a chapter; then 6 recent messages) copied to every player (tests/db/test_retention_crash.py does
the same). It writes into the database it is given and removes its players at the end.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import threading
import time

import psycopg
from bayes_dev.retention_runs import copied_histories, retention_command

OLD = dt.datetime(2025, 1, 10, 9, 0, tzinfo=dt.UTC)
RECENT = dt.datetime(2025, 6, 1, 9, 0, tzinfo=dt.UTC)
P_NOW = dt.datetime(2025, 6, 30, 0, 0, tzinfo=dt.UTC)
HORIZON = P_NOW - dt.timedelta(days=90)


def populate(db, players: int) -> str:
    template = "00000000-0000-4000-8000-0000000000be"
    copied_histories(db, template, players, OLD, RECENT, "retention-bench", "bench")
    db.execute("vacuum analyze bayes.player_event")
    db.execute("vacuum analyze public.user_bayesian_state")
    return template


def timed(db, sql, args=()):
    t0 = time.perf_counter()
    db.execute(sql, args)
    return time.perf_counter() - t0


def main() -> None:
    players = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    url = os.environ["DB_URL"]
    with psycopg.connect(url, autocommit=True) as db:
        db.execute("update bayes.params set value = '87600' where name = 'max_message_age_h'")
        template = populate(db, players)
        events = db.execute("select count(*) from bayes.player_event").fetchone()[0]
        old = db.execute("select count(*) from bayes.player_event where occurred_at < %s", (HORIZON,)).fetchone()[0]
        print(f"{players} players, {events} events, {old} older than the horizon")

        # the search: one scan of the log, against the run's search over the states
        log_scan = timed(
            db, "select count(distinct user_id) from bayes.player_event where occurred_at < %s", (HORIZON,)
        )
        state_scan = timed(
            db,
            "select count(*) from public.user_bayesian_state as s left join bayes.player_checkpoint as c"
            " using (user_id) where coalesce(c.retained_since, s.created_at - interval '87600 hours') < %s",
            (HORIZON,),
        )
        print(f"finding the players: scan of the log {log_scan:.3f} s, scan of the states {state_scan:.3f} s")

        # the baseline: a bare DELETE of the same rows, from a copy of the log with the same indexes
        db.execute("drop table if exists bench_event_copy")
        db.execute("create table bench_event_copy (like bayes.player_event including all)")
        db.execute("insert into bench_event_copy overriding system value select * from bayes.player_event")
        db.execute("vacuum analyze bench_event_copy")
        bare = timed(db, "delete from bench_event_copy where occurred_at < %s", (HORIZON,))
        db.execute("drop table bench_event_copy")

        waits: list[float] = []
        done = threading.Event()

        def live() -> None:
            with psycopg.connect(url, autocommit=True) as c:
                k = 0
                while not done.is_set():
                    t0 = time.perf_counter()
                    c.execute(
                        "select public.bayes_process_message(%s, 'live', %s, %s)",
                        (template, RECENT + dt.timedelta(days=1, seconds=k), f"live{k}"),
                    )
                    waits.append(time.perf_counter() - t0)
                    k += 1
                    time.sleep(0.01)

        command = retention_command(db, P_NOW, 1000)
        thread = threading.Thread(target=live)
        thread.start()
        t0 = time.perf_counter()
        db.execute(command)
        run = time.perf_counter() - t0
        done.set()
        thread.join()
        deleted, batches = db.execute(
            "select events_deleted, batches from bayes.retention_run order by run_id desc limit 1"
        ).fetchone()
        waits.sort()
        print(f"bare DELETE of the {old} rows: {bare:.2f} s")
        print(
            f"retention run: {run:.2f} s ({deleted} events in {batches} batches of 1000 players),"
            f" {run / bare:.1f}x the bare DELETE, {1e6 * run / deleted:.0f} us an event"
        )
        print(
            f"live messages during the run: {len(waits)}, p50 {1e3 * waits[len(waits) // 2]:.1f} ms,"
            f" max {1e3 * waits[-1]:.1f} ms"
        )
        db.execute("delete from auth.users where email like 'bench%'")
        db.execute("update bayes.params set value = '720' where name = 'max_message_age_h'")


if __name__ == "__main__":
    main()
