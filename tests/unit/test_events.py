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


# ---------------------------------------------------------------- the LLM's vices and mood of a message (issue 14)

JUDGEMENTS = [
    ({"risk_taking": 0.5, "dark_humor": 1, "vulnerability": 0}, "playful"),
    ({}, None),
    (None, "withdrawn"),
    ({name: 1.0 for name in vocab.VICES}, "content"),
]


@pytest.mark.parametrize("vices, mood", JUDGEMENTS)
def test_the_llms_vices_and_mood_are_logged_and_change_nothing_in_the_state(vices, mood):
    plain, judged = fresh(), fresh()
    deltas = {"intimacy": 4, "trust": -2.5}
    plain_result, plain_input = events.apply_llm_scores(plain, P, deltas)
    result, data = events.apply_llm_scores(judged, P, deltas, vices, mood)
    assert codec.encode(judged) == codec.encode(plain) and result == plain_result
    assert data == {
        **plain_input,
        **({"vices": vices} if vices is not None else {}),
        **({"mood": mood} if mood else {}),
    }
    assert plain_input == {"v": 2, "deltas": deltas}
    # and a log holding them replays to the same state
    log = [("llm_scores", json.loads(json.dumps(data)))]
    assert events.replay(P, "p", log) == events.replay(P, "p", [("llm_scores", plain_input)]) == codec.encode(judged)


BAD_JUDGEMENTS = [
    ([0.5], None, "p_vices must be a JSON object"),
    ("risk_taking", None, "p_vices must be a JSON object"),
    (0.5, None, "p_vices must be a JSON object"),
    ({"gluttony": 0.5}, None, "unknown vice 'gluttony'"),
    ({"Risk_Taking": 0.5}, None, "unknown vice 'Risk_Taking'"),
    ({"risk_taking": 1.01}, None, "p_vices.risk_taking must be a number in [0, 1]"),
    ({"risk_taking": -0.01}, None, "p_vices.risk_taking must be a number in [0, 1]"),
    ({"risk_taking": math.nan}, None, "p_vices.risk_taking must be a number in [0, 1]"),
    ({"risk_taking": math.inf}, None, "p_vices.risk_taking must be a number in [0, 1]"),
    ({"risk_taking": "0.5"}, None, "p_vices.risk_taking must be a number in [0, 1]"),
    ({"risk_taking": True}, None, "p_vices.risk_taking must be a number in [0, 1]"),
    ({"risk_taking": None}, None, "p_vices.risk_taking must be a number in [0, 1]"),
    ({"risk_taking": [0.5]}, None, "p_vices.risk_taking must be a number in [0, 1]"),
    (None, "happy", "unknown mood 'happy'"),
    (None, "Content", "unknown mood 'Content'"),
    (None, "", "unknown mood ''"),
    (None, 1, "unknown mood 1"),
    ({"substances": 0.2}, "bored", "unknown mood 'bored'"),
]


@pytest.mark.parametrize("vices, mood, words", BAD_JUDGEMENTS, ids=[b[2] for b in BAD_JUDGEMENTS])
def test_a_bad_judgement_is_22023_and_changes_nothing(vices, mood, words):
    state = fresh()
    before = codec.encode(state)
    with pytest.raises(BayesError) as err:
        events.apply_llm_scores(state, P, {"trust": 3}, vices, mood)
    assert err.value.sqlstate == "22023" and words in err.value.message, err.value.message
    assert codec.encode(state) == before
    # a logged event holding one (a corrupted log) is refused by the replay likewise
    data = {"v": 2, "deltas": {"trust": 3}, **({"vices": vices} if vices is not None else {}), "mood": mood}
    with pytest.raises(BayesError) as err:
        events.apply(fresh(), P, "p", "llm_scores", data)
    assert err.value.sqlstate == "22023"


@settings(max_examples=300, deadline=None)
@given(
    vices=hs.none()
    | hs.dictionaries(
        hs.sampled_from([*vocab.VICES, "gluttony"]),
        hs.floats(-0.5, 1.5) | hs.integers(-1, 2) | hs.booleans() | hs.none() | hs.text(max_size=3),
        max_size=9,
    ),
    mood=hs.none() | hs.sampled_from([*vocab.MOODS, "bored", ""]),
)
def test_a_judgement_is_taken_exactly_when_every_vice_is_known_with_a_weight_in_0_1_and_the_mood_known(vices, mood):
    def good_weight(x):
        return type(x) in (int, float) and 0 <= x <= 1

    good = (vices is None or all(name in vocab.VICES and good_weight(x) for name, x in vices.items())) and (
        mood is None or mood in vocab.MOODS
    )
    try:
        model.check_llm_judgement(vices, mood)
    except BayesError as err:
        assert not good and err.sqlstate == "22023"
    else:
        assert good
