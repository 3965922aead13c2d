"""The bulk decay when something goes wrong (issue 12, hardening), on a real cluster.

- A corrupt row (a state the codec refuses, planted as an operator's manual
  UPDATE would leave it) is skipped and recorded in bayes.decay_skipped;
  every other player is decayed and the run ends 'done' with its count of
  skipped rows.
- A run that fails for any other reason releases its advisory lock and
  marks its bayes.decay_run row 'failed' with the error, in the session that
  ran it, which stays connected: the next run, from another connection,
  runs. A run killed with pg_terminate_backend is marked 'interrupted' by
  the next run.

Each test looks only at its own players and decays at an instant of its own
(the shared test database holds other modules' players).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable

import psycopg
import pytest
from bayes_dev import corrupt, decay_runs, players
from bayes_dev.decay_runs import rows, run_decay
from bayes_dev.support import new_player
from bayes_engine import codec, events
from bayes_engine.errors import BayesError

T0 = dt.datetime(2025, 3, 1, 12, 0, tzinfo=dt.UTC)  # before every other module's instants: their players are not due
HOUR = dt.timedelta(hours=1)
OVERLAPPED = "bayes.run_decay: another run is in progress; this one did nothing"


@pytest.fixture
def pool(params) -> list[str]:
    return players.state_pool(params, size=20, seed=12)


@pytest.fixture
def mine(db):
    """The players a test creates; deleted at its end (their states cascade), corrupt or not."""
    ids: list[uuid.UUID] = []
    yield ids
    db.execute("delete from auth.users where id = any(%s)", (ids,))


def add_player(db, mine: list, state_text: str, last_message_at) -> uuid.UUID:
    """A player due for the bulk decay as soon as his decay window opens (as a row written before migration
    0013): these tests are about runs that fail, not about which rows are due (tests/db/test_decay.py)."""
    return decay_runs.add_player(db, state_text, last_message_at, mine=mine, due="window")


def last_run_id(db) -> int:
    return db.execute("select coalesce(max(run_id), 0) from bayes.decay_run").fetchone()[0]


def run_row(db, run_id) -> dict:
    cur = db.execute("select * from bayes.decay_run where run_id = %s", (run_id,))
    names = [c.name for c in cur.description]
    row = cur.fetchone()
    return dict(zip(names, row)) if row else None


def codec_refusal(text: str) -> tuple[str, str]:
    """(SQLSTATE, message) of the codec's refusal of a stored state's text; the state must be refused."""
    try:
        codec.decode(text)
    except BayesError as err:
        return err.sqlstate, err.message
    raise AssertionError(f"the codec accepts {text[:200]}")


def assert_decayed(params, before: dict, after: dict, now) -> None:
    """Each row of `before` was decayed up to `now`, once, to what the Python decay computes."""
    for user_id, (text, version, last, decayed, _) in before.items():
        new_text, new_version, _, _, new_decayed_at = after[user_id]
        assert (new_version, new_decayed_at) == (version + 1, now), user_id
        assert codec.decode(new_text) == codec.decode(events.decayed_text(params, text, last, decayed, now.timestamp()))


# --------------------------------------------------------------------------
# Corrupt rows are skipped and recorded
# --------------------------------------------------------------------------


def test_a_corrupt_row_is_skipped_recorded_and_everyone_after_it_is_decayed(db, params, pool, mine):
    """The issue's case: one due row whose state lacks `h`, in the middle of the players in user_id order."""
    last = T0 - 100 * HOUR
    ids = sorted(add_player(db, mine, text, last) for text in pool[:9])
    bad = ids[4]
    corrupt.plant(db, bad, json.dumps({k: v for k, v in json.loads(pool[4]).items() if k != "h"}))
    before = rows(db, ids)
    now = T0
    previous = last_run_id(db)
    notices = run_decay(db, now, batch=3)

    run = run_row(db, last_run_id(db))
    assert run["run_id"] > previous
    assert (run["status"], run["skipped"], run["sqlstate"], run["error"]) == ("done", 1, None, None)
    skipped = db.execute(
        "select user_id, sqlstate, error, skipped_at from bayes.decay_skipped where run_id = %s", (run["run_id"],)
    ).fetchall()
    assert [row[:3] for row in skipped] == [(bad, "XX001", "stored state is corrupt: h is missing")]
    assert run["started_at"] <= skipped[0][3] <= run["finished_at"]
    after = rows(db, ids)
    assert after[bad] == before[bad]  # left as it was
    assert_decayed(params, {u: r for u, r in before.items() if u != bad}, after, now)
    assert any("1 skipped" in n for n in notices if n.startswith("bayes.run_decay: batch ")), notices
    assert "1 skipped" in notices[-1] and notices[-1].startswith("bayes.run_decay: done:"), notices
    # aggregate analytics over a table that holds the corrupt row skip it
    mean, counted = db.execute(
        "select avg(bayes.readiness_probability(state)), count(bayes.readiness_probability(state))"
        " from public.user_bayesian_state where user_id = any(%s)",
        (ids,),
    ).fetchone()
    assert counted == len(ids) - 1 and 0 <= mean <= 1


# Kinds of corrupt state the table itself refuses (check constraint, generated column), with the SQLSTATE.
REFUSED_BY_THE_TABLE = {
    "c is string": "22P02",  # chapter: (state ->> 'c')::smallint
    "c is object": "22P02",
    "c is array": "22P02",
    "c = 3.5": "22P02",
    "c = true": "22P02",
    "c = 0": "23514",  # user_bayesian_state_chapter_range
    "c = 6": "23514",
    "m.s[0] is huge": "22003",  # composite: float8 out of range
    "m.p[0] is tiny": "22003",  # composite: float8 underflow
}


def plant_every_kind(db, mine, pool, last) -> tuple[dict, dict, dict]:
    """A valid player before each corrupt one; (valid rows, corrupt rows, kinds the table refused)."""
    valid, bad, refused = [], {}, {}
    for i, (name, text) in enumerate(corrupt.corruptions(codec.decode(pool[1]))):
        valid.append(add_player(db, mine, pool[i % len(pool)], last))
        user_id = add_player(db, mine, pool[1], last)
        try:
            corrupt.plant(db, user_id, text)
        except psycopg.Error as err:
            refused[name] = err.sqlstate
            continue
        bad[user_id] = name
    return valid, bad, refused


def test_every_kind_of_corrupt_row_is_skipped_with_the_codecs_error(db, params, pool, mine):
    last = T0 - 100 * HOUR
    valid, bad, refused = plant_every_kind(db, mine, pool, last)
    assert refused == REFUSED_BY_THE_TABLE
    assert len(bad) >= 100
    stored = rows(db, bad)
    want = {user_id: codec_refusal(stored[user_id][0]) for user_id in bad}
    assert {sqlstate for sqlstate, _ in want.values()} == {"XX001", "0A000"}
    before = rows(db, valid)
    now = T0 + 24 * HOUR
    notices = run_decay(db, now, batch=7)

    run = run_row(db, last_run_id(db))
    recorded = db.execute(
        "select user_id, sqlstate, error from bayes.decay_skipped where run_id = %s", (run["run_id"],)
    ).fetchall()
    assert sorted(bad[u] for u in set(bad) - {r[0] for r in recorded}) == []
    assert (run["status"], run["skipped"]) == ("done", len(bad))
    assert {user_id: (sqlstate, error) for user_id, sqlstate, error in recorded} == want
    assert rows(db, bad) == stored
    assert_decayed(params, before, rows(db, valid), now)
    assert f"{len(bad)} skipped" in notices[-1]


@pytest.mark.parametrize(
    ("last_message_at", "decayed_at"),
    [("-infinity", "-infinity"), ("-infinity", None), ("2000-01-01", "-infinity"), ("2000-01-01", "2100-01-01")],
)
def test_odd_times_of_a_valid_state_never_fail_the_run(db, params, pool, mine, last_message_at, decayed_at):
    """An operator's odd timestamps (the state itself valid): decayed as the lazy path would, or left alone."""
    user_id = add_player(db, mine, pool[5], T0)
    with db.transaction():
        db.execute("set local session_replication_role = replica")
        db.execute(
            "update public.user_bayesian_state set last_message_at = %s, decayed_at = %s where user_id = %s",
            (last_message_at, decayed_at, user_id),
        )
    now = T0 + 1000 * HOUR
    read = (
        "select state::text, version, extract(epoch from last_message_at)::float8,"
        " extract(epoch from decayed_at)::float8, decayed_at = %s from public.user_bayesian_state where user_id = %s"
    )
    text, version, last, decayed, _ = before = db.execute(read, (now, user_id)).fetchone()
    run_decay(db, now)
    run = run_row(db, last_run_id(db))
    assert (run["status"], run["skipped"]) == ("done", 0)
    after = db.execute(read, (now, user_id)).fetchone()
    if decayed_at == "2100-01-01":
        assert after == before  # decayed beyond p_now already: not due
    else:
        assert after[1:] == (version + 1, last, now.timestamp(), True)
        want = events.decayed_text(params, text, last, decayed, now.timestamp())
        assert codec.decode(after[0]) == codec.decode(want)


def test_a_skipped_row_is_skipped_by_every_run_until_it_is_repaired_as_operations_md_says(db, params, mine):
    """docs/operations.md, "A skipped row": find it, repair it from the event log, and the next run decays it."""
    user_id = new_player(db)
    mine.append(user_id)
    for i, text in enumerate(["hey! how was your day?", "I trust you, you make me feel safe", "haha 😂"]):
        db.execute("select public.bayes_process_message(%s, %s, %s, %s, 90)", (user_id, text, T0 + i * HOUR, f"s{i}"))
    good = json.loads(rows(db, [user_id])[user_id][0])
    corrupt.plant(db, user_id, json.dumps({**good, "h": [0.5] * 6}))
    runs = []
    for hours in (100, 110):
        run_decay(db, T0 + hours * HOUR)
        runs.append(last_run_id(db))
    found = db.execute(
        "select k.user_id, k.sqlstate, k.error, s.version"
        " from bayes.decay_skipped as k"
        " left join public.user_bayesian_state as s on s.user_id = k.user_id"
        " where k.run_id = (select max(run_id) from bayes.decay_skipped)"
    ).fetchall()
    assert found == [(user_id, "XX001", "stored state is corrupt: h must sum to 1 (within 1e-05), got 3.0", 4)]
    assert (
        db.execute(
            "select count(*) from bayes.decay_skipped where user_id = %s and run_id = any(%s)", (user_id, runs)
        ).fetchone()[0]
        == 2
    )
    # the repair: the state the engine would have, from the event log
    db.execute(
        "update public.user_bayesian_state set state = bayes.replay(user_id), version = version + 1,"
        " updated_at = now() where user_id = %s",
        (user_id,),
    )
    assert db.execute(
        "select bayes.state_problem(state) from public.user_bayesian_state where user_id = %s", (user_id,)
    ).fetchone() == (None,)
    before = rows(db, [user_id])
    now = T0 + 120 * HOUR
    run_decay(db, now)
    assert run_row(db, last_run_id(db))["skipped"] == 0
    assert_decayed(params, before, rows(db, [user_id]), now)


# --------------------------------------------------------------------------
# A failed run releases its lock and says why
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Failure:
    """A way to make a run fail that is not a corrupt row.

    setup(db, victim, now) and teardown(db) run on the test's own
    connection (committed); run(conn, now, dsn) makes the failing call on
    the long-lived connection `conn`.
    """

    name: str
    sqlstate: str
    setup: Callable = lambda db, victim, now: None
    teardown: Callable = lambda db: None
    run: Callable = lambda conn, now, dsn: conn.execute(decay_runs.decay_command(conn, now, 2))
    autocommit: bool = True
    marks_its_row: bool = True  # False: it fails before its row of bayes.decay_run exists


def sleeping_trigger(seconds: float) -> Callable:
    def setup(db, victim, now):
        db.execute(
            "create function public.decay_test_trigger() returns trigger language plpgsql as $$"
            f" begin perform pg_sleep({seconds}); return new; end $$"
        )
        db.execute(
            "create trigger decay_test_trigger before update on public.user_bayesian_state for each row"
            f" when (new.user_id = '{victim}') execute function public.decay_test_trigger()"
        )

    return setup


def raising_trigger(deferred: bool, statement: str = "raise exception 'refused by a test trigger'") -> Callable:
    def setup(db, victim, now):
        db.execute(
            "create function public.decay_test_trigger() returns trigger language plpgsql as $$"
            f" begin {statement}; end $$"
        )
        if deferred:
            db.execute(
                "create constraint trigger decay_test_trigger after update on public.user_bayesian_state"
                " deferrable initially deferred for each row"
                f" when (new.user_id = '{victim}') execute function public.decay_test_trigger()"
            )
        else:
            db.execute(
                "create trigger decay_test_trigger before update on public.user_bayesian_state for each row"
                f" when (new.user_id = '{victim}') execute function public.decay_test_trigger()"
            )

    return setup


def drop_trigger(db):
    db.execute("drop trigger if exists decay_test_trigger on public.user_bayesian_state")
    db.execute("drop function if exists public.decay_test_trigger()")


def with_timeout(conn, now, dsn):
    conn.execute("set statement_timeout = '300ms'")
    try:
        conn.execute(decay_runs.decay_command(conn, now, 2))
    finally:
        conn.execute("reset statement_timeout")


def cancelled(conn, now, dsn):
    pid = conn.info.backend_pid

    def cancel():
        with psycopg.connect(dsn, autocommit=True) as other:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                waiting = other.execute("select wait_event from pg_stat_activity where pid = %s", (pid,)).fetchone()
                if waiting and waiting[0] == "PgSleep":
                    other.execute("select pg_cancel_backend(%s)", (pid,))
                    return
                time.sleep(0.02)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    try:
        conn.execute(decay_runs.decay_command(conn, now, 2))
    finally:
        canceller.join()


def state_check(db, victim, now):
    db.execute(
        "alter table public.user_bayesian_state add constraint decay_test_check"
        f" check (user_id <> '{victim}' or decayed_at < '{now.isoformat()}') not valid"
    )


def drop_state_check(db):
    db.execute("alter table public.user_bayesian_state drop constraint if exists decay_test_check")


def run_check(condition: str) -> Callable:
    def setup(db, victim, now):
        db.execute(
            f"alter table bayes.decay_run add constraint decay_test_check check ({condition.format(now=now)}) not valid"
        )

    return setup


def drop_run_check(db):
    db.execute("alter table bayes.decay_run drop constraint if exists decay_test_check")


def broken_parameter(db, victim, now):
    db.execute(
        "create table public.decay_test_saved as select * from bayes.params where name = 'vice_decay_rate_per_h'"
    )
    with db.transaction():  # the table refuses it (issue 12): as a restore with the triggers off would write it
        db.execute("set local session_replication_role = replica")
        db.execute("update bayes.params set value = '\"fast\"' where name = 'vice_decay_rate_per_h'")
        db.execute("update bayes.params_revision set revision = revision + 1")


def restore_parameter(db):
    if db.execute("select to_regclass('public.decay_test_saved')").fetchone()[0]:
        db.execute(
            "update bayes.params as p set value = s.value from public.decay_test_saved as s where p.name = s.name"
        )
        db.execute("drop table public.decay_test_saved")


def missing_module(db, victim, now):
    db.execute("create table public.decay_test_saved as select * from bayes.py_module where name = 'bayes_engine.bulk'")
    db.execute("delete from bayes.py_module where name = 'bayes_engine.bulk'")


def restore_module(db):
    if db.execute("select to_regclass('public.decay_test_saved')").fetchone()[0]:
        db.execute("insert into bayes.py_module select * from public.decay_test_saved on conflict do nothing")
        db.execute("drop table public.decay_test_saved")


FAILURES = [
    Failure("statement_timeout", "57014", sleeping_trigger(3), drop_trigger, with_timeout),
    Failure("pg_cancel_backend", "57014", sleeping_trigger(10), drop_trigger, cancelled),
    Failure("a trigger raises", "P0001", raising_trigger(deferred=False), drop_trigger),
    Failure("a deferred trigger raises at commit", "P0001", raising_trigger(deferred=True), drop_trigger),
    Failure(
        "an ASSERT of a trigger fails",
        "P0004",
        raising_trigger(deferred=False, statement="assert new.version < 0, 'a test trigger asserts'"),
        drop_trigger,
    ),
    Failure("a check constraint on the state table", "23514", state_check, drop_state_check),
    Failure("a broken parameter fails bayes.decay_states", "22023", broken_parameter, restore_parameter),
    Failure("a module missing fails bayes.decay_states", "38000", missing_module, restore_module),
    Failure(
        "the run's first statements fail",
        "23514",
        run_check("decay_to <> '{now}'"),
        drop_run_check,
        marks_its_row=False,
    ),
    Failure(
        "the run's last statement fails", "23514", run_check("status <> 'done' or decay_to <> '{now}'"), drop_run_check
    ),
    Failure(
        "a bad p_batch",
        "22023",
        run=lambda conn, now, dsn: conn.execute(decay_runs.decay_command(conn, now, 0)),
        marks_its_row=False,
    ),
    Failure("called in a transaction block", "2D000", autocommit=False, marks_its_row=False),
]


@pytest.mark.parametrize("failure", FAILURES, ids=[f.name for f in FAILURES])
def test_a_failed_run_releases_its_lock_and_is_marked_failed(dsn, db, params, pool, mine, failure):
    now = T0 + (100 + FAILURES.index(failure)) * 24 * HOUR
    last = now - 100 * HOUR
    first = sorted(add_player(db, mine, text, last) for text in pool[:6])
    before_first = rows(db, first)
    previous = last_run_id(db)
    try:
        failure.setup(db, first[2], now)
        with psycopg.connect(dsn, autocommit=failure.autocommit) as session:
            with pytest.raises(psycopg.Error) as raised:
                failure.run(session, now, dsn)
            assert raised.value.sqlstate == failure.sqlstate, raised.value
            if not failure.autocommit:
                session.rollback()
            failure.teardown(db)
            mine_runs = [r for (r,) in db.execute("select run_id from bayes.decay_run where run_id > %s", (previous,))]
            # players who become due after the failure, for the next run to decay
            late = [add_player(db, mine, text, last) for text in pool[6:9]]
            before_late = rows(db, late)
            # the next run, from another connection, while the failed one's session is still open
            with psycopg.connect(dsn, autocommit=True) as other:
                notices = run_decay(other, now)
            assert OVERLAPPED not in notices
            assert session.execute("select 1").fetchone() == (1,)  # still connected
        if failure.marks_its_row:
            assert len(mine_runs) == 1
            run = run_row(db, mine_runs[0])
            assert (run["status"], run.get("sqlstate")) == ("failed", failure.sqlstate)
            assert run["error"] == raised.value.diag.message_primary
            assert run["finished_at"] is not None
        else:
            assert mine_runs == []
        run = run_row(db, last_run_id(db))
        assert run["status"] == "done"
        assert_decayed(params, before_late, rows(db, late), now)
        # every player of the failed run is decayed now, once (by its committed batches or by the next run)
        assert_decayed(params, before_first, rows(db, first), now)
    finally:
        failure.teardown(db)


def test_a_run_terminated_with_its_session_is_marked_interrupted_by_the_next(dsn, db, params, pool, mine):
    now = T0 + 300 * 24 * HOUR
    last = now - 100 * HOUR
    first = sorted(add_player(db, mine, text, last) for text in pool[:6])
    before = rows(db, first)
    previous = last_run_id(db)
    try:
        sleeping_trigger(10)(db, first[2], now)
        session = psycopg.connect(dsn, autocommit=True)
        failed: list[BaseException] = []

        def run():
            try:
                session.execute(decay_runs.decay_command(session, now, 2))
            except psycopg.Error as err:
                failed.append(err)

        runner = threading.Thread(target=run)
        runner.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            waiting = db.execute(
                "select wait_event from pg_stat_activity where pid = %s", (session.info.backend_pid,)
            ).fetchone()
            if waiting and waiting[0] == "PgSleep":
                break
            time.sleep(0.02)
        db.execute("select pg_terminate_backend(%s, 10000)", (session.info.backend_pid,))
        runner.join()
        session.close()
        assert failed and isinstance(failed[0], psycopg.OperationalError)
        drop_trigger(db)
        (killed,) = db.execute("select run_id from bayes.decay_run where run_id > %s", (previous,)).fetchone()
        assert run_row(db, killed)["status"] == "running"
        notices = run_decay(db, now)
        assert OVERLAPPED not in notices
        assert run_row(db, killed)["status"] == "interrupted"
        assert run_row(db, last_run_id(db))["status"] == "done"
        assert_decayed(params, before, rows(db, first), now)
    finally:
        drop_trigger(db)
