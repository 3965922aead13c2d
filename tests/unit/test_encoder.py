"""bayes_engine.encoder: MODEL.md section 3, checked on hand-worked messages."""

import json

import pytest
from bayes_engine import encoder
from bayes_engine.encoder import Observation, encode_message
from hypothesis import given
from hypothesis import strategies as hs

CH1 = dict(fast_s=600, slow_s=28800)  # chapter 1: quick < 300 s, slow > 23040 s
CH5 = dict(fast_s=300, slow_s=1800)  # chapter 5: quick < 150 s, slow > 1440 s


def enc(text, gap=None, topic=None, position=None, chapter=CH1):
    return encode_message(text, gap, topic, position, **chapter)


def test_hand_worked_warm_personal_question():
    # 36 characters (no length feature); gap 100 s < 0.5 * 600; first message of the day.
    # personal words: love, dream; positive: love; one "?".
    obs = enc("I love you. What do you dream about?", gap=100, position=1)
    assert obs.features == ["quick_reply", "personal_question", "warm_one", "steady"]
    assert obs.observations == 4
    # i: +0.56 (personal question); p: +0.15 (one positive word);
    # t: +0.30 (quick) +0.35 (personal question); s: +0.15 (quick) +0.30 (steady)
    assert obs.plus == pytest.approx([0.56, 0.15, 0.65, 0.45], abs=1e-12)
    assert obs.minus == [0.0, 0.0, 0.0, 0.0]
    assert obs.vices == [0.0] * 8
    # question, compliment, emotional (personal word), fast response, no emoji
    assert obs.symbols == [2, 3, 5, 7, 13]


def test_hand_worked_cold_rule_breaker_with_humor():
    text = (
        "whatever, this is boring and stupid. I think the rules are against freedom lol \U0001f602\U0001f602\U0001f602"
    )
    obs = enc(text)  # no gap: no timing evidence, no timing symbol
    # three negative words: cold (p -0.42, t -0.25); "think" is personal but there is no "?"
    assert obs.features == ["cold"]
    assert obs.plus == [0.0, 0.0, 0.0, 0.0]
    assert obs.minus == pytest.approx([0.0, 0.42, 0.25, 0.0], abs=1e-12)
    # vice 0: think (1 match) -> 0.25; vice 5: rules, against, freedom (3) -> 0.75
    assert obs.vices == [0.25, 0.0, 0.0, 0.0, 0.0, 0.75, 0.0, 0.0]
    # complaint, emotional (personal "think"), humor (lol and the emoji), emoji-heavy
    assert obs.symbols == [4, 5, 6, 12]


def test_words_match_on_word_boundaries_only():
    assert enc("the highway is really long").vices == [0.0] * 8
    high = enc("I was high, really HIGH")
    assert high.vices[2] == 0.5  # "high" twice, case-insensitive
    assert high.vices[7] == 0.0  # "really" is not "real"
    assert enc("thanks a lot").features == ["short"]  # "thanks" is not "thank"
    assert enc("a wonderful wonderful day").features == ["warm"]  # two occurrences of one word


def test_a_missing_gap_is_missing_evidence_never_fast():
    obs = enc("hello there my friend, how are you")
    assert not {"quick_reply", "slow_reply", "steady", "absent"} & set(obs.features)
    assert not {7, 8, 9} & set(obs.symbols)


@pytest.mark.parametrize(
    "length, feature",
    [(19, "short"), (20, None), (150, None), (151, "medium"), (300, "medium"), (301, "long")],
)
def test_length_features_at_their_boundaries(length, feature):
    obs = enc("x" * length)
    assert [f for f in obs.features if f in ("short", "medium", "long")] == ([feature] if feature else [])


@pytest.mark.parametrize("length, symbol", [(29, 1), (30, None), (200, None), (201, 0)])
def test_length_symbols_at_their_boundaries(length, symbol):
    obs = enc("x" * length)
    assert [s for s in obs.symbols if s in (0, 1)] == ([symbol] if symbol is not None else [])


@pytest.mark.parametrize(
    "gap, chapter, features",
    [
        (299.9, CH1, ["quick_reply", "steady"]),
        (300, CH1, ["steady"]),
        (149.9, CH5, ["quick_reply", "steady"]),
        (1440, CH5, ["steady"]),
        (1440.1, CH5, ["slow_reply", "steady"]),
        (23040.1, CH1, ["slow_reply", "steady"]),
        (86399, CH1, ["slow_reply", "steady"]),
        (86400, CH1, ["slow_reply"]),
        (172800, CH1, ["slow_reply"]),
        (172800.5, CH1, ["slow_reply", "absent"]),
    ],
)
def test_gap_features(gap, chapter, features):
    obs = enc("a neutral sentence of some length", gap=gap, position=1, chapter=chapter)
    assert obs.features == features


def test_steady_counts_the_first_three_messages_of_the_day():
    for position, steady in ((1, True), (3, True), (4, False), (None, False)):
        obs = enc("a neutral sentence of some length", gap=60, position=position)
        assert ("steady" in obs.features) == steady


@pytest.mark.parametrize("gap, symbol", [(0, 7), (119.9, 7), (120, 9), (1800, 9), (1800.1, 8)])
def test_timing_symbols(gap, symbol):
    assert [s for s in enc("neutral words here for a test", gap=gap).symbols if s in (7, 8, 9)] == [symbol]


def test_topic_symbols_only_when_reported():
    assert 10 in enc("neutral words here for a test", topic=False).symbols
    assert 11 in enc("neutral words here for a test", topic=True).symbols
    assert not {10, 11} & set(enc("neutral words here for a test").symbols)


def test_emoji_ranges():
    inside = ["\U0001f300", "\U0001faff", "\u2600", "\u27bf"]
    outside = ["\U0001f2ff", "\U0001fb00", "\u25ff", "\u27c0"]
    assert all(encoder.count_emoji(c) == 1 for c in inside)
    assert all(encoder.count_emoji(c) == 0 for c in outside)
    assert 12 in enc("neutral words " + "".join(inside[:3])).symbols
    assert 13 not in enc("neutral words " + inside[0]).symbols


def test_questions_without_personal_words():
    assert enc("where? when? neutral words here").features == ["questions"]
    assert enc("where? neutral words here to pad").features == []


def test_vice_weights_and_the_length_bonus():
    assert enc("kiss kiss").vices[3] == 0.5
    assert enc("kiss " * 5).vices[3] == 1.0
    padding = " and" * 60  # length > 200
    assert enc("kiss" + padding).vices[3] == pytest.approx(0.325)  # 1.3 * 0.25
    assert enc("kiss kiss kiss" + padding).vices[3] == pytest.approx(0.975)  # 1.3 * 0.75
    assert enc("kiss kiss kiss kiss" + padding).vices[3] == 1.0  # min(1, 1.3 * 1)


@given(
    hs.text(max_size=400),
    hs.one_of(hs.none(), hs.floats(0, 1e7)),
    hs.sampled_from([None, True, False]),
    hs.one_of(hs.none(), hs.integers(1, 50)),
)
def test_any_text_encodes_within_bounds(text, gap, topic, position):
    obs = enc(text, gap, topic, position)
    assert len(obs.plus) == len(obs.minus) == 4
    assert all(x >= 0 for x in obs.plus + obs.minus)
    assert all(0 <= v <= 1 for v in obs.vices)
    assert obs.symbols == sorted(set(obs.symbols)) and all(0 <= s < 14 for s in obs.symbols)
    assert (12 in obs.symbols) + (13 in obs.symbols) <= 1
    assert obs.observations == len(obs.features) == len(set(obs.features))
    assert encoder.Observation.from_json(obs.to_json()) == obs


def test_observation_round_trips_through_the_event_json():
    obs = Observation([0.1, 0, 0.3, 0], [0, 0.2, 0, 0], ["warm"], [0.25] + [0.0] * 7, [2, 3])
    assert Observation.from_json(json.loads(json.dumps(obs.to_json()))) == obs
