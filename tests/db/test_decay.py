"""The bulk decay, bayes.run_decay (MODEL.md section 5), on a real cluster.

Every expected state is computed independently of the procedure: by the
Python engine (bayes_engine.model.decay through events.decayed_text) from the
state read before the run. bayes.run_decay decays every due player of the
database, so each test looks only at its own players and picks its own
instant (the shared test database also holds other modules' players).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import threading

import psycopg
import pytest
from bayes_dev import decay_runs, players
from bayes_dev.decay_runs import add_player, run_decay
from bayes_dev.support import ROOT, new_player, psql
from bayes_engine import bulk as batch_decay
from bayes_engine import codec, decay_due, events, model

T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


@pytest.fixture
def pool(params) -> list[str]:
    return players.state_pool(params, size=40, seed=4)


snapshot = decay_runs.rows


def last_run(db):
    return db.execute(
        "select status, players, batches, decay_to from bayes.decay_run order by run_id desc limit 1"
    ).fetchone()


def epoch(t: dt.datetime) -> float:
    return t.timestamp()


def assert_same_to_6_digits(got: list[float], want: list[float], units: int) -> None:
    """Equal up to `units` units of the 6th significant digit."""
    for a, b in zip(got, want, strict=True):
        unit = 10.0 ** (math.floor(math.log10(max(abs(a), abs(b)))) - 5) if a or b else 0.0
        assert abs(a - b) <= (units + 0.01) * unit, (got, want)


def assert_decayed_alike(got: dict, want: dict, units: int) -> None:
    """Two paths that differ by one stored intermediate state (each stored value rounded to 6 digits)."""
    for key in want["m"]:
        assert_same_to_6_digits(got["m"][key], want["m"][key], units)
    assert_same_to_6_digits(got["d"], want["d"], units)
    assert got["h"] == pytest.approx(want["h"], abs=(2 * units + 0.01) * 1e-6)  # micro-units


def same_due(stored: dt.datetime | None, computed: float | None) -> bool:
    """A stored decay_due_at (microseconds) is the engine's due time (epoch seconds), or both are never."""
    if stored is None or computed is None:
        return stored is None and computed is None
    return abs(stored.timestamp() - computed) < 2e-6


def means(state: dict) -> dict:
    return {k: a / (a + b) for k, (a, b) in state["m"].items()}


def test_bulk_decay_writes_what_the_python_decay_computes(db, params, pool):
    """Issue 15: a run rewrites exactly the rows whose due time has passed, each decayed exactly to the
    run's instant and given the due time of its new state (decay_due.due_at, computed here in Python)."""
    ids = [add_player(db, text, T0 - (5 + 7 * i) * HOUR) for i, text in enumerate(pool)]
    before = snapshot(db, ids)
    dues = decay_runs.due_times(db, ids)
    # As PostgreSQL prints them, these states take the batch path of bayes.decay_states (not the per-row fallback).
    assert all(batch_decay._LAYOUT.match(text) for text, *_ in before.values())
    now = T0 + 30 * HOUR
    notices = run_decay(db, now, batch=7)
    after = snapshot(db, ids)
    dues_after = decay_runs.due_times(db, ids)
    due = 0
    for user_id, (text, version, last, decayed, _decayed_at) in before.items():
        state = codec.decode(text)
        assert same_due(dues[user_id], decay_due.due_at(params, state, last, decayed))
        if dues[user_id] is None or dues[user_id] >= now:
            assert after[user_id] == before[user_id]  # not due yet (or never): not touched
            continue
        chapter = params.chapter(state["c"])
        assert epoch(now) - last > 3600 * chapter.decay_grace_h  # a due row is past its grace
        due += 1
        new_text, new_version, _, _, new_decayed_at = after[user_id]
        expected = events.decayed_text(params, text, last, decayed, epoch(now))
        assert codec.decode(new_text) == codec.decode(expected)
        assert new_version == version + 1 and new_decayed_at == now
        assert same_due(dues_after[user_id], decay_due.due_at(params, codec.decode(new_text), last, epoch(now)))
    assert 0 < due < len(ids)
    status, decayed, batches, decay_to = last_run(db)
    assert status == "done" and decay_to == now and decayed >= due and batches >= math.ceil(due / 7)
    assert sum(n.startswith("bayes.run_decay: batch ") for n in notices) == batches
    assert notices[-1].startswith("bayes.run_decay: done:")


def test_the_grace_boundary_is_strict(db, pool):
    # chapter 1: grace 8 h (vices 24 h)
    state = codec.encode(codec.decode(pool[0]))
    assert codec.decode(state)["c"] == 1
    now = T0 + 100 * HOUR
    # due when their windows open, as a row written before migration 0013
    at_grace = add_player(db, state, now - 8 * HOUR, due="window")
    one_second_later = add_player(db, state, now - 8 * HOUR - dt.timedelta(seconds=1), due="window")
    before = snapshot(db, [at_grace, one_second_later])
    run_decay(db, now)
    after = snapshot(db, [at_grace, one_second_later])
    assert after[at_grace] == before[at_grace]
    assert after[one_second_later][1] == before[one_second_later][1] + 1
    assert after[one_second_later][0] != before[one_second_later][0]
    assert after[one_second_later][4] == now


def test_decay_never_raises_a_mean_and_moves_only_metrics_vices_and_mood(db, pool):
    ids = [add_player(db, text, T0 - 3 * HOUR) for text in pool]
    before = snapshot(db, ids)
    run_decay(db, T0 + 400 * HOUR)
    after = snapshot(db, ids)
    for user_id in ids:
        old, new = codec.decode(before[user_id][0]), codec.decode(after[user_id][0])
        assert {k: v for k, v in old.items() if k not in ("m", "d", "h")} == {
            k: v for k, v in new.items() if k not in ("m", "d", "h")
        }
        assert new["mp"] == old["mp"]
        for key, mean in means(new).items():
            # 6 significant digits are stored: a kept mean may move by that rounding only
            assert mean <= means(old)[key] * (1 + 2e-6)
        for d_new, d_old in zip(new["d"], old["d"]):
            assert 1.0 - 1e-9 <= d_new <= d_old * (1 + 1e-6)
        assert abs(sum(new["h"]) - 1.0) < 1e-9


def test_a_player_with_no_message_yet_is_left_alone(db, pool):
    user_id = add_player(db, pool[3], None)
    before = snapshot(db, [user_id])
    run_decay(db, T0 + 1000 * HOUR)
    assert snapshot(db, [user_id]) == before


def test_two_runs_compose_into_one_up_to_the_stored_rounding(db, params, pool):
    """decay(t0, t2) = decay(t1, t2) o decay(t0, t1), through the stored 6 significant digits.

    The exact identity (to 1e-9) is a property of bayes_engine.model.decay
    (tests/unit/test_model.py); here the intermediate state is the stored one.
    """
    last = T0 - 10 * HOUR
    for cut_h in (0.0, 1.0, 8.0, 8.0 + 1 / 3600, 23.5, 24.0, 60.0, 300.0):
        t1 = last + dt.timedelta(hours=cut_h)
        t2 = last + 500 * HOUR
        ids = [add_player(db, text, last) for text in pool[:10]]
        before = snapshot(db, ids)
        run_decay(db, t1)
        run_decay(db, t2)
        after = snapshot(db, ids)
        for user_id in ids:
            text, _, lm, dc, _ = before[user_id]
            one_pass = codec.decode(events.decayed_text(params, text, lm, dc, epoch(t2)))
            # Issue 15: a run rewrites a row only once it has moved by a tolerance, so what is exact
            # whatever the cadence is the state decayed on read (as the read RPCs do) from the stored
            # row: alpha and beta are each rounded when stored, and both move the other's mean and
            # strength in the second decay: up to 2 units of their 6th digit apart.
            stored_text, _, _, stored_decayed, _ = after[user_id]
            on_read = codec.decode(events.decayed_text(params, stored_text, lm, stored_decayed, epoch(t2)))
            assert_decayed_alike(on_read, one_pass, units=2)
            # and the stored row itself is within the tolerances of the exact state
            stored = codec.decode(stored_text)
            composite_gap = model.metric_summary(stored)[1] - model.metric_summary(one_pass)[1]
            assert abs(composite_gap) <= params.g["decay_tolerance_composite"] + 1e-4
            p_ready = model.boss_readiness(stored, params)["p_ready"]
            assert abs(p_ready - model.boss_readiness(one_pass, params)["p_ready"]) <= (
                params.g["decay_tolerance_p_ready"] + 1e-5
            )
        # the next cut starts from clean rows
        db.execute("delete from auth.users where id = any(%s)", (ids,))


def test_a_second_run_returns_at_once_while_one_holds_the_lock(db, dsn, pool):
    user_id = add_player(db, pool[5], T0 - 50 * HOUR)
    before = snapshot(db, [user_id])
    with psycopg.connect(dsn, autocommit=True) as other:
        other.execute("select pg_advisory_lock(bayes.decay_lock_key())")
        notices = run_decay(db, T0 + 10 * HOUR)
        other.execute("select pg_advisory_unlock(bayes.decay_lock_key())")
    assert notices == ["bayes.run_decay: another run is in progress; this one did nothing"]
    assert last_run(db)[:3] == ("overlapped", 0, 0)
    assert snapshot(db, [user_id]) == before


def test_a_row_locked_by_a_live_message_is_skipped_and_decayed_lazily_the_same(db, dsn, params, pool):
    """A skipped player decays at his next message; his twin decayed in bulk ends up the same."""
    last = T0 - 40 * HOUR
    bulk, lazy = add_player(db, pool[7], last), add_player(db, pool[7], last)
    now = T0
    with psycopg.connect(dsn) as message_tx:
        message_tx.execute("select 1 from public.user_bayesian_state where user_id = %s for update", (lazy,))
        run_decay(db, now)  # does not wait for the lock
        message_tx.rollback()
    rows = snapshot(db, [bulk, lazy])
    assert rows[bulk][4] == now and rows[lazy][4] == last  # the locked row was left as it was
    sent_at = now + dt.timedelta(minutes=5)
    results = {}
    for user_id in (bulk, lazy):
        results[user_id] = db.execute(
            "select public.bayes_process_message(%s, 'I missed you, you make me feel safe', %s, 'back', 600)",
            (user_id, sent_at),
        ).fetchone()[0]
    states = {u: codec.decode(snapshot(db, [u])[u][0]) for u in (bulk, lazy)}
    # alpha and beta are stored rounded after the bulk decay, then the message moves both
    assert_decayed_alike(states[bulk], states[lazy], units=3)
    assert results[lazy]["decay_hours"] > 0 and results[bulk]["decay_hours"] == pytest.approx(5 / 60)


def test_replay_after_bulk_decays_equals_the_stored_state_up_to_rounding(db, dsn):
    user_id = new_player(db)
    texts = ["hey! how was your day?", "I love you, you make me laugh 😂", "whatever", "I trust you", "ok"]
    for i, text in enumerate(texts * 3):
        sent_at = T0 + dt.timedelta(hours=13 * i)
        db.execute("select public.bayes_process_message(%s, %s, %s, %s, 120)", (user_id, text, sent_at, f"r{i}"))
        if i % 4 == 3:
            run_decay(db, sent_at + 10 * HOUR)
    run_decay(db, T0 + dt.timedelta(hours=13 * 15 + 40))
    stored, replayed = db.execute(
        "select state::text, bayes.replay(user_id)::text from public.user_bayesian_state where user_id = %s",
        (user_id,),
    ).fetchone()
    stored, replayed = codec.decode(stored), codec.decode(replayed)
    assert {k: v for k, v in stored.items() if k not in ("m", "d", "h")} == {
        k: v for k, v in replayed.items() if k not in ("m", "d", "h")
    }
    for key in stored["m"]:
        assert replayed["m"][key] == pytest.approx(stored["m"][key], rel=2e-5)
    assert replayed["d"] == pytest.approx(stored["d"], rel=2e-5)
    assert replayed["h"] == pytest.approx(stored["h"], abs=2e-5)


@pytest.mark.parametrize(
    ("args", "sqlstate"),
    [
        ("null::timestamptz, 10", "22004"),
        ("now(), null", "22004"),
        ("'infinity'::timestamptz, 10", "22023"),
        ("now(), 0", "22023"),
        ("now(), 1000001", "22023"),
    ],
)
def test_bad_arguments_are_their_sqlstate(db, args, sqlstate):
    """The run's first step, bayes.begin_decay_run, checks them before it takes the lock or writes anything."""
    runs = db.execute("select count(*) from bayes.decay_run").fetchone()[0]
    with pytest.raises(psycopg.Error) as err:
        db.execute(f"select bayes.begin_decay_run({args})")
    assert err.value.sqlstate == sqlstate
    assert db.execute("select count(*) from bayes.decay_run").fetchone()[0] == runs


@pytest.mark.parametrize("role", ["anon", "authenticated", "service_role"])
def test_api_roles_may_not_run_the_decay(db, role):
    command = decay_runs.decay_command(db)
    db.execute(f"set role {role}")
    try:
        for statement in (
            "select bayes.run_decay_command()",
            "select bayes.begin_decay_run(now(), 10)",
            "select bayes.decay_batch(1, now(), 10, '-infinity', gen_random_uuid())",
            command,
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                db.execute(statement)
    finally:
        db.execute("reset role")


def test_the_cron_job_migration_is_idempotent_and_the_schedule_a_parameter(db, dsn):
    migration = next((ROOT / "supabase" / "migrations").glob("*_decay_schedule.sql"))
    try:
        for _ in range(2):
            psql(dsn, "--single-transaction", "-f", str(migration))
        jobs = db.execute("select schedule, command from cron.job where jobname = 'bayes-run-decay'").fetchall()
        assert jobs == [("*/15 * * * *", "call bayes.run_decay()")]  # the frozen migration's command
        psql(dsn, "-c", "set bayes.decay_schedule = '7 * * * *'", "--single-transaction", "-f", str(migration))
        assert db.execute("select schedule from cron.job where jobname = 'bayes-run-decay'").fetchall() == [
            ("7 * * * *",)
        ]
        # bayes.schedule_decay (which sql/functions/70_decay.sql calls once the code is installed) gives the
        # job the DO block of bayes.run_decay_command(), and leaves one job.
        command = db.execute("select bayes.run_decay_command()").fetchone()[0]
        db.execute("select bayes.schedule_decay('*/5 * * * *')")
        db.execute("select bayes.schedule_decay('*/5 * * * *')")
        assert db.execute("select schedule, command from cron.job where jobname = 'bayes-run-decay'").fetchall() == [
            ("*/5 * * * *", command)
        ]
    finally:
        db.execute("select cron.unschedule(jobid) from cron.job where jobname = 'bayes-run-decay'")


def test_messages_keep_being_answered_during_a_bulk_run(db, dsn, pool):
    """No timing here (scripts/bench measures it): every message is answered while the run goes on."""
    last = T0 - 100 * HOUR
    due = [add_player(db, pool[i % len(pool)], last, due="window") for i in range(600)]  # all due now
    answered: list[str] = []
    during: list[bool] = []

    def send_messages():
        with psycopg.connect(dsn, autocommit=True) as conn:
            for user_id in due[::-1][:60]:
                running = conn.execute(
                    "select exists (select 1 from bayes.decay_run where status = 'running')"
                ).fetchone()[0]
                conn.execute("select public.bayes_process_message(%s, 'hi again', %s)", (user_id, T0 + HOUR))
                answered.append(str(user_id))
                during.append(running)

    sender = threading.Thread(target=send_messages)
    sender.start()
    run_decay(db, T0, batch=5)
    sender.join()
    assert len(answered) == 60
    assert any(during)  # some of them really were answered while the run was going on
    versions = db.execute(
        "select count(*) from public.user_bayesian_state where user_id = any(%s) and decayed_at >= %s", (due, T0)
    ).fetchone()[0]
    assert versions == len(due)


@pytest.mark.parametrize("ahead", [dt.timedelta(minutes=6), dt.timedelta(days=200), dt.timedelta(days=365 * 974)])
def test_a_p_now_ahead_of_the_clock_is_22023_and_decays_nobody(db, pool, ahead):
    """Issue 12: run_decay('3000-01-01') moved every due player's decayed_at to the year 3000, where no later
    run or message decays him again. p_now may be at most clock_skew_s ahead, as a message's send time."""
    user_id = add_player(db, pool[0], T0 - 100 * HOUR)
    before, runs = snapshot(db, [user_id]), db.execute("select count(*) from bayes.decay_run").fetchone()
    widened = db.execute("select value from bayes.params where name = 'clock_skew_s'").fetchone()[0]
    db.execute("update bayes.params set value = '300' where name = 'clock_skew_s'")
    try:
        now = db.execute("select now()").fetchone()[0]
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="clock_skew_s = 300 s"):
            run_decay(db, now + ahead)
    finally:
        db.execute("update bayes.params set value = %s where name = 'clock_skew_s'", (json.dumps(widened),))
    assert snapshot(db, [user_id]) == before
    assert db.execute("select count(*) from bayes.decay_run").fetchone() == runs


# --------------------------------------------------------------------------
# Issue 15: writes bounded by change, decay on read
# --------------------------------------------------------------------------


def test_every_writer_stores_the_due_time_of_what_it_wrote(db, params):
    """A message (and the other writers) store decay_due.due_at of the new state with the row's new times."""
    user_id = new_player(db)
    for i, text in enumerate(["I love you, you make me feel safe", "I trust you so much", "you are amazing"]):
        db.execute("select public.bayes_process_message(%s, %s, %s, %s, 60)", (user_id, text, T0 + i * HOUR, f"due{i}"))
        text_now, _, last, decayed, _ = snapshot(db, [user_id])[user_id]
        assert last == decayed == epoch(T0 + i * HOUR)
        due = decay_runs.due_times(db, [user_id])[user_id]
        assert same_due(due, decay_due.due_at(params, codec.decode(text_now), last, decayed))
        assert due is not None and due > T0 + i * HOUR  # a few messages above the prior: due one day
    db.execute("select public.bayes_advance_chapter(%s, 3)", (user_id,))
    text_now, _, last, decayed, _ = snapshot(db, [user_id])[user_id]
    want = decay_due.due_at(params, codec.decode(text_now), last, decayed)
    assert same_due(decay_runs.due_times(db, [user_id])[user_id], want)


def test_a_run_finds_nothing_to_do_for_players_within_tolerance_of_their_prior(db, params):
    """A player at his prior (a fresh chapter) has no due time: no run ever rewrites him until he writes."""
    user_id = new_player(db)
    db.execute("select public.bayes_advance_chapter(%s, 2)", (user_id,))
    db.execute(
        "update public.user_bayesian_state set last_message_at = %s, decayed_at = %s where user_id = %s",
        (T0, T0, user_id),
    )
    decay_runs.set_due(db, [user_id])
    assert decay_runs.due_times(db, [user_id])[user_id] is None
    before = snapshot(db, [user_id])
    for days in (1, 10, 100):
        run_decay(db, T0 + days * 24 * HOUR)
    assert snapshot(db, [user_id]) == before


def test_a_run_writes_a_player_only_when_he_has_moved_by_the_tolerance(db, params, pool):
    """Runs every 15 minutes over two days: a row is rewritten only at or after its due time, and between two
    writes the stored composite is within the tolerance of the exact one at every run's instant."""
    last = T0 - 20 * HOUR
    ids = [add_player(db, text, last) for text in pool[:8]]
    writes = dict.fromkeys(ids, 0)
    now = T0
    for _ in range(2 * 24 * 4):
        dues = decay_runs.due_times(db, ids)
        before = snapshot(db, ids)
        run_decay(db, now)
        after = snapshot(db, ids)
        for user_id in ids:
            rewritten = after[user_id][1] != before[user_id][1]
            assert rewritten == (dues[user_id] is not None and dues[user_id] < now), user_id
            writes[user_id] += rewritten
            text, _, lm, dc, _ = after[user_id]
            exact = codec.decode(events.decayed_text(params, text, lm, dc, epoch(now)))
            assert composite(codec.decode(text)) - composite(exact) <= params.g["decay_tolerance_composite"] + 1e-6
        now += dt.timedelta(minutes=15)
    assert sum(writes.values()) < len(ids) * 2 * 24 * 4 / 4  # far fewer than one write a run


def composite(state) -> float:
    return model.metric_summary(state)[1]


def test_the_read_rpcs_decay_on_read(db, params, pool):
    """bayes_get_state, bayes_boss_readiness and bayes_fallback_check answer as of now(), the row decayed
    exactly (bayes.decay_state) from what is stored, whatever the bulk decay did; they write nothing."""
    now = dt.datetime.now(dt.UTC)
    user_id = add_player(db, pool[11], now - 300 * HOUR)
    before = snapshot(db, [user_id])
    text, _, lm, dc, _ = before[user_id]
    with db.transaction():  # one now() for the reads and the expected state
        got = db.execute(
            "select public.bayes_get_state(%s), public.bayes_boss_readiness(%s), public.bayes_fallback_check(%s),"
            " extract(epoch from now())::float8",
            (user_id, user_id, user_id),
        ).fetchone()
    state_answer, readiness, fallback, at = got
    exact = codec.decode(events.decayed_text(params, text, lm, dc, at))
    stale = codec.decode(text)
    assert composite(stale) - composite(exact) > 1.0  # 300 hours of absence moved him
    assert state_answer["composite"] == pytest.approx(composite(exact), abs=1e-9)
    assert readiness["p_ready"] == pytest.approx(model.boss_readiness(exact, params)["p_ready"], abs=1e-12)
    assert fallback["budget_left"] == exact["lb"]
    assert dt.datetime.fromisoformat(readiness["decayed_at"]).timestamp() == pytest.approx(at, abs=1e-6)
    assert snapshot(db, [user_id]) == before  # nothing written
