"""Crash safety of retention: kill -9 the server in the middle of a run over 3,000 players,
restart it (crash recovery), run again: the first run is marked interrupted, every event is
either folded into its player's checkpoint or still in the log (none lost, none folded twice),
and every player's replay equals his stored state.

The players are one engine-written history (48 messages, an LLM score, outcomes, a chapter,
months ago; then 6 recent messages) copied to every player: the same real log under 3,000
user ids, written in seconds rather than by 160,000 RPC calls. It needs a server it may
kill: the cluster of tests/db/test_decay_crash.py.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import time

import psycopg
import pytest
from bayes_dev.retention_runs import copied_histories, replayed_copies, retention_command
from bayes_dev.support import bootstrap_and_migrate
from test_decay_crash import Cluster

pytestmark = pytest.mark.db

PLAYERS = 3_000
BATCH = 50
OLD = dt.datetime(2025, 1, 10, 9, 0, tzinfo=dt.UTC)
RECENT = dt.datetime(2025, 6, 1, 9, 0, tzinfo=dt.UTC)
P_NOW = dt.datetime(2025, 6, 30, 0, 0, tzinfo=dt.UTC)  # horizon 2025-04-01: the first part is old


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start()
        bootstrap_and_migrate(c.url)
        with psycopg.connect(c.url, autocommit=True) as conn:
            conn.execute("select cron.unschedule('bayes-run-decay')")
            conn.execute("select cron.unschedule('bayes-run-retention')")  # this test decides when it runs
            conn.execute("update bayes.params set value = '87600' where name = 'max_message_age_h'")
        yield c
    finally:
        c.stop()


def populate(db) -> tuple[int, int]:
    """One history written by the engine, copied to PLAYERS players; returns (old events, all events) per player."""
    template = "00000000-0000-4000-8000-000000000001"
    counts = copied_histories(db, template, PLAYERS, OLD, RECENT, "retention-crash", "p")
    replayed_copies(db, template)
    assert counts == (51, 57)
    return counts


def test_a_retention_run_killed_midway_and_rerun_loses_nothing(cluster):
    with psycopg.connect(cluster.url, autocommit=True) as db:
        old, total = populate(db)
        assert db.execute("select count(*) from bayes.player_event").fetchone()[0] == PLAYERS * total
        states = dict(db.execute("select user_id, state::text from public.user_bayesian_state").fetchall())
        command = retention_command(db, P_NOW, BATCH)

    run = subprocess.Popen(
        ["psql", "-X", "-q", "-d", cluster.url, "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with psycopg.connect(cluster.url, autocommit=True) as watcher:
        deadline = time.monotonic() + 300
        while True:
            row = watcher.execute("select players from bayes.retention_run where status = 'running'").fetchone()
            if row and row[0] >= 8 * BATCH:
                break
            assert run.poll() is None, "the run ended before it could be killed: " + run.stderr.read()
            assert time.monotonic() < deadline, "no batch committed within 5 minutes"
            time.sleep(0.05)
    cluster.kill_9()
    run.wait(timeout=60)
    assert run.returncode != 0  # its server died under it

    cluster.start()  # crash recovery
    with psycopg.connect(cluster.url, autocommit=True) as db:
        status, committed, deleted = db.execute(
            "select status, players, events_deleted from bayes.retention_run order by run_id desc limit 1"
        ).fetchone()
        assert status == "running" and 8 * BATCH <= committed < PLAYERS and deleted == committed * old
        # exactly the committed batches survived: their players have a checkpoint and the recent events only
        per_player = db.execute(
            "select coalesce(c.events_folded, 0),"
            " (select count(*) from bayes.player_event as e where e.user_id = s.user_id)"
            " from public.user_bayesian_state as s left join bayes.player_checkpoint as c using (user_id)"
        ).fetchall()
        assert sorted(set(per_player)) == [(0, total), (old, total - old)]
        assert sum(1 for f, _ in per_player if f == old) == committed

        db.execute(retention_command(db, P_NOW, BATCH))
        runs = db.execute("select status, players, events_deleted from bayes.retention_run order by run_id").fetchall()
        assert runs == [
            ("interrupted", committed, committed * old),
            ("done", PLAYERS - committed, (PLAYERS - committed) * old),
        ]
        per_player = db.execute(
            "select c.events_folded, (select count(*) from bayes.player_event as e where e.user_id = s.user_id),"
            " bayes.replay(s.user_id) = s.state, s.state::text, s.user_id"
            " from public.user_bayesian_state as s left join bayes.player_checkpoint as c using (user_id)"
        ).fetchall()
    assert len(per_player) == PLAYERS
    assert all(row[:3] == (old, total - old, True) and row[3] == states[row[4]] for row in per_player)
    assert all(json.loads(text)["n"] == 54 for text in states.values())
