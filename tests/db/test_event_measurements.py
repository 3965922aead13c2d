"""The measurements the writers leave in the event log (issue 16, item 1) on a real cluster.

Every event records when the engine wrote it (recorded_at, clock_timestamp()
at the write); a message also records its time inside the database
(db_time_us: from the first line of bayes_process_message to just before its
write) and its number of metric features (observations; 0 = no_signals).
Checked through real RPC calls against the database clock read just before
and just after each call, and bayes.event_id_at (the binary search the
health queries start their windows with) against the brute-force
min(event_id) over the rows, as a property."""

from __future__ import annotations

import datetime as dt

import pytest
from bayes_dev.players import MESSAGES
from bayes_dev.support import new_player
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

pytestmark = pytest.mark.db

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
MESSAGE_SQL = "select public.bayes_process_message(%s, %s, %s, %s, %s)"
# A message whose text fires no metric feature (MODEL.md section 3): 20 < L <= 150, no '?', no positive,
# negative or personal word, and no reply gap (every gap-based feature needs one).
NO_SIGNAL_TEXT = "we walked along the river and watched the boats go by"
CLOCK_SQL = "select clock_timestamp()"
EVENT_SQL = (
    "select kind::text, recorded_at, db_time_us, observations, fallback_reason::text"
    " from bayes.player_event where user_id = %s order by event_id desc limit 1"
)
# The brute force bayes.event_id_at must equal: the first event recorded at or after t; when none is, the
# max id + 1 (every event is older than t); on an empty log 1.
BRUTE_FORCE_SQL = (
    "select coalesce(min(event_id) filter (where recorded_at >= %(t)s), max(event_id) + 1, 1) from bayes.player_event"
)


def timed_call(conn, sql, args):
    """The RPC's result between two reads of the database clock (the same transaction: clock_timestamp())."""
    before = conn.execute(CLOCK_SQL).fetchone()[0]
    result = conn.execute(sql, args).fetchone()[0]
    after = conn.execute(CLOCK_SQL).fetchone()[0]
    return result, before, after


def last_event(conn, user_id):
    return conn.execute(EVENT_SQL, (user_id,)).fetchone()


def event_count(conn, user_id=None):
    if user_id is None:
        return conn.execute("select count(*) from bayes.player_event").fetchone()[0]
    return conn.execute("select count(*) from bayes.player_event where user_id = %s", (user_id,)).fetchone()[0]


def microseconds(delta: dt.timedelta) -> int:
    return delta // dt.timedelta(microseconds=1)


def test_a_message_records_when_it_was_written_its_time_inside_the_database_and_its_features(conn):
    user_id = new_player(conn)
    for i, text in enumerate(MESSAGES * 2):
        result, before, after = timed_call(
            conn, MESSAGE_SQL, (user_id, text, T0 + dt.timedelta(minutes=i), f"m-{i}", 45.0 + 7 * i)
        )
        kind, recorded_at, db_time_us, observations, reason = last_event(conn, user_id)
        assert kind == "message" and result["duplicate"] is False
        assert before <= recorded_at <= after
        assert 0 < db_time_us <= microseconds(after - before)
        # the time inside the database ends where the event is recorded: it cannot reach back before the call
        assert recorded_at - dt.timedelta(microseconds=db_time_us) >= before
        assert observations == result["observations"] == len(result["features"])
        assert reason == result["fallback"]["reason"]


def test_a_message_without_a_metric_feature_records_0_observations_and_no_signals_after_the_cold_start(conn):
    """MODEL.md section 7: cold_start is checked first, so during the first 10 messages a featureless
    message says cold_start; after them no_signals. Its observations are 0 either way."""
    user_id = new_player(conn)
    reasons = []
    for i in range(12):
        result, before, after = timed_call(conn, MESSAGE_SQL, (user_id, NO_SIGNAL_TEXT, T0, f"quiet-{i}", None))
        _, recorded_at, db_time_us, observations, reason = last_event(conn, user_id)
        assert result["observations"] == 0 and result["features"] == []
        assert observations == 0
        assert before <= recorded_at <= after and 0 < db_time_us <= microseconds(after - before)
        assert reason == result["fallback"]["reason"]
        reasons.append((result["n"], reason))
    assert reasons == [(n, "cold_start") for n in range(1, 10)] + [(n, "no_signals") for n in (10, 11, 12)]


WRITERS = [
    ("llm_scores", "select public.bayes_apply_llm_scores(%s, '{\"trust\": 4, \"passion\": -2}'::jsonb, 'm-0')"),
    ("outcome", "select public.bayes_record_outcome(%s, 'reply', true)"),
    ("chapter", "select public.bayes_advance_chapter(%s, 2)"),
]


@pytest.mark.parametrize("kind, sql", WRITERS, ids=[w[0] for w in WRITERS])
def test_the_other_writers_record_when_they_wrote_and_nothing_else(conn, kind, sql):
    user_id = new_player(conn)
    conn.execute(MESSAGE_SQL, (user_id, MESSAGES[2], T0, "m-0", 60.0))
    count = event_count(conn, user_id)
    _, before, after = timed_call(conn, sql, (user_id,))
    assert event_count(conn, user_id) == count + 1
    written_kind, recorded_at, db_time_us, observations, reason = last_event(conn, user_id)
    assert (written_kind, db_time_us, observations, reason) == (kind, None, None, None)
    assert recorded_at is not None and before <= recorded_at <= after


def test_a_duplicate_message_id_writes_no_event(conn):
    user_id = new_player(conn)
    first = conn.execute(MESSAGE_SQL, (user_id, MESSAGES[0], T0, "same", 30.0)).fetchone()[0]
    events = conn.execute(
        "select event_id, recorded_at, db_time_us, observations from bayes.player_event where user_id = %s",
        (user_id,),
    ).fetchall()
    again = conn.execute(MESSAGE_SQL, (user_id, MESSAGES[0], T0, "same", 30.0)).fetchone()[0]
    assert again == {**first, "duplicate": True}
    assert (
        conn.execute(
            "select event_id, recorded_at, db_time_us, observations from bayes.player_event where user_id = %s",
            (user_id,),
        ).fetchall()
        == events
    )
    # and a duplicate of the LLM's scores neither
    conn.execute(WRITERS[0][1], (user_id,))
    count = event_count(conn, user_id)
    conn.execute(WRITERS[0][1], (user_id,))
    assert event_count(conn, user_id) == count == 2


# ---------------------------------------------------------------- bayes.event_id_at


def event_id_at(conn, t):
    return conn.execute("select bayes.event_id_at(%s)", (t,)).fetchone()[0]


def brute_force(conn, t):
    return conn.execute(BRUTE_FORCE_SQL, {"t": t}).fetchone()[0]


def test_event_id_at_on_an_empty_log_is_1(conn):
    conn.execute("delete from bayes.player_event")  # the test's transaction: rolled back
    assert event_id_at(conn, T0) == brute_force(conn, T0) == 1


def test_event_id_at_is_the_first_event_recorded_at_or_after_the_instant(conn):
    """A property over a log written by the four writer RPCs (the test's transaction alone sees it: the
    events the other tests committed are deleted in it), with a prefix of the log made older than issue 16
    (recorded_at null), at the instants of the events, a microsecond around them, between them and
    before and after all of them."""
    conn.execute("delete from bayes.player_event")
    players = [new_player(conn) for _ in range(3)]
    for i in range(30):
        user_id = players[i % 3]
        conn.execute(MESSAGE_SQL, (user_id, MESSAGES[i % len(MESSAGES)], T0 + dt.timedelta(minutes=i), f"m-{i}", 30.0))
        if i % 7 == 3:
            conn.execute(WRITERS[0][1].replace("'m-0'", f"'m-{i}'"), (user_id,))
        if i % 11 == 5:
            conn.execute(WRITERS[1][1], (user_id,))
        if i == 20:
            conn.execute(WRITERS[2][1], (user_id,))
    log = conn.execute("select event_id, recorded_at from bayes.player_event order by event_id").fetchall()
    assert len(log) == 30 + 4 + 3 + 1 and all(at is not None for _, at in log)
    assert [at for _, at in log] == sorted(at for _, at in log)  # written by one session, in order
    times = [at for _, at in log]
    first, last = times[0], times[-1]
    span_us = microseconds(last - first)
    one_us = dt.timedelta(microseconds=1)

    at_events = hs.builds(
        lambda i, d: times[i] + d * one_us, hs.integers(0, len(times) - 1), hs.sampled_from([-1, 0, 1])
    )
    between = hs.builds(lambda i: times[i] + (times[i + 1] - times[i]) / 2, hs.integers(0, len(times) - 2))
    anywhere = hs.builds(lambda us: first + us * one_us, hs.integers(-span_us - 10**6, 2 * span_us + 10**6))
    outside = hs.sampled_from([first - dt.timedelta(days=400), last + dt.timedelta(days=400)])

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(t=at_events | between | anywhere | outside, older=hs.integers(0, len(log)))
    def same_as_brute_force(t, older):
        conn.execute("savepoint older_events")
        try:
            # the first `older` events as if written before issue 16
            conn.execute(
                "update bayes.player_event set recorded_at = null where event_id in"
                " (select event_id from bayes.player_event order by event_id limit %s)",
                (older,),
            )
            expected = brute_force(conn, t)
            assert event_id_at(conn, t) == expected
            # and what the brute force means, over the rows read here
            kept = [(event_id, at if k >= older else None) for k, (event_id, at) in enumerate(log)]
            later = [event_id for event_id, at in kept if at is not None and at >= t]
            assert expected == (min(later) if later else log[-1][0] + 1)
        finally:
            conn.execute("rollback to savepoint older_events")

    same_as_brute_force()
