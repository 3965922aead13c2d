"""The writer RPCs through the gateway with supabase-py: a conversation, a
duplicate, every kind of bad input (HTTP status and SQLSTATE, never a 500,
nothing written), and the API keys that may not call them; on a single node
and through the proxy of the partitioned mode (issue 17), where the player's
rows are read on his partition."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from bayes_dev.support import MODES
from postgrest.exceptions import APIError

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("mode", MODES, indirect=True)]

CONVERSATION = [
    ("hey! how was your day?", None),
    ("I love you. What do you dream about?", 40.0),
    ("whatever, this is boring", 900.0),
    ("haha lol \U0001f602\U0001f602\U0001f602 let's do something crazy tonight", 15.0),
    ("I feel like I can be honest with you. I have a secret. " * 4, 2500.0),
]


@pytest.fixture
def signed_up(signup) -> uuid.UUID:
    """A player who has sent nothing yet (on a single node: a row of auth.users)."""
    return signup()


def row(home, user_id):
    db = home(user_id)
    return db.execute(
        "select state, version, (select count(*) from bayes.player_event where user_id = %s)"
        " from public.user_bayesian_state where user_id = %s",
        (user_id, user_id),
    ).fetchone()


# An hour ago: well inside every chapter's decay grace, so that the stack's
# pg_cron decay job never touches these players while a test runs.
START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)


def message(user_id, text, i, gap=None, **extra):
    return {
        "p_user_id": str(user_id),
        "p_message": text,
        "p_message_id": f"msg-{i}",
        "p_sent_at": (START + dt.timedelta(minutes=i)).isoformat(),
        "p_reply_gap_s": gap,
        **extra,
    }


def test_a_conversation_through_supabase_py(service, signed_up, home):
    results = []
    for i, (text, gap) in enumerate(CONVERSATION):
        res = service.rpc("bayes_process_message", message(signed_up, text, i, gap, p_topic_changed=i % 2 == 0))
        assert service.status == 200
        results.append(res.data)
    last = results[-1]
    assert [r["n"] for r in results] == [1, 2, 3, 4, 5]
    assert last["version"] == 6 and last["duplicate"] is False and last["user_id"] == str(signed_up)
    assert set(last["metrics"]) == {"intimacy", "passion", "trust", "secureness"}
    assert last["fallback"] == {"needed": True, "reason": "cold_start", "budget_left": 3}
    assert 0 <= last["boss"]["p_ready"] <= 1 and last["boss"]["threshold"] == 55
    assert last["mood"]["state"] in last["mood"]["belief"]
    assert len(last["vices"]["top"]) == 3 and isinstance(last["skip"]["skip"], bool)
    assert 1 <= last["delay_s"] <= 10
    # the other writers
    llm = service.rpc(
        "bayes_apply_llm_scores",
        {"p_user_id": str(signed_up), "p_deltas": {"intimacy": 7, "trust": -2}, "p_message_id": "msg-4"},
    )
    assert service.status == 200 and llm.data["version"] == 7
    assert llm.data["metrics"]["intimacy"]["mean"] > last["metrics"]["intimacy"]["mean"]
    out = service.rpc("bayes_record_outcome", {"p_user_id": str(signed_up), "p_decision": "reply", "p_engaged": True})
    assert service.status == 200 and out.data["version"] == 8
    chapter = service.rpc("bayes_advance_chapter", {"p_user_id": str(signed_up), "p_chapter": 2})
    assert service.status == 200 and chapter.data["chapter"] == 2 and chapter.data["boss"]["threshold"] == 60
    state = service.rpc("bayes_get_state", {"p_user_id": str(signed_up)}).data
    assert state["n"] == 5 and state["chapter"] == 2 and state["version"] == 9
    db = home(signed_up)
    assert db.execute(
        "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (signed_up, signed_up)
    ).fetchone()[0]


def test_a_duplicate_returns_the_first_result(service, signed_up, home):
    first = service.rpc("bayes_process_message", message(signed_up, "hello there, how are you?", 1, 30.0)).data
    before = row(home, signed_up)
    again = service.rpc("bayes_process_message", message(signed_up, "hello there, how are you?", 1, 30.0))
    assert service.status == 200
    assert again.data == {**first, "duplicate": True}
    assert row(home, signed_up) == before


class in_:  # noqa: N801 - reads as "in 6 minutes"
    """An instant relative to the database clock (this machine's: the stack runs here), taken when the call
    is made."""

    def __init__(self, **delta):
        self.delta = dt.timedelta(**delta)

    def __str__(self) -> str:
        return (dt.datetime.now(dt.UTC) + self.delta).isoformat()


BAD = [
    # (rpc, arguments (without p_user_id unless given), HTTP status, SQLSTATE, what)
    ("bayes_process_message", {"p_user_id": None, "p_message": "x"}, 400, "22004", "null user"),
    ("bayes_process_message", {"p_message": None}, 400, "22004", "null message"),
    ("bayes_process_message", {"p_message": "x" * 65537}, 400, "22001", "text over 64 KiB"),
    # JSON has no NaN: as a string, the gateway refuses it for a number (the database's own 22023
    # for a NaN or infinite gap is tested in tests/db/test_message_rpc.py)
    ("bayes_process_message", {"p_message": "x", "p_reply_gap_s": "NaN"}, 400, "BG002", "NaN gap"),
    ("bayes_process_message", {"p_message": "x", "p_reply_gap_s": "Infinity"}, 400, "BG002", "infinite gap"),
    ("bayes_process_message", {"p_message": "x", "p_reply_gap_s": -5}, 400, "22023", "negative gap"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": "infinity"}, 400, "22023", "infinite time"),
    # Time poisoning (issue 12): a send time far ahead would move the player's
    # clock into the future, where neither messages nor the decay reach him.
    ("bayes_process_message", {"p_message": "x", "p_sent_at": "3000-01-01T00:00:00Z"}, 400, "22023", "year 3000"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": "2027-06-01T00:00:00Z"}, 400, "22023", "next June"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": in_(minutes=6)}, 400, "22023", "6 min ahead"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": "294276-12-31T00:00:00Z"}, 400, "22023", "max time"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": "1970-01-01T00:00:00Z"}, 400, "22023", "1970"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": "0001-01-01T00:00:00Z"}, 400, "22023", "year 1"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": "4713-01-01 00:00:00+00 BC"}, 400, "22023", "4713 BC"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": in_(hours=-721)}, 400, "22023", "721 h ago"),
    ("bayes_process_message", {"p_message": "x", "p_sent_at": "-infinity"}, 400, "22023", "minus infinity"),
    ("bayes_apply_llm_scores", {"p_deltas": None}, 400, "22004", "null deltas"),
    ("bayes_apply_llm_scores", {"p_deltas": {"charm": 2}}, 400, "22023", "unknown metric"),
    ("bayes_apply_llm_scores", {"p_deltas": {"trust": 10.01}}, 400, "22023", "delta out of range"),
    ("bayes_apply_llm_scores", {"p_deltas": {"trust": "NaN"}}, 400, "22023", "delta of the wrong type"),
    ("bayes_apply_llm_scores", {"p_deltas": {"trust": [1]}}, 400, "22023", "delta not a number"),
    ("bayes_apply_llm_scores", {"p_deltas": {}}, 400, "22023", "no deltas"),
    ("bayes_record_outcome", {"p_decision": "ignore", "p_engaged": True}, 400, "22023", "unknown decision"),
    ("bayes_record_outcome", {"p_decision": "skip", "p_engaged": None}, 400, "22004", "null engaged"),
    ("bayes_advance_chapter", {"p_chapter": 7}, 400, "22023", "chapter outside 1..5"),
    ("bayes_advance_chapter", {"p_chapter": 1}, 400, "22023", "chapter backwards"),
    ("bayes_advance_chapter", {"p_chapter": None}, 400, "22004", "null chapter"),
]


@pytest.mark.parametrize("fn, args, status, sqlstate, what", BAD, ids=[b[4] for b in BAD])
def test_bad_input_is_a_4xx_with_its_sqlstate_and_writes_nothing(
    service, signed_up, home, fn, args, status, sqlstate, what
):
    service.rpc("bayes_process_message", message(signed_up, "hello there", 0))
    service.rpc("bayes_advance_chapter", {"p_user_id": str(signed_up), "p_chapter": 2})
    before = row(home, signed_up)
    args = {key: str(value) if isinstance(value, in_) else value for key, value in args.items()}
    with pytest.raises(APIError) as err:
        service.rpc(fn, {"p_user_id": str(signed_up), **args})
    assert (service.status, err.value.code) == (status, sqlstate), err.value.message
    assert row(home, signed_up) == before


def test_an_unknown_player_is_404(service, mode):
    """A single node knows its players from auth.users; a partition has none: there a player exists when he
    first writes (issue 17), and only the writers that need a state refuse an unknown one."""
    if mode == "single":
        with pytest.raises(APIError) as err:
            service.rpc("bayes_process_message", {"p_user_id": str(uuid.uuid4()), "p_message": "hi"})
        assert (service.status, err.value.code) == (404, "P0002")
    else:
        first = service.rpc("bayes_process_message", {"p_user_id": str(uuid.uuid4()), "p_message": "hi"})
        assert service.status == 200 and first.data["n"] == 1
    with pytest.raises(APIError) as err:
        service.rpc("bayes_record_outcome", {"p_user_id": str(uuid.uuid4()), "p_decision": "skip", "p_engaged": True})
    assert (service.status, err.value.code) == (404, "P0002")


WRITERS = [
    ("bayes_process_message", {"p_message": "hi"}),
    ("bayes_apply_llm_scores", {"p_deltas": {"trust": 1}}),
    ("bayes_record_outcome", {"p_decision": "skip", "p_engaged": True}),
    ("bayes_advance_chapter", {"p_chapter": 2}),
]


@pytest.mark.parametrize("fn, args", WRITERS, ids=[w[0] for w in WRITERS])
def test_anon_and_player_keys_are_refused(anon, player_client, player, home, fn, args):
    before = row(home, player)
    with pytest.raises(APIError) as err:
        anon.rpc(fn, {"p_user_id": str(player), **args})
    assert (anon.status, err.value.code) == (401, "42501")
    own = player_client(player)  # not even for himself: players never write their state
    with pytest.raises(APIError) as err:
        own.rpc(fn, {"p_user_id": str(player), **args})
    assert (own.status, err.value.code) == (403, "42501")
    assert row(home, player) == before


def test_a_send_time_at_the_edge_of_the_window_is_applied(service, signed_up):
    """Inside the window by a margin: 4 minutes ahead (skew 300 s) and 719 hours back (720 h)."""
    ahead = service.rpc("bayes_process_message", {**message(signed_up, "hello", 0), "p_sent_at": str(in_(minutes=4))})
    assert service.status == 200 and ahead.data["n"] == 1
    back = service.rpc("bayes_process_message", {**message(signed_up, "hello", 1), "p_sent_at": str(in_(hours=-719))})
    assert service.status == 200 and back.data["n"] == 2


def test_the_refusal_names_the_bound(service, signed_up):
    with pytest.raises(APIError) as err:
        service.rpc("bayes_process_message", {**message(signed_up, "x", 0), "p_sent_at": "3000-01-01T00:00:00Z"})
    assert "3000-01-01T00:00:00Z" in err.value.message and "clock_skew_s = 300 s" in err.value.message
    with pytest.raises(APIError) as err:
        service.rpc("bayes_process_message", {**message(signed_up, "x", 0), "p_sent_at": "1970-01-01T00:00:00Z"})
    assert "max_message_age_h = 720 h" in err.value.message
