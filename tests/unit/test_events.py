"""bayes_engine.events: the message, LLM score, outcome and chapter events, the
result they return, and the replay of an event log into the same state."""

import json
import math

import pytest
from bayes_dev.states import CONVERSATION, T0, fresh, run_conversation
from bayes_engine import codec, events, model, vocab
from bayes_engine.errors import BayesError
from bayes_engine.params import DEFAULT_PARAMS as P
from hypothesis import given, settings
from hypothesis import strategies as hs


def test_replay_rebuilds_the_state_exactly():
    text, log, _ = run_conversation(120, seed="s1")
    assert events.replay(P, "player-1", log) == text
    _, _, last_s1 = run_conversation(5, seed="s1")
    _, _, again = run_conversation(5, seed="s1")
    _, _, last_s2 = run_conversation(5, seed="s2")
    assert (again["skip"], again["delay_s"]) == (last_s1["skip"], last_s1["delay_s"])
    assert (last_s2["skip"], last_s2["delay_s"]) != (last_s1["skip"], last_s1["delay_s"])  # the session seed counts


def test_state_stays_within_512_bytes_for_1000_messages():
    text, _, result = run_conversation(1000)
    assert len(text.encode()) <= 512
    s = codec.decode(text)
    assert s["n"] == 1000
    assert math.fsum(s["h"]) == pytest.approx(1.0, abs=1e-9)


def test_the_result_carries_the_contract_keys():
    _, _, result = run_conversation(12)
    for key in (
        "n",
        "chapter",
        "composite",
        "composite_sd",
        "metrics",
        "vices",
        "mood",
        "skip",
        "delay_s",
        "observations",
        "fallback",
        "boss",
    ):
        assert key in result
    assert set(result["metrics"]) == set(vocab.METRIC_NAMES)
    assert set(result["metrics"]["trust"]) == {"mean", "var"}
    assert len(result["vices"]["top"]) == 3
    assert set(result["skip"]) == {"skip", "p"}
    assert set(result["fallback"]) == {"needed", "reason", "budget_left"}
    assert result["fallback"]["reason"] in model.FALLBACK_REASONS
    assert {"threshold", "p_ready", "ready"} <= set(result["boss"])


TEXTS = [body for body, _ in CONVERSATION] + ["", "?", "kiss kiss kiss " * 30, "\U0001f602" * 5]
EVENT = hs.one_of(
    hs.tuples(
        hs.just("message"),
        hs.sampled_from(TEXTS),
        hs.one_of(hs.none(), hs.floats(0, 4e5)),
        hs.sampled_from([None, True, False]),
    ),
    hs.tuples(
        hs.just("llm_scores"), hs.dictionaries(hs.sampled_from(vocab.METRIC_NAMES), hs.floats(-10, 10), min_size=1)
    ),
    hs.tuples(hs.just("outcome"), hs.sampled_from(model.DECISIONS), hs.booleans()),
    hs.tuples(hs.just("chapter"), hs.integers(1, 5)),
)


@settings(max_examples=60, deadline=None)
@given(hs.lists(EVENT, max_size=60), hs.one_of(hs.none(), hs.text(max_size=8)))
def test_replay_of_any_history_equals_the_state_and_invariants_hold(history, seed):
    text = codec.encode(fresh(1))
    last = decayed_at = None
    t = T0
    log = []
    for event in history:
        state = codec.decode(text)
        kind = event[0]
        if kind == "message":
            _, body, gap, topic = event
            t += gap if gap is not None else 60.0
            message = model.Message(body, t, gap, topic, seed)
            result, data = events.apply_message(state, P, "p", message, model.RowTimes(last, decayed_at))
            last = decayed_at = t
            assert result["observations"] == len(result["features"])
        elif kind == "llm_scores":
            data = events.apply_llm_scores(state, P, event[1])[1]
        elif kind == "outcome":
            data = events.apply_outcome(state, P, event[1], event[2])[1]
        else:
            if event[1] < state["c"]:
                continue
            data = events.apply_chapter(state, P, event[1])[1]
        log.append((kind, json.loads(json.dumps(data))))
        text = codec.encode(state)
        s = codec.decode(text)
        assert math.fsum(s["h"]) == pytest.approx(1.0, abs=1e-9)
        assert all(a > 0 and b > 0 for a, b in s["m"].values())
        assert all(d > 0 for d in s["d"]) and s["k"][0] > 0 and s["k"][1] > 0 and s["k"][2] <= 2
        assert len(text.encode()) <= 512
    assert events.replay(P, "p", log) == text


# ---------------------------------------------------------------- the time window of a message (issue 12, defect 1)

NOW = 1_790_000_000.0  # the database clock of these cases (2026-09-21)


def message_input(sent_at, received_at=NOW):
    return {
        "text": "hello there",
        "sent_at": sent_at,
        "reply_gap_s": None,
        "topic_changed": None,
        "seed": None,
        "received_at": received_at,
    }


@settings(max_examples=300, deadline=None)
@given(
    offset=hs.one_of(
        hs.floats(min_value=-1e12, max_value=1e12, allow_nan=False),
        hs.sampled_from([300.0, 300.0001, -720 * 3600.0, -720 * 3600.0 - 0.001, 0.0]),
    )
)
def test_a_message_is_applied_only_inside_its_time_window(offset):
    state = fresh()
    before = codec.encode(state)
    sent_at = NOW + offset
    inside = -3600.0 * P.g["max_message_age_h"] <= sent_at - NOW <= P.g["clock_skew_s"]
    if inside:
        events.apply(state, P, "u1", "message", message_input(sent_at))
        assert state["n"] == 1
        return
    with pytest.raises(BayesError) as exc:
        events.apply(state, P, "u1", "message", message_input(sent_at))
    assert exc.value.sqlstate == "22023"
    assert ("clock_skew_s" if offset > 0 else "max_message_age_h") in exc.value.message
    assert codec.encode(state) == before  # nothing changed


@pytest.mark.parametrize(
    "sent_at, words",
    [
        (32_503_680_000.0, ["3000-01-01T00:00:00Z", "ahead of the database clock", "clock_skew_s = 300 s"]),
        (0.0, ["1970-01-01T00:00:00Z", "before the database clock", "max_message_age_h = 720 h"]),
        (-62_135_596_800.0, ["0001-01-01T00:00:00Z", "max_message_age_h"]),
        (-210_866_803_200.0, ["epoch second -210866803200", "max_message_age_h"]),  # 4713 BC: no datetime for it
        (1e300, ["ahead of the database clock"]),
    ],
)
def test_the_refusal_says_which_bound(sent_at, words):
    with pytest.raises(BayesError) as exc:
        events.apply(fresh(), P, "u1", "message", message_input(sent_at))
    for word in words:
        assert word in exc.value.message, exc.value.message


def test_replay_applies_logged_messages_whatever_their_age():
    """The event log holds no received_at: a logged message is never refused again (a replay years later)."""
    state = fresh()
    logged = {k: v for k, v in message_input(0.0).items() if k != "received_at"}
    events.apply(state, P, "u1", "message", logged)
    assert state["n"] == 1
