"""The upgrade to the compact event log (issue 15) on a database that holds
events of the old layout: the migrations of the last commit before issue 15
pushed with the Supabase CLI, a history written through its RPCs (messages
with and without ids, LLM scores with vices and mood, outcomes, a chapter,
players in both modes), then the working tree's migrations pushed onto the
same database (schema migration 0011 renames the old table; the functions
migration after it converts every event with the engine's own packing and
drops it).

After the push: every event is there with its id, kind, time, message id and
the facts of its result; its input reads back as the same JSON; bayes.replay
equals the stored state (and the replay before the push); the shadow pairs
are the same; a message id (and an LLM answer's id) sent again is still a
duplicate and gets its first result; nothing is written by any of it."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from bayes_dev.players import MESSAGES
from bayes_dev.support import BOOTSTRAP, ROOT, create_database, cron_cluster, new_player, psql

pytestmark = pytest.mark.db

DBNAME = "bayes_event_upgrade"
SUPABASE = ROOT / "node_modules" / ".bin" / "supabase"
OLD_COMMIT = "eb6cdf4"  # the last commit of main before issue 15: the old event layout
PLAYERS = 8
MESSAGES_EACH = 25

upgrade_proc = cron_cluster(DBNAME)


def old_supabase_dir(dst: Path) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail(f"{ROOT} is not a git checkout: this test needs commit {OLD_COMMIT}")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLD_COMMIT, "supabase"], capture_output=True)
    if archive.returncode != 0:
        pytest.fail(f"commit {OLD_COMMIT} is not in the history of {ROOT}: {archive.stderr.decode()}")
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive.stdout, check=True)
    return dst


def push(workdir: Path, url: str) -> list[str]:
    proc = subprocess.run(
        [str(SUPABASE), "db", "push", "--workdir", str(workdir), f"--remote={url}", "--yes"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    return [line.split()[-1].rstrip(".") for line in out.splitlines() if line.startswith("Applying migration")]


def write_history(conn, players) -> None:
    start = conn.execute("select date_trunc('second', now()) - interval '3 hours'").fetchone()[0]
    for i in range(MESSAGES_EACH):
        for p, user_id in enumerate(players):
            sent = start + dt.timedelta(minutes=5 * i + p)
            message_id = None if i % 6 == 5 else f"{p}-{i}"
            conn.execute(
                "select public.bayes_process_message(%s, %s, %s, %s, %s, %s)",
                (
                    user_id,
                    MESSAGES[(i + p) % len(MESSAGES)],
                    sent,
                    message_id,
                    40.0 + 37 * i,
                    [None, True, False][i % 3],
                ),
            )
            if message_id is not None and i % 2 == 0:
                conn.execute(
                    "select public.bayes_apply_llm_scores(%s, %s::jsonb, %s, %s::jsonb, %s)",
                    (
                        user_id,
                        '{"intimacy": 3, "trust": -1.5}',
                        message_id,
                        '{"dark_humor": 0.25}' if i % 4 else None,
                        "playful" if i % 3 else None,
                    ),
                )
            if i % 7 == 3:
                conn.execute("select public.bayes_record_outcome(%s, 'reply', %s)", (user_id, i % 2 == 0))
            if i == 12 and p % 2:
                conn.execute("select public.bayes_advance_chapter(%s, 2)", (user_id,))


EVENTS_SQL = (
    "select e.event_id, e.kind::text, e.message_id, e.occurred_at, {input}, {mode}, {n}, {mood}, {reason}, {needed}"
    " from bayes.player_event as e where e.user_id = any(%s) order by e.event_id"
)
OLD_EVENTS_SQL = EVENTS_SQL.format(
    input="e.input",
    mode="e.result ->> 'mode'",
    n="case when e.kind = 'message' then (e.result ->> 'n')::int end",
    mood="case when e.kind = 'message' then e.result -> 'mood' ->> 'state' end",
    reason="case when e.kind = 'message' then e.result -> 'fallback' ->> 'reason' end",
    needed="case when e.kind = 'message' then (e.result -> 'fallback' ->> 'needed')::boolean end",
)
NEW_EVENTS_SQL = EVENTS_SQL.format(
    input="bayes.event_input(e.kind, e.input)",
    mode="e.player_mode::text",
    n="e.n",
    mood="e.mood::text",
    reason="e.fallback_reason::text",
    needed="e.fallback_needed",
)
STATES_SQL = (
    "select user_id, state::text, version, last_message_at, decayed_at, bayes.replay(user_id)::text"
    " from public.user_bayesian_state where user_id = any(%s) order by user_id"
)
PAIRS_SQL = "select * from bayes.shadow_pairs() where user_id = any(%s) order by user_id, message_id"


@pytest.fixture(scope="module")
def upgrade(upgrade_proc, tmp_path_factory):
    url = create_database(upgrade_proc, DBNAME)
    psql(url, "-v", "authenticator_password=postgres", "-f", str(BOOTSTRAP))
    push(old_supabase_dir(tmp_path_factory.mktemp("old")), url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select cron.alter_job(jobid, active => false) from cron.job")
        conn.execute("insert into bayes.rollout (bayes_percent) values (50) on conflict do nothing")
        conn.execute("update bayes.rollout set bayes_percent = 50")
        players = {"bayes": [], "shadow": []}  # half in each mode
        while min(len(v) for v in players.values()) < PLAYERS // 2:
            user_id = new_player(conn)
            mode = conn.execute("select bayes.player_mode(%s)", (user_id,)).fetchone()[0]
            players[mode].append(user_id)
        players = players["bayes"][: PLAYERS // 2] + players["shadow"][: PLAYERS // 2]
        write_history(conn, players)
        before = {
            "events": conn.execute(OLD_EVENTS_SQL, (players,)).fetchall(),
            "states": conn.execute(STATES_SQL, (players,)).fetchall(),
            "pairs": conn.execute(PAIRS_SQL, (players,)).fetchall(),
            "results": dict(
                conn.execute(
                    "select e.kind || '/' || e.user_id || '/' || e.message_id, e.result from bayes.player_event as e"
                    " where e.user_id = any(%s) and e.message_id is not null",
                    (players,),
                ).fetchall()
            ),
        }
    applied = push(ROOT, url)
    return url, players, before, applied


def test_the_push_converts_the_old_log_and_drops_it(upgrade):
    url, players, before, applied = upgrade
    assert any(name.endswith("_compact_event_log.sql") for name in applied)
    with psycopg.connect(url) as conn:
        assert conn.execute("select to_regclass('bayes.player_event_v1')").fetchone()[0] is None
        after = conn.execute(NEW_EVENTS_SQL, (players,)).fetchall()
        assert len(before["events"]) > PLAYERS * MESSAGES_EACH
        assert {row[4].get("v") for row in before["events"]} == {2}
        assert {row[5] for row in before["events"]} == {"bayes", "shadow"}
        assert after == before["events"]  # ids, kinds, times, message ids, the input's JSON, the result's facts
        assert conn.execute(
            "select bool_and(message_key is not distinct from bayes.message_key(user_id, kind, message_id))"
            " from bayes.player_event"
        ).fetchone()[0]
        # a new event continues the ids
        (last,) = conn.execute("select max(event_id) from bayes.player_event").fetchone()
        conn.execute("select public.bayes_record_outcome(%s, 'skip', true)", (players[0],))
        assert conn.execute("select max(event_id) from bayes.player_event").fetchone()[0] > last
        conn.rollback()


def test_replay_after_the_upgrade_equals_the_stored_state(upgrade):
    url, players, before, _ = upgrade
    with psycopg.connect(url) as conn:
        after = conn.execute(STATES_SQL, (players,)).fetchall()
    assert after == before["states"]
    for row in after:
        assert row[1] == row[5] or row[5] is not None and _same_json(row[1], row[5]), row[0]


def _same_json(a: str, b: str) -> bool:
    import json

    return json.loads(a) == json.loads(b)


def test_the_shadow_pairs_are_the_same(upgrade):
    url, players, before, _ = upgrade
    with psycopg.connect(url) as conn:
        assert conn.execute(PAIRS_SQL, (players,)).fetchall() == before["pairs"]
    assert before["pairs"]


def test_an_old_message_id_is_still_a_duplicate_with_its_first_result(upgrade):
    url, players, before, _ = upgrade
    with psycopg.connect(url) as conn:
        states = conn.execute(STATES_SQL, (players,)).fetchall()
        count = conn.execute("select count(*) from bayes.player_event").fetchone()[0]
        user_id = players[3]
        again = conn.execute(
            "select public.bayes_process_message(%s, 'something else', now() - interval '1 hour', '3-4')", (user_id,)
        ).fetchone()[0]
        assert again == {**before["results"][f"message/{user_id}/3-4"], "duplicate": True}
        answer = conn.execute(
            "select public.bayes_apply_llm_scores(%s, '{\"passion\": 9}', '3-4')", (user_id,)
        ).fetchone()[0]
        assert answer == {**before["results"][f"llm_scores/{user_id}/3-4"], "duplicate": True}
        assert conn.execute(STATES_SQL, (players,)).fetchall() == states
        assert conn.execute("select count(*) from bayes.player_event").fetchone()[0] == count
        conn.rollback()
