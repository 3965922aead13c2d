"""The compact event log and the idempotency window (issue 15) on a real cluster.

The row the engine writes (the packed input, the facts of the result, the
message key), the first result kept in bayes.event_result for
idempotency_window_h and the answer after it (nothing written either way),
its expiry, the replay through the packed log, and the bytes an event takes
on disk (at most 300, heap, TOAST and every index)."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest
from bayes_dev.players import MESSAGES
from bayes_dev.support import new_player
from bayes_engine import codec, eventlog, model
from psycopg import errors

pytestmark = pytest.mark.db

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)
MESSAGE_SQL = "select public.bayes_process_message(%s, %s, %s, %s, %s)"
LLM_SQL = "select public.bayes_apply_llm_scores(%s, %s::jsonb, %s, %s::jsonb, %s)"


def send(conn, user_id, text, at, message_id, gap=60.0):
    return conn.execute(MESSAGE_SQL, (user_id, text, at, message_id, gap)).fetchone()[0]


def written(conn, user_id):
    """The state row, the player's events and the kept results: what a duplicate must leave as it was."""
    return conn.execute(
        "select s.state::text, s.version, s.last_message_at, s.decayed_at,"
        " (select count(*) from bayes.player_event as e where e.user_id = s.user_id),"
        " (select count(*) from bayes.event_result as r join bayes.player_event as e using (event_id)"
        "  where e.user_id = s.user_id)"
        " from public.user_bayesian_state as s where s.user_id = %s",
        (user_id,),
    ).fetchone()


def age_results(conn, user_id, hours):
    """The kept results of the player written `hours` earlier (as if that much time had passed)."""
    conn.execute(
        "update bayes.event_result as r set written_at = r.written_at - make_interval(secs => 3600 * %s)"
        " from bayes.player_event as e where e.event_id = r.event_id and e.user_id = %s",
        (hours, user_id),
    )


def test_the_row_holds_the_packed_input_and_the_facts_of_the_result(conn):
    user_id = new_player(conn)
    result = send(conn, user_id, MESSAGES[2], T0, "m-1", 40.0)
    llm = conn.execute(LLM_SQL, (user_id, '{"trust": 3}', "m-1", '{"vulnerability": 0.5}', "anxious")).fetchone()[0]
    rows = conn.execute(
        "select e.kind::text, e.message_id, e.message_key = bayes.message_key(e.user_id, e.kind, e.message_id),"
        " e.player_mode::text, e.n, e.mood::text, e.fallback_reason::text, e.fallback_needed,"
        " bayes.event_input(e.kind, e.input), e.input, r.result"
        " from bayes.player_event as e left join bayes.event_result as r using (event_id)"
        " where e.user_id = %s order by e.event_id",
        (user_id,),
    ).fetchall()
    (kind, mid, key_ok, mode, n, mood, reason, needed, data, blob, kept), llm_row = rows
    assert (kind, mid, key_ok) == ("message", "m-1", True)
    assert (mode, n, mood) == (result["mode"], result["n"], result["mood"]["state"])
    assert (reason, needed) == (result["fallback"]["reason"], result["fallback"]["needed"])
    assert kept == result  # the first result, exactly
    assert blob[0] == eventlog.COMPACT_FORMAT and len(blob) < 100
    assert data["v"] == 2 and data["sent_at"] == T0.timestamp() and data["reply_gap_s"] == 40.0
    assert data["observation"]["features"] == result["features"]
    assert eventlog.unpack("message", blob) == data
    assert llm_row[0] == "llm_scores" and llm_row[-1] == llm
    assert llm_row[-3] == {"v": 2, "deltas": {"trust": 3}, "vices": {"vulnerability": 0.5}, "mood": "anxious"}
    assert llm_row[4:8] == (None, None, None, None)  # the facts are a message's


def test_a_duplicate_inside_the_window_gets_its_first_result_and_writes_nothing(conn):
    user_id = new_player(conn)
    first = send(conn, user_id, MESSAGES[0], T0, "a")
    llm = conn.execute(LLM_SQL, (user_id, '{"intimacy": 4}', "a", None, None)).fetchone()[0]
    send(conn, user_id, MESSAGES[1], T0 + dt.timedelta(minutes=1), "b")
    before = written(conn, user_id)
    age_results(conn, user_id, 71.9)  # still inside the 72 h of the default window
    again = send(conn, user_id, "a different text", T0 + dt.timedelta(minutes=2), "a")
    assert again == {**first, "duplicate": True}
    assert conn.execute(LLM_SQL, (user_id, '{"trust": -9}', "a", None, None)).fetchone()[0] == {
        **llm,
        "duplicate": True,
    }
    assert written(conn, user_id) == before


def test_a_duplicate_after_the_window_gets_the_current_summary_and_writes_nothing(conn):
    user_id = new_player(conn)
    send(conn, user_id, MESSAGES[0], T0, "a")
    conn.execute(LLM_SQL, (user_id, '{"intimacy": 4}', "a", None, None))
    last = T0 + dt.timedelta(hours=1)
    send(conn, user_id, MESSAGES[2], last, "b")
    age_results(conn, user_id, 72.01)
    before = written(conn, user_id)
    state_text, version = before[0], before[1]
    params_row = conn.execute("select bayes.params_snapshot()::text").fetchone()[0]
    from bayes_engine.params import Params

    prm = Params.from_snapshot(params_row)
    for answer in (
        send(conn, user_id, "another text", last, "a"),
        conn.execute(LLM_SQL, (user_id, '{"trust": -9}', "a", None, None)).fetchone()[0],
    ):
        assert answer["duplicate"] is True and answer["result_expired"] is True
        assert (answer["user_id"], answer["message_id"], answer["version"]) == (str(user_id), "a", version)
        assert answer["mode"] == conn.execute("select bayes.player_mode(%s)", (user_id,)).fetchone()[0]
        # the summary of the stored state decayed up to now (independently: model.summary of model.decay)
        now = conn.execute("select extract(epoch from now())::float8").fetchone()[0]
        state = codec.decode(state_text, prm)
        model.decay(state, prm, last.timestamp(), last.timestamp(), now)
        expected = json.loads(json.dumps(model.summary(state, prm)))
        assert {k: answer[k] for k in expected} == expected
        assert answer["n"] == 2 and "features" not in answer  # not a message's result: the state's summary
    assert written(conn, user_id) == before
    # expired and deleted: the same answer
    conn.execute("select bayes.expire_event_results(now() - interval '72 hours', 1000)")
    assert written(conn, user_id)[5] == 0
    assert send(conn, user_id, "another text", last, "a")["result_expired"] is True
    assert send(conn, user_id, "another text", last, "b")["result_expired"] is True
    assert written(conn, user_id)[:5] == before[:5]


def test_the_window_is_a_parameter(conn):
    user_id = new_player(conn)
    first = send(conn, user_id, MESSAGES[0], T0, "a")
    conn.execute("update bayes.params set value = '0.5' where name = 'idempotency_window_h'")
    age_results(conn, user_id, 0.49)
    assert send(conn, user_id, "x", T0, "a") == {**first, "duplicate": True}
    age_results(conn, user_id, 0.02)
    assert send(conn, user_id, "x", T0, "a")["result_expired"] is True
    conn.execute("update bayes.params set value = '0' where name = 'idempotency_window_h'")
    with pytest.raises(errors.InvalidParameterValue, match="idempotency_window_h"):
        conn.execute("update bayes.params set value = '-1' where name = 'idempotency_window_h'")


def test_a_message_without_an_id_keeps_no_result(conn):
    user_id = new_player(conn)
    send(conn, user_id, MESSAGES[0], T0, None)
    assert written(conn, user_id)[4:] == (1, 0)
    assert conn.execute(
        "select message_key is null and message_id is null from bayes.player_event where user_id = %s", (user_id,)
    ).fetchone()[0]


def test_expiry_deletes_the_oldest_results_written_before_the_bound_in_batches(conn):
    conn.execute("delete from bayes.event_result")
    players = [new_player(conn) for _ in range(3)]
    for i in range(10):
        for p in players:
            send(conn, p, MESSAGES[i], T0 + dt.timedelta(minutes=i), f"m{i}")
    ids = [r[0] for r in conn.execute("select event_id from bayes.event_result order by event_id")]
    assert len(ids) == 30
    # the first 20 written 100 h ago, the last 10 just now
    conn.execute(
        "update bayes.event_result set written_at = now() - interval '100 hours' where event_id <= %s", (ids[19],)
    )
    bound = conn.execute("select now() - interval '72 hours'").fetchone()[0]
    expire = "select bayes.expire_event_results(%s, %s)"
    assert conn.execute(expire, (bound, 8)).fetchone()[0] == 8
    assert conn.execute(expire, (bound, 8)).fetchone()[0] == 8
    assert conn.execute(expire, (bound, 8)).fetchone()[0] == 4  # fewer than the batch: done for now
    assert conn.execute(expire, (bound, 8)).fetchone()[0] == 0
    assert [r[0] for r in conn.execute("select event_id from bayes.event_result order by event_id")] == ids[20:]
    assert (
        conn.execute("select count(*) from bayes.player_event where user_id = any(%s)", (players,)).fetchone()[0] == 30
    )  # the events stay


@pytest.mark.parametrize(
    "args, error",
    [
        ((None, 10), errors.NullValueNotAllowed),
        (("2026-01-01", None), errors.NullValueNotAllowed),
        (("2026-01-01", 0), errors.InvalidParameterValue),
    ],
)
def test_expiry_refuses_bad_arguments(conn, args, error):
    with pytest.raises(error):
        conn.execute("select bayes.expire_event_results(%s, %s)", args)


def test_expiry_and_the_log_are_the_owners(conn):
    user_id = new_player(conn)
    send(conn, user_id, MESSAGES[0], T0, "a")
    conn.execute("set local role service_role")
    for sql in (
        "select bayes.expire_event_results(now(), 10)",
        "delete from bayes.event_result",
        "insert into bayes.event_result values (1, now(), '{}')",
        "select bayes.pack_event_input('chapter', '{\"chapter\": 2}')",
    ):
        conn.execute("savepoint s")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(sql)
        conn.execute("rollback to savepoint s")
    # what it may read
    assert conn.execute("select count(*) from bayes.event_result").fetchone()[0] >= 1
    assert conn.execute("select bayes.event_input('chapter', '\\x010203'::bytea)").fetchone()[0] == {
        "v": 2,
        "chapter": 3,
    }


def test_deleting_a_state_deletes_its_events_and_their_results(conn):
    user_id = new_player(conn)
    send(conn, user_id, MESSAGES[0], T0, "a")
    conn.execute("delete from public.user_bayesian_state where user_id = %s", (user_id,))
    assert conn.execute("select count(*) from bayes.player_event where user_id = %s", (user_id,)).fetchone()[0] == 0
    assert (
        conn.execute(
            "select count(*) from bayes.event_result as r where not exists"
            " (select from bayes.player_event as e where e.event_id = r.event_id)"
        ).fetchone()[0]
        == 0
    )
    # the player starts again: his message ids are free again
    assert send(conn, user_id, MESSAGES[0], T0, "a")["duplicate"] is False


def test_bytes_the_engine_did_not_write_are_refused_by_the_reader(conn):
    with pytest.raises(errors.DataCorrupted):
        conn.execute("select bayes.event_input('message', '\\x09'::bytea)")


def test_replay_through_the_packed_log_equals_the_stored_state(conn):
    user_id = new_player(conn)
    t = T0
    for i in range(60):
        t += dt.timedelta(seconds=30 + 97 * i % 4000)
        send(conn, user_id, MESSAGES[i % len(MESSAGES)], t, f"r{i}", float(30 + 97 * i % 4000))
        if i % 5 == 2:
            conn.execute(LLM_SQL, (user_id, '{"passion": 2.5, "trust": -1}', f"r{i}", None, "playful"))
        if i % 9 == 4:
            conn.execute("select public.bayes_record_outcome(%s, 'skip', true)", (user_id,))
    conn.execute("select public.bayes_advance_chapter(%s, 2)", (user_id,))
    assert conn.execute(
        "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (user_id, user_id)
    ).fetchone()[0]


BYTES_PLAYERS = 200
BYTES_MESSAGES = 100  # 20,000 message events, the players' messages interleaved as live traffic writes them


def test_a_message_event_takes_at_most_300_bytes_on_disk(dsn):
    """pg_total_relation_size (heap, TOAST, every index) of the log over 20,000 message events written by
    bayes_process_message, each with a message id of 32 characters (a uuid's hex), in a table of their own."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("truncate bayes.player_event, bayes.event_result")
        players = [new_player(conn) for _ in range(BYTES_PLAYERS)]
        conn.execute(
            """
            do $$
            declare
                v_messages text[] := %s;
                v_players uuid[] := %s;
                v_sent timestamptz := now() - interval '2 hours';
            begin
                for k in 1..%s loop
                    for p in 1..array_length(v_players, 1) loop
                        perform public.bayes_process_message(
                            v_players[p], v_messages[1 + (k + p) %% array_length(v_messages, 1)],
                            v_sent + make_interval(secs => k * 60), md5(p || '/' || k), 30.0 + k
                        );
                    end loop;
                end loop;
            end
            $$
            """.replace("%s", "{}")
            .format(
                "array[" + ",".join("'" + m.replace("'", "''") + "'" for m in MESSAGES) + "]",
                "array[" + ",".join(f"'{p}'::uuid" for p in players) + "]",
                BYTES_MESSAGES,
            )
            .replace("%%", "%")
        )
        conn.execute("vacuum analyze bayes.player_event, bayes.event_result")
        events, total, results, kept = conn.execute(
            "select (select count(*) from bayes.player_event where kind = 'message'),"
            " pg_total_relation_size('bayes.player_event'),"
            " (select count(*) from bayes.event_result), pg_total_relation_size('bayes.event_result')"
        ).fetchone()
        assert events == results == BYTES_PLAYERS * BYTES_MESSAGES
        per_event = total / events
        print(f"\n{per_event:.1f} bytes per message event; {kept / results:.0f} bytes per kept result")
        assert per_event <= 300
        conn.execute("delete from public.user_bayesian_state where user_id = any(%s)", (players,))
