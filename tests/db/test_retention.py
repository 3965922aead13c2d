"""Retention of the event log (issue 15): a retention run (the DO block of bayes.run_retention_command)
folds each player's events older than the horizon into his checkpoint and deletes them; bayes.replay =
checkpoint + the events after it still equals the stored state; messages are never kept waiting by a
run; a run that fails releases its lock and says why."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time

import psycopg
import pytest
from bayes_dev.retention_runs import retention_command, run_retention
from bayes_dev.support import act_as, new_player
from psycopg import errors

pytestmark = pytest.mark.db

# The runs of this file prune up to P_NOW - 90 days, years before the instants
# the other tests of the session send their messages at: their logs are never touched.
OLD = dt.datetime(2020, 6, 1, 9, 0, tzinfo=dt.UTC)
RECENT = dt.datetime(2021, 2, 1, 9, 0, tzinfo=dt.UTC)
P_NOW = dt.datetime(2021, 3, 31, 0, 0, tzinfo=dt.UTC)
HORIZON = P_NOW - dt.timedelta(days=90)

TEXTS = [
    ("hey! how was your day?", None, None),
    ("I love you. What do you dream about?", 40.0, False),
    ("whatever, this is boring", 900.0, True),
    ("haha lol \U0001f602 let's go to a bar and do something crazy", 15.0, None),
    ("I feel like I can be honest with you, I have a secret. " * 5, 2500.0, False),
    ("ok", 7200.0, None),
]


def converse(db, user_id, messages, start, prefix):
    t = start
    for i in range(messages):
        text, gap, topic = TEXTS[i % len(TEXTS)]
        t += dt.timedelta(seconds=gap or 45)
        db.execute(
            "select public.bayes_process_message(%s, %s, %s, %s, %s, %s)",
            (user_id, text, t, f"{prefix}{i}", gap, topic),
        )
    return t


def others(db, user_id, prefix, chapter=None):
    """An LLM score of the last message, two outcomes and (maybe) a chapter, stamped (occurred_at)
    at the time of the player's last message, as if they had come right after it."""
    db.execute(
        "select public.bayes_apply_llm_scores(%s, %s, %s)",
        (user_id, json.dumps({"intimacy": 6.5, "trust": -3}), f"{prefix}-llm"),
    )
    db.execute("select public.bayes_record_outcome(%s, 'skip', true)", (user_id,))
    db.execute("select public.bayes_record_outcome(%s, 'reply', false)", (user_id,))
    if chapter is not None:
        db.execute("select public.bayes_advance_chapter(%s, %s)", (user_id, chapter))
    db.execute(
        "update bayes.player_event as e set occurred_at = ("
        " select max(m.occurred_at) from bayes.player_event as m"
        " where m.user_id = e.user_id and m.kind = 'message' and m.event_id < e.event_id)"
        " where e.user_id = %s and e.kind <> 'message' and e.occurred_at > %s",
        (user_id, P_NOW),
    )


def replays_exactly(db, user_id) -> bool:
    return db.execute(
        "select bayes.replay(user_id) = state from public.user_bayesian_state where user_id = %s", (user_id,)
    ).fetchone()[0]


def log_of(db, user_id):
    return db.execute(
        "select event_id, kind, occurred_at from bayes.player_event where user_id = %s order by event_id", (user_id,)
    ).fetchall()


def run(db, batch=1000):
    run_retention(db, P_NOW, batch)
    return db.execute(
        "select status, players, events_deleted, batches, horizon from bayes.retention_run order by run_id desc limit 1"
    ).fetchone()


@pytest.fixture
def histories(db):
    """Players whose logs are wholly old, partly old (messages, LLM scores, outcomes, chapters on
    both sides of the horizon), and wholly recent."""
    db.execute("set bayes.seed = 'retention'")
    players = {name: new_player(db) for name in ("whole", "partly", "partly_v2", "recent")}
    t = converse(db, players["whole"], 40, OLD, "w")
    others(db, players["whole"], "w", chapter=2)
    converse(db, players["whole"], 12, t + dt.timedelta(days=3), "w2")

    t = converse(db, players["partly"], 30, OLD + dt.timedelta(days=60), "p")
    others(db, players["partly"], "p", chapter=3)
    t = converse(db, players["partly"], 20, RECENT, "p2")
    others(db, players["partly"], "p2")

    t = converse(db, players["partly_v2"], 8, HORIZON - dt.timedelta(hours=3), "q")  # straddles the horizon
    others(db, players["partly_v2"], "q")

    converse(db, players["recent"], 15, RECENT, "r")
    others(db, players["recent"], "r", chapter=2)
    yield players
    db.execute("delete from public.user_bayesian_state where user_id = any(%s)", (list(players.values()),))


def test_replay_across_a_prune_equals_the_stored_state_and_a_second_run_finds_nothing(db, histories):
    logs = {name: log_of(db, u) for name, u in histories.items()}
    for u in histories.values():
        assert replays_exactly(db, u)
    old_before = db.execute("select count(*) from bayes.player_event where occurred_at < %s", (HORIZON,)).fetchone()[0]

    status, players, deleted, batches, horizon = run(db, batch=2)
    assert status == "done" and horizon == HORIZON

    expected_deleted = 0
    for name, u in histories.items():
        kept = log_of(db, u)
        old = [e for e in logs[name] if e[2] < HORIZON]
        # exactly the old events went, the recent ones stayed, in order
        assert kept == [e for e in logs[name] if e[2] >= HORIZON], name
        expected_deleted += len(old)
        checkpoint = db.execute(
            "select events_folded, last_event_id, state is not null, retained_since"
            " from bayes.player_checkpoint where user_id = %s",
            (u,),
        ).fetchone()
        assert checkpoint is not None, name
        folded, last_id, has_state, retained_since = checkpoint
        assert folded == len(old) and has_state == bool(old), name
        assert last_id == (old[-1][0] if old else 0)
        assert retained_since == (kept[0][2] if kept else retained_since)
        assert replays_exactly(db, u), name
    assert logs["whole"] and not log_of(db, histories["whole"])
    old_after = db.execute("select count(*) from bayes.player_event where occurred_at < %s", (HORIZON,)).fetchone()[0]
    assert deleted == old_before - old_after >= expected_deleted
    assert players >= 3  # whole, partly, partly_v2 (and any other test's player with events before the horizon)

    assert run(db)[:3] == ("done", 0, 0)  # nothing left to do

    # the log goes on from the checkpoint: a new message, and replay still equals the state
    for name in ("whole", "partly"):
        converse(db, histories[name], 3, RECENT + dt.timedelta(days=20), "after")
        assert replays_exactly(db, histories[name]), name


def test_deleting_a_state_deletes_its_checkpoint(db, histories):
    run(db)
    u = histories["partly"]
    assert db.execute("select count(*) from bayes.player_checkpoint where user_id = %s", (u,)).fetchone()[0] == 1
    db.execute("delete from auth.users where id = %s", (u,))  # cascades to the state
    assert db.execute("select count(*) from bayes.player_checkpoint where user_id = %s", (u,)).fetchone()[0] == 0
    assert not log_of(db, u)


def test_a_log_that_cannot_be_replayed_is_skipped_recorded_and_kept(db, histories):
    """A player whose old events cannot be replayed (one input's bytes corrupted by hand) keeps every
    event and no checkpoint, is recorded in bayes.retention_skipped with the error bayes.replay raises,
    and the others are pruned as usual; the next run records him again."""
    bad, good = histories["partly"], histories["whole"]
    first = log_of(db, bad)[0][0]
    db.execute("update bayes.player_event set input = '\\x01ff'::bytea where event_id = %s", (first,))
    with pytest.raises(psycopg.Error) as replay_error:
        db.execute("select bayes.replay(%s)", (bad,))
    logs = log_of(db, bad)
    warnings: list[str] = []
    db.add_notice_handler(lambda diag: warnings.append(diag.message_primary))

    status, _, deleted, _, _ = run(db)
    run_id, skipped = db.execute(
        "select run_id, skipped from bayes.retention_run order by run_id desc limit 1"
    ).fetchone()
    assert status == "done" and skipped == 1 and deleted > 0
    assert log_of(db, bad) == logs
    assert db.execute("select state from bayes.player_checkpoint where user_id = %s", (bad,)).fetchone() in (
        None,
        (None,),
    )
    assert not log_of(db, good) and replays_exactly(db, histories["recent"])
    rows = db.execute(
        "select run_id, user_id, error from bayes.retention_skipped where user_id = %s", (bad,)
    ).fetchall()
    assert [(r, u) for r, u, _ in rows] == [(run_id, bad)]
    assert rows[0][2] and rows[0][2] in str(replay_error.value), (rows[0][2], str(replay_error.value))
    assert any("1 players skipped" in w for w in warnings), warnings

    run(db)
    assert db.execute("select count(*) from bayes.retention_skipped where user_id = %s", (bad,)).fetchone()[0] == 2
    assert log_of(db, bad) == logs


def test_messages_during_a_run_are_not_kept_waiting_and_nothing_is_lost(db, dsn):
    """A run over 40 players of 30 old messages each, 2 players a batch, while another session
    sends every player new messages: each message answers while the run goes on, none waits
    longer than a batch could take, every one is logged, and every replay is exact."""
    db.execute("set bayes.seed = 'retention-concurrency'")
    players = [new_player(db) for _ in range(40)]
    for k, u in enumerate(players):
        converse(db, u, 30, OLD + dt.timedelta(hours=k), "c")
    counts = {u: len(log_of(db, u)) for u in players}
    waits, during = [], []
    started = threading.Event()
    done = threading.Event()

    def retention():
        with psycopg.connect(dsn, autocommit=True) as c:
            started.set()
            c.execute(retention_command(c, P_NOW, 2))
        done.set()

    thread = threading.Thread(target=retention)
    thread.start()
    started.wait()
    sent = 0
    try:
        with psycopg.connect(dsn, autocommit=True) as live:
            while not done.is_set() or sent < len(players):
                u = players[sent % len(players)]
                t0 = time.monotonic()
                live.execute(
                    "select public.bayes_process_message(%s, 'still here', %s, %s)",
                    (u, RECENT + dt.timedelta(minutes=sent), f"live{sent}"),
                )
                waits.append(time.monotonic() - t0)
                during.append(not done.is_set())
                counts[u] += 1
                sent += 1
    finally:
        thread.join()
    assert sum(during) >= 10, "the run ended before messages could interleave with it"
    assert max(waits) < 1.0, f"a message waited {max(waits):.3f} s"
    for u in players:
        kept = log_of(db, u)
        folded = db.execute("select events_folded from bayes.player_checkpoint where user_id = %s", (u,)).fetchone()
        assert folded is not None and folded[0] == 30
        assert folded[0] + len(kept) == counts[u]  # nothing lost: every event folded or kept
        assert all(e[2] >= HORIZON for e in kept)
        assert replays_exactly(db, u)
    db.execute("delete from public.user_bayesian_state where user_id = any(%s)", (players,))


@pytest.mark.parametrize("value", ["0", "36501", "-5", '"90"', "null"])
def test_a_bad_retention_value_is_22023_and_changes_nothing(conn, value):
    with pytest.raises(errors.InvalidParameterValue, match="event_retention_days"):
        conn.execute("update bayes.params set value = %s::jsonb where name = 'event_retention_days'", (value,))


@pytest.mark.parametrize(
    ("now", "batch", "error", "match"),
    [
        ("now() + interval '2 years'", 1000, errors.InvalidParameterValue, "ahead of the database clock"),
        ("now()", 0, errors.InvalidParameterValue, "p_batch"),
        ("now()", 100001, errors.InvalidParameterValue, "p_batch"),
        ("'infinity'", 1000, errors.InvalidParameterValue, "p_now"),
        ("null", 1000, errors.NullValueNotAllowed, "p_now"),
        ("now()", "null", errors.NullValueNotAllowed, "p_batch"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_written(db, now, batch, error, match):
    """The run's first step, bayes.begin_retention_run, checks them before it takes the lock or writes anything."""
    runs = db.execute("select count(*) from bayes.retention_run").fetchone()[0]
    with pytest.raises(error, match=match):
        db.execute(f"select bayes.begin_retention_run({now}, {batch})")
    assert db.execute("select pg_try_advisory_lock(bayes.retention_lock_key())").fetchone()[0]
    db.execute("select pg_advisory_unlock(bayes.retention_lock_key())")
    # and the DO block fails the same way (a null p_now there means now())
    if now != "null":
        command = db.execute(f"select bayes.run_retention_command({now}, {batch})").fetchone()[0]
        with pytest.raises(error, match=match):
            db.execute(command)
    assert db.execute("select count(*) from bayes.retention_run").fetchone()[0] == runs


def test_a_run_inside_a_transaction_block_is_2d000_and_takes_no_lock(dsn):
    with psycopg.connect(dsn) as conn:
        command = retention_command(conn, P_NOW)
        runs = conn.execute("select count(*) from bayes.retention_run").fetchone()[0]
        with pytest.raises(errors.InvalidTransactionTermination):
            conn.execute(command)
        conn.rollback()
        assert conn.execute("select count(*) from bayes.retention_run").fetchone()[0] == runs
        assert conn.execute("select pg_try_advisory_lock(bayes.retention_lock_key())").fetchone()[0]
        conn.execute("select pg_advisory_unlock(bayes.retention_lock_key())")
        conn.rollback()


def test_an_overlapping_run_does_nothing_and_says_so(db, dsn):
    with psycopg.connect(dsn, autocommit=True) as holder:
        holder.execute("select pg_advisory_lock(bayes.retention_lock_key())")
        notices = run_retention(db, P_NOW)
        holder.execute("select pg_advisory_unlock(bayes.retention_lock_key())")
    assert notices == ["bayes.run_retention: another run is in progress; this one did nothing"]
    status = db.execute("select status, players from bayes.retention_run order by run_id desc limit 1").fetchone()
    assert status == ("overlapped", 0)


def test_service_role_may_read_the_log_of_runs(conn):
    act_as(conn, "service_role")
    conn.execute("select count(*) from bayes.retention_run")
    conn.execute("select count(*) from bayes.retention_skipped")
    conn.execute("select count(*) from bayes.player_checkpoint")


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_api_roles_may_not_run_or_schedule_retention(db, role):
    command = retention_command(db, P_NOW)
    runs = db.execute("select count(*) from bayes.retention_run").fetchone()[0]
    db.execute(f"set role {role}")
    try:
        for statement in (
            "select bayes.run_retention_command()",
            "select bayes.begin_retention_run(now(), 10)",
            "select bayes.retention_batch(1, now(), 10, 'players', gen_random_uuid())",
            "select bayes.schedule_retention()",
            command,
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                db.execute(statement)
    finally:
        db.execute("reset role")
    assert db.execute("select count(*) from bayes.retention_run").fetchone()[0] == runs


def test_schedule_retention_keeps_one_job_that_runs_the_do_block(db):
    job = db.execute("select bayes.schedule_retention('17 * * * *')").fetchone()[0]
    again = db.execute("select bayes.schedule_retention()").fetchone()[0]
    assert job == again
    command = db.execute("select bayes.run_retention_command()").fetchone()[0]
    assert command.startswith("do $bayes_run_retention$")
    assert db.execute("select schedule, command from cron.job where jobname = 'bayes-run-retention'").fetchall() == [
        ("7 * * * *", command)
    ]
    db.execute("select cron.unschedule('bayes-run-retention')")


def failing_checkpoint_write(db, victim, horizon):
    db.execute(
        "create function public.retention_test_trigger() returns trigger language plpgsql as $$"
        " begin raise exception 'refused by a test trigger'; end $$"
    )
    db.execute(
        "create trigger retention_test_trigger before insert or update on bayes.player_checkpoint for each row"
        f" when (new.user_id = '{victim}') execute function public.retention_test_trigger()"
    )


def drop_failing_checkpoint_write(db):
    db.execute("drop trigger if exists retention_test_trigger on bayes.player_checkpoint")
    db.execute("drop function if exists public.retention_test_trigger()")


def failing_last_statement(db, victim, horizon):
    db.execute(
        "alter table bayes.retention_run add constraint retention_test_check"
        f" check (status <> 'done' or horizon <> '{horizon.isoformat()}') not valid"
    )


def drop_failing_last_statement(db):
    db.execute("alter table bayes.retention_run drop constraint if exists retention_test_check")


@pytest.mark.parametrize(
    ("setup", "teardown", "sqlstate"),
    [
        (failing_checkpoint_write, drop_failing_checkpoint_write, "P0001"),
        (failing_last_statement, drop_failing_last_statement, "23514"),
    ],
    ids=["a checkpoint write raises", "the run's last statement (results phase) fails"],
)
def test_a_failed_run_releases_its_lock_is_marked_failed_and_the_next_run_finishes(
    db, dsn, histories, setup, teardown, sqlstate
):
    previous = db.execute("select coalesce(max(run_id), 0) from bayes.retention_run").fetchone()[0]
    setup(db, histories["partly"], HORIZON)
    try:
        with psycopg.connect(dsn, autocommit=True) as session:
            with pytest.raises(psycopg.Error) as raised:
                session.execute(retention_command(session, P_NOW, 1))
            assert raised.value.sqlstate == sqlstate, raised.value
            assert raised.value.diag.message_hint == "bayes.retention_run says which run failed; its lock is released."
            # the lock is released while the failed run's session is still open
            with psycopg.connect(dsn, autocommit=True) as other:
                assert other.execute("select pg_try_advisory_lock(bayes.retention_lock_key())").fetchone()[0]
                other.execute("select pg_advisory_unlock(bayes.retention_lock_key())")
            assert session.execute("select 1").fetchone() == (1,)
        runs = db.execute(
            "select status, sqlstate, error, finished_at is not null from bayes.retention_run where run_id > %s",
            (previous,),
        ).fetchall()
        assert runs == [("failed", sqlstate, raised.value.diag.message_primary, True)]
    finally:
        teardown(db)
    # the next run finishes what the failed one left, and every replay is exact
    assert run(db)[0] == "done"
    for name, u in histories.items():
        assert all(e[2] >= HORIZON for e in log_of(db, u)), name
        assert replays_exactly(db, u), name
