"""Issue 14 through the gateway with supabase-py: every writer's result says
the player's mode (and a move of the cohorts shows on the next call), the
LLM's vices and mood of a message are taken and logged, bad ones are a 4xx
with their SQLSTATE and write nothing, and the calls of before issue 14 work
as they did."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from bayes_dev.support import new_player
from postgrest.exceptions import APIError

pytestmark = pytest.mark.e2e

# An hour ago: inside every chapter's decay grace (the stack's pg_cron job leaves these players alone).
START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


def message(user_id, i, text="haha let's go to a bar tonight and do something crazy"):
    return {
        "p_user_id": str(user_id),
        "p_message": text,
        "p_message_id": f"msg-{i}",
        "p_sent_at": (START + dt.timedelta(minutes=i)).isoformat(),
        "p_reply_gap_s": 40.0,
    }


def written(db, user_id):
    return db.execute(
        "select state::text, version, (select count(*) from bayes.player_event where user_id = %s)"
        " from public.user_bayesian_state where user_id = %s",
        (user_id, user_id),
    ).fetchone()


def last_input(db, user_id):
    return db.execute(
        "select bayes.event_input(kind, input) from bayes.player_event where user_id = %s"
        " order by event_id desc limit 1",
        (user_id,),
    ).fetchone()[0]


@pytest.fixture
def talking(service, db):
    """A player who has sent one message (msg-0)."""
    user_id = new_player(db)
    service.rpc("bayes_process_message", message(user_id, 0))
    assert service.status == 200
    return user_id


@pytest.fixture
def rollout(db):
    """Sets bayes.rollout for one test, and puts the stack's value back afterwards."""
    saved = db.execute("select bayes_percent from bayes.rollout").fetchone()[0]

    def set_percent(percent):
        db.execute("update bayes.rollout set bayes_percent = %s", (percent,))

    yield set_percent
    set_percent(saved)


def test_every_writers_result_says_the_mode_and_a_moved_cohort_shows_on_the_next_call(service, db, rollout):
    user_id = new_player(db)
    bucket = int(hashlib.md5(f"rollout:{user_id}".encode()).hexdigest()[:8], 16) % 10_000
    for i, (percent, mode) in enumerate(((bucket / 100, "shadow"), ((bucket + 1) / 100, "bayes"))):
        rollout(percent)
        results = [
            service.rpc("bayes_process_message", message(user_id, i)).data,
            service.rpc(
                "bayes_apply_llm_scores",
                {"p_user_id": str(user_id), "p_deltas": {"trust": 2}, "p_message_id": f"msg-{i}"},
            ).data,
            service.rpc(
                "bayes_record_outcome", {"p_user_id": str(user_id), "p_decision": "reply", "p_engaged": True}
            ).data,
            service.rpc("bayes_advance_chapter", {"p_user_id": str(user_id), "p_chapter": 2 + i}).data,
        ]
        assert service.status == 200
        assert [r["mode"] for r in results] == [mode] * 4, percent
        assert all(r["user_id"] == str(user_id) for r in results)


def test_a_duplicate_keeps_the_mode_of_its_first_call(service, db, rollout):
    rollout(0)
    user_id = new_player(db)
    first = service.rpc("bayes_process_message", message(user_id, 0)).data
    assert first["mode"] == "shadow"
    rollout(100)
    again = service.rpc("bayes_process_message", message(user_id, 0)).data
    assert again == {**first, "duplicate": True}
    assert service.rpc("bayes_process_message", message(user_id, 1)).data["mode"] == "bayes"


def test_the_calls_of_before_issue_14_still_work(service, db, talking):
    three = service.rpc(
        "bayes_apply_llm_scores", {"p_user_id": str(talking), "p_deltas": {"intimacy": 4}, "p_message_id": "msg-0"}
    )
    assert service.status == 200 and three.data["version"] == 3 and three.data["duplicate"] is False
    assert last_input(db, talking) == {"v": 2, "deltas": {"intimacy": 4}}
    two = service.rpc("bayes_apply_llm_scores", {"p_user_id": str(talking), "p_deltas": {"intimacy": -4}})
    assert service.status == 200 and two.data["version"] == 4
    assert written(db, talking)[1] == 4


def test_the_llms_vices_and_mood_are_taken_and_logged(service, db, talking):
    vices = {"risk_taking": 0.75, "substances": 1, "dark_humor": 0}
    res = service.rpc(
        "bayes_apply_llm_scores",
        {
            "p_user_id": str(talking),
            "p_deltas": {"passion": 3},
            "p_message_id": "msg-0",
            "p_vices": vices,
            "p_mood": "playful",
        },
    )
    assert service.status == 200 and res.data["duplicate"] is False and res.data["mode"] in ("shadow", "bayes")
    assert last_input(db, talking) == {"v": 2, "deltas": {"passion": 3}, "vices": vices, "mood": "playful"}
    # null is "not given"
    res = service.rpc(
        "bayes_apply_llm_scores",
        {
            "p_user_id": str(talking),
            "p_deltas": {"passion": 1},
            "p_message_id": "msg-1",
            "p_vices": None,
            "p_mood": None,
        },
    )
    assert service.status == 200 and last_input(db, talking) == {"v": 2, "deltas": {"passion": 1}}
    assert db.execute(
        "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (talking, talking)
    ).fetchone()[0]


BAD = [
    # (arguments besides p_user_id and p_deltas, HTTP status, code, what)
    ({"p_message_id": "msg-0", "p_vices": [0.5]}, 400, "22023", "vices an array"),
    ({"p_message_id": "msg-0", "p_vices": "risk_taking"}, 400, "22023", "vices a string"),
    ({"p_message_id": "msg-0", "p_vices": {"gluttony": 0.5}}, 400, "22023", "unknown vice"),
    ({"p_message_id": "msg-0", "p_vices": {"risk_taking": 1.5}}, 400, "22023", "weight above 1"),
    ({"p_message_id": "msg-0", "p_vices": {"risk_taking": -0.5}}, 400, "22023", "weight below 0"),
    ({"p_message_id": "msg-0", "p_vices": {"risk_taking": "0.5"}}, 400, "22023", "weight a string"),
    ({"p_message_id": "msg-0", "p_vices": {"risk_taking": None}}, 400, "22023", "weight null"),
    ({"p_message_id": "msg-0", "p_vices": {"risk_taking": True}}, 400, "22023", "weight a boolean"),
    ({"p_message_id": "msg-0", "p_mood": "happy"}, 400, "22023", "unknown mood"),
    ({"p_message_id": "msg-0", "p_mood": ""}, 400, "22023", "empty mood"),
    (
        {"p_message_id": "msg-0", "p_vices": {"risk_taking": 0.5}, "p_mood": "bored"},
        400,
        "22023",
        "good vices, bad mood",
    ),
    # a mood must be a JSON string: the gateway refuses a number before PostgREST would cast it to text
    ({"p_message_id": "msg-0", "p_mood": 3}, 400, "BG002", "mood a number"),
    ({"p_vices": {"risk_taking": 0.5}}, 400, "22004", "vices without a message id"),
    ({"p_mood": "content"}, 400, "22004", "mood without a message id"),
    ({"p_message_id": None, "p_mood": "content"}, 400, "22004", "mood with a null message id"),
]


@pytest.mark.parametrize("args, status, code, what", BAD, ids=[b[3] for b in BAD])
def test_a_bad_judgement_is_a_4xx_with_its_sqlstate_and_writes_nothing(service, db, talking, args, status, code, what):
    before = written(db, talking)
    with pytest.raises(APIError) as err:
        service.rpc("bayes_apply_llm_scores", {"p_user_id": str(talking), "p_deltas": {"trust": 2}, **args})
    assert (service.status, err.value.code) == (status, code), err.value.message
    assert written(db, talking) == before
    # the message id is still free: the judgement, corrected, is applied once
    res = service.rpc(
        "bayes_apply_llm_scores",
        {"p_user_id": str(talking), "p_deltas": {"trust": 2}, "p_message_id": "msg-0", "p_mood": "content"},
    )
    assert service.status == 200 and res.data["duplicate"] is False and res.data["version"] == before[1] + 1
