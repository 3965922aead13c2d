"""The writer RPCs on a real cluster: one transaction, idempotency, replay,
bad input (SQLSTATE, nothing written), parameters, roles and concurrency."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid

import psycopg
import pytest
from bayes_dev.support import act_as, new_player
from bayes_engine import codec, events, model, params
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from psycopg import errors

pytestmark = pytest.mark.db

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
MESSAGE_SQL = "select public.bayes_process_message(%(u)s, %(text)s, %(at)s, %(id)s, %(gap)s, %(topic)s)"


def send(conn, user_id, text, at=None, message_id=None, gap=None, topic=None):
    return conn.execute(
        MESSAGE_SQL, dict(u=user_id, text=text, at=at or T0, id=message_id, gap=gap, topic=topic)
    ).fetchone()[0]


def row(conn, user_id):
    return conn.execute(
        "select state::text, version, last_message_at, decayed_at from public.user_bayesian_state where user_id = %s",
        (user_id,),
    ).fetchone()


def event_count(conn, user_id):
    return conn.execute("select count(*) from bayes.player_event where user_id = %s", (user_id,)).fetchone()[0]


CONVERSATION = [
    ("hey! how was your day?", None, None),
    ("I love you. What do you dream about?", 40.0, False),
    ("whatever, this is boring", 900.0, True),
    ("haha lol \U0001f602\U0001f602\U0001f602 let's go to a bar and do something crazy", 15.0, None),
    ("I feel like I can be honest with you, I have a secret. " * 5, 2500.0, False),
    ("ok", 200000.0, None),
]


def converse(conn, user_id, messages, start=T0, prefix="m"):
    t = start
    results = []
    for i in range(messages):
        text, gap, topic = CONVERSATION[i % len(CONVERSATION)]
        t += dt.timedelta(seconds=gap or 45)
        results.append(send(conn, user_id, text, t, f"{prefix}{i}", gap, topic))
    return results, t


def test_first_message_creates_the_state_and_logs_one_event(conn):
    user_id = new_player(conn)
    result = send(conn, user_id, "I love you. What do you dream about?", message_id="a1", gap=40.0)
    state, version, last, decayed = row(conn, user_id)
    assert version == 2 and last == T0 and decayed == T0
    assert result["n"] == 1 and result["version"] == 2 and result["duplicate"] is False
    assert result["user_id"] == str(user_id) and result["message_id"] == "a1"
    assert result["features"] == ["quick_reply", "personal_question", "warm_one", "steady"]
    assert result["observations"] == 4
    assert result["fallback"] == {"needed": True, "reason": "cold_start", "budget_left": 3}
    assert event_count(conn, user_id) == 1
    kind, message_id, occurred, n, mode, mood, reason, needed, stored_result = conn.execute(
        "select e.kind::text, e.message_id, e.occurred_at, e.n, e.player_mode::text, e.mood::text,"
        " e.fallback_reason::text, e.fallback_needed, r.result"
        " from bayes.player_event as e join bayes.event_result as r using (event_id)"
        " where e.user_id = %s",
        (user_id,),
    ).fetchone()
    assert (kind, message_id, occurred) == ("message", "a1", T0)
    assert (n, mode, mood, reason, needed) == (1, result["mode"], result["mood"]["state"], "cold_start", True)
    assert stored_result == result
    # the stored state equals the same message applied by the Python engine
    s = codec.default_state(1, params.DEFAULT_PARAMS)
    s = codec.decode(codec.encode(s))
    message = model.Message("I love you. What do you dream about?", T0.timestamp(), 40.0)
    events.apply_message(s, params.DEFAULT_PARAMS, str(user_id), message, model.RowTimes())
    assert state == codec.encode(s).replace(":", ": ").replace(",", ", ") or codec.decode(state) == codec.decode(
        codec.encode(s)
    )


def test_a_repeated_message_id_returns_the_first_result_and_changes_nothing(conn):
    user_id = new_player(conn)
    first = send(conn, user_id, "hello there, how are you?", message_id="dup", gap=60.0)
    before = row(conn, user_id)
    again = send(conn, user_id, "a different text, same id", T0 + dt.timedelta(hours=30), message_id="dup")
    assert again == {**first, "duplicate": True}
    assert row(conn, user_id) == before
    assert event_count(conn, user_id) == 1
    # the same id for another kind of input is another input
    llm = conn.execute(
        "select public.bayes_apply_llm_scores(%s, %s, 'dup')", (user_id, json.dumps({"trust": 2}))
    ).fetchone()[0]
    assert llm["duplicate"] is False and event_count(conn, user_id) == 2
    llm_again = conn.execute(
        "select public.bayes_apply_llm_scores(%s, %s, 'dup')", (user_id, json.dumps({"trust": -9}))
    ).fetchone()[0]
    assert llm_again == {**llm, "duplicate": True} and event_count(conn, user_id) == 2


def test_replay_equals_the_stored_state_after_a_mixed_history(conn):
    user_id = new_player(conn)
    conn.execute("set bayes.seed = 'replay-test'")
    _, t = converse(conn, user_id, 40)
    conn.execute(
        "select public.bayes_apply_llm_scores(%s, %s, 'x1')", (user_id, json.dumps({"intimacy": 6.5, "trust": -3}))
    )
    conn.execute("select public.bayes_record_outcome(%s, 'skip', true)", (user_id,))
    conn.execute("select public.bayes_record_outcome(%s, 'reply', false)", (user_id,))
    conn.execute("select public.bayes_advance_chapter(%s, 3)", (user_id,))
    converse(conn, user_id, 25, start=t + dt.timedelta(days=4), prefix="later")  # lazily decayed first
    replayed, stored, n = conn.execute(
        "select bayes.replay(%s), state, (state->>'n')::int from public.user_bayesian_state where user_id = %s",
        (user_id, user_id),
    ).fetchone()
    assert n == 65
    assert replayed == stored


def test_session_seed_changes_the_draws_and_is_logged(conn):
    a, b = new_player(conn), new_player(conn)

    def skip_ps(user_id, seed):
        # theta ~ Beta is continuous, but min(theta, cap 0.5) is 0.5 about one time in
        # eleven: three messages make two equal sequences a matter of seeds, not of the cap
        conn.execute(f"set bayes.seed = '{seed}'")
        return [
            send(
                conn,
                user_id,
                "hello there, how are you?",
                T0 + dt.timedelta(seconds=70 * i),
                gap=60.0,
                message_id=f"s{i}",
            )["skip"]["p"]
            for i in range(3)
        ]

    def afresh(user_id):
        conn.execute("delete from public.user_bayesian_state where user_id = %s", (user_id,))

    first = skip_ps(a, "one")
    assert (
        conn.execute(
            "select array_agg(bayes.event_input(kind, input) ->> 'seed' order by event_id) from bayes.player_event"
            " where user_id = %s",
            (a,),
        ).fetchone()[0]
        == ["one"] * 3
    )
    afresh(a)
    assert skip_ps(a, "one") == first  # the same player, history and seed: the same draws
    afresh(a)
    assert skip_ps(a, "two") != first  # another seed
    assert skip_ps(b, "one") != first  # another player


def test_a_later_message_decays_the_absent_player_first(conn):
    user_id = new_player(conn)
    _, t = converse(conn, user_id, 12)
    later = t + dt.timedelta(hours=8 + 50)  # chapter 1: grace 8 h, then 50 h of decay
    result = send(conn, user_id, "a neutral sentence of some length", later)
    assert result["decay_hours"] == pytest.approx(50.0, abs=1e-6)
    _, _, last, decayed = row(conn, user_id)
    assert last == later and decayed == later


def test_messages_out_of_order_keep_the_latest_times(conn):
    user_id = new_player(conn)
    send(conn, user_id, "first message here for the test", T0 + dt.timedelta(hours=2))
    send(conn, user_id, "an older message arriving late", T0)
    _, _, last, decayed = row(conn, user_id)
    assert last == decayed == T0 + dt.timedelta(hours=2)
    assert conn.execute(
        "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (user_id, user_id)
    ).fetchone()[0]


def test_a_changed_parameter_row_changes_the_next_call(conn):
    user_id = new_player(conn)
    before = send(conn, user_id, "hello there, how are you?")
    assert before["boss"]["threshold"] == 55
    revision = conn.execute("select revision from bayes.params_revision").fetchone()[0]
    conn.execute("update bayes.chapter_params set boss_threshold = 42 where chapter = 1")
    assert conn.execute("select revision from bayes.params_revision").fetchone()[0] == revision + 1
    after = send(conn, user_id, "hello again, how are you?", T0 + dt.timedelta(minutes=1))
    assert after["boss"]["threshold"] == 42


def test_an_unknown_auth_user_is_p0002_and_nothing_is_written(conn):
    ghost = uuid.uuid4()
    with pytest.raises(errors.NoDataFound, match="auth.users"):
        send(conn, ghost, "hello")
    conn.rollback()
    assert (
        conn.execute("select count(*) from public.user_bayesian_state where user_id = %s", (ghost,)).fetchone()[0] == 0
    )


@pytest.mark.parametrize(
    "sql, args, sqlstate",
    [
        ("select public.bayes_apply_llm_scores(%s, '{\"trust\": 1}')", (), "P0002"),
        ("select public.bayes_record_outcome(%s, 'skip', true)", (), "P0002"),
    ],
)
def test_writers_other_than_messages_need_an_existing_state(conn, sql, args, sqlstate):
    user_id = new_player(conn)
    with pytest.raises(psycopg.Error) as exc:
        conn.execute(sql, (user_id, *args))
    assert exc.value.sqlstate == sqlstate


BAD_INPUTS = [
    # (sql, args after user id, SQLSTATE, what)
    ("select public.bayes_process_message(null, 'x')", None, "22004", "null user"),
    ("select public.bayes_process_message(%s, null)", (), "22004", "null message"),
    ("select public.bayes_process_message(%s, 'x', null)", (), "22004", "null send time"),
    ("select public.bayes_process_message(%s, repeat('x', 65537))", (), "22001", "text over 64 KiB"),
    ("select public.bayes_process_message(%s, repeat('\u00e9', 32769))", (), "22001", "64 KiB counts bytes"),
    ("select public.bayes_process_message(%s, 'x', 'infinity')", (), "22023", "infinite time"),
    ("select public.bayes_process_message(%s, 'x', p_reply_gap_s => 'NaN')", (), "22023", "NaN gap"),
    ("select public.bayes_process_message(%s, 'x', p_reply_gap_s => 'Infinity')", (), "22023", "infinite gap"),
    ("select public.bayes_process_message(%s, 'x', p_reply_gap_s => -1)", (), "22023", "negative gap"),
    ("select public.bayes_process_message(%s, 'x', p_message_id => '')", (), "22023", "empty message id"),
    ("select public.bayes_apply_llm_scores(%s, null)", (), "22004", "null deltas"),
    ("select public.bayes_apply_llm_scores(%s, '[1, 2]')", (), "22023", "deltas not an object"),
    ("select public.bayes_apply_llm_scores(%s, '{}')", (), "22023", "no deltas"),
    ("select public.bayes_apply_llm_scores(%s, '{\"charm\": 1}')", (), "22023", "unknown metric"),
    ("select public.bayes_apply_llm_scores(%s, '{\"trust\": 10.5}')", (), "22023", "delta above 10"),
    ("select public.bayes_apply_llm_scores(%s, '{\"trust\": -11}')", (), "22023", "delta below -10"),
    ('select public.bayes_apply_llm_scores(%s, \'{"trust": "3"}\')', (), "22023", "delta of the wrong type"),
    ('select public.bayes_apply_llm_scores(%s, \'{"trust": "NaN"}\')', (), "22023", "NaN delta"),
    ("select public.bayes_apply_llm_scores(%s, '{\"trust\": null}')", (), "22023", "null delta"),
    ("select public.bayes_record_outcome(%s, null, true)", (), "22004", "null decision"),
    ("select public.bayes_record_outcome(%s, 'skip', null)", (), "22004", "null engaged"),
    ("select public.bayes_record_outcome(%s, 'maybe', true)", (), "22023", "unknown decision"),
    ("select public.bayes_advance_chapter(%s, null)", (), "22004", "null chapter"),
    ("select public.bayes_advance_chapter(%s, 0)", (), "22023", "chapter 0"),
    ("select public.bayes_advance_chapter(%s, 6)", (), "22023", "chapter 6"),
    ("select public.bayes_advance_chapter(%s, 1)", (), "22023", "chapter backwards"),
]


@pytest.mark.parametrize("sql, args, sqlstate, what", BAD_INPUTS, ids=[b[3] for b in BAD_INPUTS])
def test_bad_input_is_its_sqlstate_and_writes_nothing(dsn, sql, args, sqlstate, what):
    with psycopg.connect(dsn, autocommit=True) as conn:
        user_id = new_player(conn)
        send(conn, user_id, "hello there, how are you?")
        conn.execute("select public.bayes_advance_chapter(%s, 2)", (user_id,))
        before = row(conn, user_id), event_count(conn, user_id)
        with pytest.raises(psycopg.Error) as exc:
            conn.execute(sql, (user_id, *args) if args is not None else None)
        assert exc.value.sqlstate == sqlstate, exc.value
        assert not str(exc.value).startswith("plpy"), "validated in SQL, with a clean message"
        assert (row(conn, user_id), event_count(conn, user_id)) == before


def test_advancing_to_the_current_chapter_is_a_no_op(conn):
    user_id = new_player(conn)
    first = conn.execute("select public.bayes_advance_chapter(%s, 2)", (user_id,)).fetchone()[0]
    assert first["changed"] and first["previous_chapter"] == 1 and first["chapter"] == 2
    before = row(conn, user_id), event_count(conn, user_id)
    again = conn.execute("select public.bayes_advance_chapter(%s, 2)", (user_id,)).fetchone()[0]
    assert not again["changed"] and again["version"] == before[0][1]
    assert (row(conn, user_id), event_count(conn, user_id)) == before


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize(
    "call",
    [
        "select public.bayes_process_message(%s, 'hi')",
        "select public.bayes_apply_llm_scores(%s, '{\"trust\": 1}')",
        "select public.bayes_record_outcome(%s, 'skip', true)",
        "select public.bayes_advance_chapter(%s, 2)",
        "select bayes.replay(%s)",
    ],
)
def test_writers_are_for_the_backend_only(conn, role, call):
    user_id = new_player(conn)
    act_as(conn, role, user_id if role == "authenticated" else None)
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(call, (user_id,))


def test_service_role_writes_through_the_rpc(conn):
    user_id = new_player(conn)
    act_as(conn, "service_role")
    assert send(conn, user_id, "hello there, how are you?")["n"] == 1
    assert conn.execute(
        "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (user_id, user_id)
    ).fetchone()[0]


def test_deleting_a_player_deletes_his_state_and_events(conn):
    user_id = new_player(conn)
    converse(conn, user_id, 3)
    conn.execute("delete from auth.users where id = %s", (user_id,))
    assert event_count(conn, user_id) == 0


def test_state_after_1000_messages_is_at_most_512_bytes(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        user_id = new_player(conn)
        with conn.transaction():
            converse(conn, user_id, 1000, start=T0 - dt.timedelta(days=400))  # 385 days of messages
        compact, text, n = conn.execute(
            "select octet_length(state::text), octet_length(replace(replace(state::text, ': ', ':'), ', ', ',')),"
            " (state->>'n')::int from public.user_bayesian_state where user_id = %s",
            (user_id,),
        ).fetchone()
    assert n == 1000
    assert compact <= 512 and text <= 512


def test_concurrent_messages_are_each_counted_once(dsn):
    """8 connections x 250 messages to the same 4 players: no error, no deadlock, nothing lost."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        players = [new_player(conn) for _ in range(4)]
    errors_seen = []
    per_player = {p: 0 for p in players}
    lock = threading.Lock()

    def worker(k):
        try:
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("set lock_timeout = '20s'")
                for i in range(250):
                    user_id = players[(k + i) % 4]
                    at = T0 + dt.timedelta(seconds=k * 1000 + i)
                    send(conn, user_id, CONVERSATION[i % 6][0], at, f"w{k}-{i}", 30.0)
                    if i % 50 == 0:  # and a retry of the same message, as a client would after a timeout
                        assert send(conn, user_id, "retry", at, f"w{k}-{i}")["duplicate"] is True
                    with lock:
                        per_player[user_id] += 1
        except Exception as exc:  # noqa: BLE001 - reported below
            errors_seen.append(repr(exc))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert errors_seen == []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for user_id in players:
            n, version, events_n, distinct_versions, max_version = conn.execute(
                "select (s.state->>'n')::int, s.version, count(e.*), count(distinct e.n),"
                " max(e.n) + 1 from public.user_bayesian_state as s"
                " join bayes.player_event as e using (user_id) where s.user_id = %s group by s.state, s.version",
                (user_id,),
            ).fetchone()
            assert n == per_player[user_id] == events_n == distinct_versions
            assert version == max_version == n + 1
        assert sum(per_player.values()) == 2000
        # and the log still rebuilds each state
        for user_id in players:
            assert conn.execute(
                "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (user_id, user_id)
            ).fetchone()[0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(hs.lists(hs.tuples(hs.integers(0, 6), hs.sampled_from([c[0] for c in CONVERSATION])), min_size=1, max_size=25))
def test_any_sequence_with_repeated_ids_applies_each_id_once(conn, sends):
    """Idempotency as a property: n counts distinct ids, each repeat returns its first result."""
    user_id = new_player(conn)
    first = {}
    for i, (message_id, text) in enumerate(sends):
        result = send(conn, user_id, text, T0 + dt.timedelta(seconds=10 * i), f"id{message_id}", 10.0)
        if message_id in first:
            assert result == {**first[message_id], "duplicate": True}
        else:
            first[message_id] = result
            assert result["duplicate"] is False and result["n"] == len(first)
    assert event_count(conn, user_id) == len(first)
    assert row(conn, user_id)[1] == len(first) + 1
    assert conn.execute(
        "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (user_id, user_id)
    ).fetchone()[0]


# ---------------------------------------------------------------- the time window (issue 12, defect 1)

POISON = [
    ("3000-01-01T00:00:00Z", "ahead of the database clock"),
    ("2027-06-01T00:00:00Z", "ahead of the database clock"),
    ("294276-12-31T23:59:59Z", "ahead of the database clock"),
    ("1970-01-01T00:00:00Z", "before the database clock"),
    ("0001-01-01T00:00:00Z", "before the database clock"),
    ("4713-01-01 00:00:00+00 BC", "before the database clock"),
]


@pytest.mark.parametrize("sent_at, words", POISON, ids=[p[0] for p in POISON])
def test_a_send_time_outside_the_window_is_22023_and_writes_nothing(conn, default_time_window, sent_at, words):
    """Before issue 12, "3000-01-01" decayed the player to his prior and moved his clock to the year 3000,
    where no later message and no bulk decay ever decayed him again."""
    now = conn.execute("select now()").fetchone()[0]
    player = new_player(conn)
    send(conn, player, "hello there, how are you?", now - dt.timedelta(hours=30), "m0")
    before = row(conn, player), event_count(conn, player)
    newcomer = new_player(conn)
    for user_id in (player, newcomer):
        conn.execute("savepoint s")
        with pytest.raises(errors.InvalidParameterValue, match=words):
            conn.execute("select public.bayes_process_message(%s, 'I love you', %s::timestamptz)", (user_id, sent_at))
        conn.execute("rollback to savepoint s")
    assert (row(conn, player), event_count(conn, player)) == before
    assert row(conn, newcomer) is None and event_count(conn, newcomer) == 0
    # and the player goes on as before: a message now decays him for his 30 h away
    assert send(conn, player, "hello again", now, "m1")["decay_hours"] == pytest.approx(22.0, abs=0.01)


def test_the_window_follows_its_parameters(conn, default_time_window):
    now = conn.execute("select now()").fetchone()[0]
    user_id = new_player(conn)
    conn.execute("savepoint s")
    with pytest.raises(errors.InvalidParameterValue, match="clock_skew_s = 300 s"):
        send(conn, user_id, "hello", now + dt.timedelta(minutes=10), "a")
    conn.execute("rollback to savepoint s")
    conn.execute("update bayes.params set value = '900' where name = 'clock_skew_s'")
    assert send(conn, user_id, "hello", now + dt.timedelta(minutes=10), "a")["n"] == 1
    conn.execute("savepoint s")
    with pytest.raises(errors.InvalidParameterValue, match="max_message_age_h = 720 h"):
        send(conn, user_id, "hello", now - dt.timedelta(days=31), "b")
    conn.execute("rollback to savepoint s")
    conn.execute("update bayes.params set value = '1000' where name = 'max_message_age_h'")
    assert send(conn, user_id, "hello", now - dt.timedelta(days=31), "b")["n"] == 2


def test_a_duplicate_outside_the_window_still_gets_its_first_result(conn, default_time_window):
    """Idempotency first: a retried message id answers its first result even when its time has left the window."""
    user_id = new_player(conn)
    conn.execute("update bayes.params set value = '87600' where name = 'max_message_age_h'")
    first = send(conn, user_id, "hello there", T0 - dt.timedelta(days=30), "old")
    conn.execute("update bayes.params set value = '720' where name = 'max_message_age_h'")
    again = send(conn, user_id, "hello there", T0 - dt.timedelta(days=30), "old")
    assert again == {**first, "duplicate": True}


REPAIR_FUTURE_SQL = [
    # docs/operations.md, "Players whose clock is in the future": the same statements.
    "delete from bayes.player_event where user_id = %(u)s and occurred_at > now() + interval '5 minutes'",
    """update public.user_bayesian_state as s
       set last_message_at = e.last, decayed_at = e.last
       from (select max(occurred_at) as last from bayes.player_event where user_id = %(u)s and kind = 'message') as e
       where s.user_id = %(u)s""",
    "update public.user_bayesian_state set state = bayes.replay(user_id) where user_id = %(u)s",
]


def test_a_player_poisoned_before_the_window_is_found_and_repaired(conn, default_time_window):
    """What docs/operations.md tells an operator to do about a player that a send time from the future
    poisoned before issue 12: find him, drop the future messages from his log, set his clock back, replay."""
    now = conn.execute("select now()").fetchone()[0]
    poisoned, healthy = new_player(conn), new_player(conn)
    for user_id in (poisoned, healthy):
        converse(conn, user_id, 6, start=now - dt.timedelta(hours=100), prefix="p")
    before = row(conn, poisoned)
    conn.execute("update bayes.params set value = '31536000' where name = 'clock_skew_s'")  # as good as no window
    send(conn, poisoned, "hello from the future", dt.datetime(2027, 6, 1, tzinfo=dt.UTC), "future")
    conn.execute("update bayes.params set value = '300' where name = 'clock_skew_s'")
    found = conn.execute(
        "select user_id from public.user_bayesian_state"
        " where last_message_at > now() + interval '5 minutes' or decayed_at > now() + interval '5 minutes'"
    ).fetchall()
    assert (poisoned,) in found and (healthy,) not in found
    for sql in REPAIR_FUTURE_SQL:
        conn.execute(sql, {"u": poisoned})
    state, version, *times = row(conn, poisoned)
    assert (state, times) == (before[0], list(before[2:]))  # as if the message from the future never came
    # and the next message decays him for his real absence
    assert send(conn, poisoned, "back again", now, "later")["decay_hours"] > 0
