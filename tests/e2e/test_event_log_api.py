"""The idempotency window (issue 15) through the gateway with supabase-py: a
message id and an LLM answer's id sent again within idempotency_window_h get
their first result; after it (the kept results made older in the database,
no sleep of hours) "result_expired" and the current summary; nothing is
written either way."""

from __future__ import annotations

import datetime as dt

import pytest
from bayes_dev.support import new_player

pytestmark = pytest.mark.e2e

START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


def written(db, user_id):
    return db.execute(
        "select s.state, s.version, s.last_message_at,"
        " (select count(*) from bayes.player_event as e where e.user_id = s.user_id),"
        " (select count(*) from bayes.event_result as r join bayes.player_event as e using (event_id)"
        "  where e.user_id = s.user_id)"
        " from public.user_bayesian_state as s where s.user_id = %s",
        (user_id,),
    ).fetchone()


def message(user_id, text, message_id, minutes):
    return {
        "p_user_id": str(user_id),
        "p_message": text,
        "p_message_id": message_id,
        "p_sent_at": (START + dt.timedelta(minutes=minutes)).isoformat(),
        "p_reply_gap_s": 60.0,
    }


def test_duplicates_inside_and_after_the_window_through_supabase_py(service, db):
    user_id = new_player(db)
    first = service.rpc("bayes_process_message", message(user_id, "hey! how was your day?", "w-1", 0)).data
    llm = service.rpc(
        "bayes_apply_llm_scores", {"p_user_id": str(user_id), "p_deltas": {"trust": 2}, "p_message_id": "w-1"}
    ).data
    service.rpc("bayes_process_message", message(user_id, "I love you. What do you dream about?", "w-2", 1))
    before = written(db, user_id)
    assert before[3:] == (3, 3)

    again = service.rpc("bayes_process_message", message(user_id, "something else", "w-1", 2))
    assert service.status == 200 and again.data == {**first, "duplicate": True}
    answer = service.rpc(
        "bayes_apply_llm_scores", {"p_user_id": str(user_id), "p_deltas": {"trust": -7}, "p_message_id": "w-1"}
    ).data
    assert answer == {**llm, "duplicate": True}
    assert written(db, user_id) == before

    db.execute(
        "update bayes.event_result as r set written_at = r.written_at - interval '73 hours'"
        " from bayes.player_event as e where e.event_id = r.event_id and e.user_id = %s",
        (user_id,),
    )
    expired = service.rpc("bayes_process_message", message(user_id, "something else", "w-1", 2)).data
    assert service.status == 200
    assert expired["duplicate"] is True and expired["result_expired"] is True
    assert (expired["user_id"], expired["message_id"], expired["version"]) == (str(user_id), "w-1", before[1])
    assert expired["n"] == 2 and expired["mode"] in ("bayes", "shadow")
    assert set(expired) >= {"composite", "metrics", "fallback", "boss", "chapter"}
    answer = service.rpc(
        "bayes_apply_llm_scores", {"p_user_id": str(user_id), "p_deltas": {"trust": -7}, "p_message_id": "w-1"}
    ).data
    assert answer["result_expired"] is True and answer["duplicate"] is True
    assert written(db, user_id) == before
