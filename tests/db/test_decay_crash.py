"""Crash safety of the bulk decay: kill -9 the server in the middle of a run
over 200,000 players, restart it (crash recovery), run again, and every
player's state equals what one uninterrupted pass at the same instant
computes: each player due (decay_due_at before the run's instant) decayed
exactly once and given the due time of his new state, every other player
untouched.

It needs a server it may kill, so it starts its own PostgreSQL 15 cluster
(as the unprivileged `postgres` user, like every cluster of the project).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from bayes_dev import decay_runs, players
from bayes_dev.support import bootstrap_and_migrate
from bayes_engine import codec, decay_due, events
from bayes_engine.params import Params

PGBIN = Path("/usr/lib/postgresql/15/bin")
PLAYERS = 200_000


def as_postgres(*cmd: str) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A throwaway cluster with pg_cron preloaded, which this test may kill."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="bayes-crash-"))
        os.chmod(self.dir, 0o755)
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
        subprocess.run(
            as_postgres(
                str(PGBIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ),
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir}"
            " -c shared_preload_libraries=pg_cron -c cron.database_name=postgres"
        )
        subprocess.run(
            as_postgres(
                str(PGBIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.dir / "log"),
                "-w",
                "-t",
                "120",
                "-o",
                options,
                "start",
            ),
            check=True,
            capture_output=True,
        )

    def kill_9(self) -> None:
        """SIGKILL the postmaster and every backend at once, as a crash of the machine's server would."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        for p in [pid, *map(int, children)]:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in [pid, *map(int, children)]:
            for _ in range(100):
                try:
                    os.kill(p, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)

    def stop(self) -> None:
        subprocess.run(
            as_postgres(str(PGBIN / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"), capture_output=True
        )
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    c = Cluster()
    try:
        c.start()
        bootstrap_and_migrate(c.url)
        with psycopg.connect(c.url, autocommit=True) as conn:
            conn.execute("select cron.unschedule('bayes-run-decay')")  # this test decides when decay runs
        yield c
    finally:
        c.stop()


def read_states(conn) -> dict:
    rows = conn.execute(
        "select user_id, state::text, version, extract(epoch from last_message_at)::float8,"
        " extract(epoch from decayed_at)::float8, decayed_at, extract(epoch from decay_due_at)::float8"
        " from public.user_bayesian_state"
    ).fetchall()
    return {r[0]: r[1:] for r in rows}


def test_a_run_killed_midway_and_rerun_equals_one_uninterrupted_pass(cluster):
    now_s = float(int(time.time()))
    decay_to = dt.datetime.fromtimestamp(now_s, dt.UTC)
    with psycopg.connect(cluster.url, autocommit=True) as db:
        # last messages 100 to 400 hours before decay_to: most players are due (their engine due times)
        players.populate(db, PLAYERS, now_s - 100 * 3600, max_absent_h=300, seed=11, tag="crash")
        params = Params.from_snapshot(json.loads(db.execute("select bayes.params_snapshot()::text").fetchone()[0]))
        before = read_states(db)
    assert len(before) == PLAYERS
    due = {user_id for user_id, row in before.items() if row[5] is not None and row[5] < now_s}
    assert 6 * 5000 < len(due) < PLAYERS
    with psycopg.connect(cluster.url, autocommit=True) as db:
        command = decay_runs.decay_command(db, decay_to, 5000)
    run = subprocess.Popen(
        ["psql", "-X", "-q", "-d", cluster.url, "-c", command],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    with psycopg.connect(cluster.url, autocommit=True) as watcher:
        deadline = time.monotonic() + 300
        while True:
            row = watcher.execute("select players from bayes.decay_run where status = 'running'").fetchone()
            if row and row[0] >= 6 * 5000:
                break
            assert run.poll() is None, "the run ended before it could be killed: " + run.stderr.read()
            assert time.monotonic() < deadline, "no batch committed within 5 minutes"
            time.sleep(0.05)
    cluster.kill_9()
    run.wait(timeout=60)
    assert run.returncode != 0  # its server died under it

    cluster.start()  # crash recovery
    with psycopg.connect(cluster.url, autocommit=True) as db:
        status, committed = db.execute(
            "select status, players from bayes.decay_run order by run_id desc limit 1"
        ).fetchone()
        assert status == "running" and 6 * 5000 <= committed < len(due)
        # exactly the committed batches survived the crash
        assert (
            db.execute("select count(*) from public.user_bayesian_state where decayed_at = %s", (decay_to,)).fetchone()[
                0
            ]
            == committed
        )

        db.execute(decay_runs.decay_command(db, decay_to, 5000))
        runs = db.execute("select status, players from bayes.decay_run order by run_id").fetchall()
        assert runs == [("interrupted", committed), ("done", len(due) - committed)]
        after = read_states(db)

    assert after.keys() == before.keys()
    mismatches = 0
    for user_id, (text, version, last, decayed, decayed_at, due_at) in before.items():
        new_text, new_version, _, _, new_decayed_at, new_due_at = after[user_id]
        if user_id not in due:
            mismatches += (new_text, new_version, new_decayed_at, new_due_at) != (text, version, decayed_at, due_at)
            continue
        single_pass = codec.decode(events.decayed_text(params, text, last, decayed, now_s))
        want_due = decay_due.due_at(params, single_pass, last, now_s)
        if (
            codec.decode(new_text) != single_pass
            or new_version != version + 1
            or new_decayed_at != decay_to
            or (want_due is None) != (new_due_at is None)
            or (want_due is not None and abs(new_due_at - want_due) > 1e-5)
        ):
            mismatches += 1
    assert mismatches == 0
