"""bayes_engine.eventlog: the packed event input of the compact log (issue 15).

unpack(pack(x)) == x, exactly (floats bit for bit), for every input the
writers log, v1 events without "v" included; the compact form for what the
engine writes; the JSON form for anything else; a replay through the packed
log equals the replay of the JSON log."""

import json
import math
import struct

import pytest
from bayes_dev.states import run_conversation
from bayes_engine import encoder, eventlog, events, vocab
from bayes_engine.errors import DATA_CORRUPTED, BayesError
from bayes_engine.params import DEFAULT_PARAMS as P
from hypothesis import given, settings
from hypothesis import strategies as hs

# Every float64 but NaN (JSON has none), both zeros and the extremes included.
floats = hs.floats(allow_nan=False, allow_infinity=False)
numbers = hs.one_of(floats, hs.integers(-(2**53), 2**53))
# Seeds and decisions come from PostgreSQL text: no lone surrogates.
texts = hs.text(hs.characters(blacklist_categories=("Cs",)), max_size=40)
version = hs.sampled_from([None, 1, 2])  # None: a v1 event, which has no "v"


def with_version(v, data):
    return data if v is None else {"v": v, **data}


@hs.composite
def observations(draw):
    features = [name for name in eventlog.FEATURE_NAMES if draw(hs.booleans())]
    symbols = sorted(draw(hs.sets(hs.integers(0, len(vocab.SYMBOLS) - 1))))
    return {
        "plus": draw(hs.lists(floats, min_size=4, max_size=4)),
        "minus": draw(hs.lists(floats, min_size=4, max_size=4)),
        "features": features,
        "vices": draw(hs.lists(floats, min_size=8, max_size=8)),
        "symbols": symbols,
    }


@hs.composite
def message_inputs(draw):
    data = {
        "sent_at": draw(numbers),
        "reply_gap_s": draw(hs.none() | numbers),
        "topic_changed": draw(hs.none() | hs.booleans()),
        "seed": draw(hs.none() | texts),
        "observation": draw(observations()),
    }
    return with_version(draw(version), data)


@hs.composite
def llm_inputs(draw):
    data = {"deltas": draw(hs.dictionaries(hs.sampled_from(vocab.METRIC_NAMES), numbers, min_size=1))}
    if draw(hs.booleans()):
        data["vices"] = draw(hs.dictionaries(hs.sampled_from(vocab.VICES), numbers))
    if draw(hs.booleans()):
        data["mood"] = draw(hs.sampled_from(vocab.MOODS))
    return with_version(draw(version), data)


outcome_inputs = hs.builds(
    lambda v, d, e: with_version(v, {"decision": d, "engaged": e}),
    version,
    hs.sampled_from(["skip", "reply"]) | texts,
    hs.booleans(),
)
chapter_inputs = hs.builds(lambda v, c: with_version(v, {"chapter": c}), version, hs.integers(1, 5))

KIND_INPUTS = {
    "message": message_inputs(),
    "llm_scores": llm_inputs(),
    "outcome": outcome_inputs,
    "chapter": chapter_inputs,
}


def bits(value):
    """Floats by their bytes (0.0 and -0.0 differ), everything else as it is, recursively."""
    if isinstance(value, float):
        return ("f", struct.pack("<d", value))
    if isinstance(value, int) and not isinstance(value, bool):
        return ("f", struct.pack("<d", float(value)))  # an integer comes back as the same float
    if isinstance(value, dict):
        return {k: bits(v) for k, v in value.items()}
    if isinstance(value, list):
        return [bits(v) for v in value]
    return value


@pytest.mark.parametrize("kind", list(KIND_INPUTS))
@settings(max_examples=300, deadline=None)
@given(data=hs.data())
def test_unpack_of_pack_is_the_input_exactly(kind, data):
    value = data.draw(KIND_INPUTS[kind])
    blob = eventlog.pack(kind, value)
    assert blob[0] == eventlog.COMPACT_FORMAT, value  # everything a writer logs has the compact form
    back = eventlog.unpack(kind, blob)
    assert back == value
    assert bits(back) == bits(value)
    assert json.loads(eventlog.input_text(kind, blob)) == json.loads(json.dumps(value))


json_values = hs.recursive(
    hs.none() | hs.booleans() | floats | hs.integers() | texts,
    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(texts, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(kind=hs.sampled_from([*KIND_INPUTS, "unknown"]), value=hs.dictionaries(texts, json_values, max_size=6))
def test_anything_else_round_trips_as_json(kind, value):
    blob = eventlog.pack(kind, value)
    assert eventlog.unpack(kind, blob) == value
    assert bits(eventlog.unpack(kind, blob)) == bits(value)


@pytest.mark.parametrize(
    "kind, value",
    [
        ("message", {"sent_at": 1.0, "reply_gap_s": None, "topic_changed": None, "seed": None}),  # no observation
        ("chapter", {"chapter": 2, "extra": 1}),  # a key the format does not know
        ("chapter", {"chapter": True}),  # a bool is not a chapter
        ("llm_scores", {"deltas": {"intimacy": 2**60 + 1}}),  # not exact as a float
        ("llm_scores", {"deltas": {"charm": 1.0}}),  # not a metric
        ("outcome", {"v": 2, "decision": "skip", "engaged": 1}),  # engaged must be a bool to be compact
    ],
)
def test_what_the_compact_form_cannot_carry_is_kept_as_json(kind, value):
    blob = eventlog.pack(kind, value)
    assert blob[0] == eventlog.JSON_FORMAT
    assert eventlog.unpack(kind, blob) == value


def test_features_out_of_the_encoders_order_are_kept_as_json():
    observation = {"plus": [0.0] * 4, "minus": [0.0] * 4, "features": ["warm", "long"], "vices": [0.0] * 8}
    value = {
        "sent_at": 1.0,
        "reply_gap_s": None,
        "topic_changed": None,
        "seed": None,
        "observation": {**observation, "symbols": []},
    }
    blob = eventlog.pack("message", value)
    assert blob[0] == eventlog.JSON_FORMAT
    assert eventlog.unpack("message", blob)["observation"]["features"] == ["warm", "long"]


def test_the_feature_bits_follow_the_encoders_list():
    assert eventlog.FEATURE_NAMES == tuple(encoder.FEATURES)
    assert len(eventlog.FEATURE_NAMES) <= 16 and len(vocab.SYMBOLS) <= 16  # two u16 bitmasks


def test_the_engines_log_packs_small_and_replays_the_same_state():
    text, log, _ = run_conversation(300, seed="s1")
    packed = [(kind, eventlog.pack(kind, data)) for kind, data in log]
    assert all(blob[0] == eventlog.COMPACT_FORMAT for _, blob in packed)
    sizes = [len(blob) for kind, blob in packed if kind == "message"]
    json_sizes = [len(json.dumps(data)) for kind, data in log if kind == "message"]
    assert max(sizes) <= 120, max(sizes)  # the sparse evidence and vices: at most ~10 non-zero floats
    assert sum(sizes) * 4 < sum(json_sizes)
    unpacked = [(kind, eventlog.unpack(kind, blob)) for kind, blob in packed]
    assert unpacked == log
    assert events.replay(P, "player-1", unpacked) == text


def test_a_v1_event_stays_v1():
    _, log, _ = run_conversation(3)
    kind, data = log[0]
    v1 = {k: v for k, v in data.items() if k != "v"}
    back = eventlog.unpack(kind, eventlog.pack(kind, v1))
    assert "v" not in back and back == v1


@pytest.mark.parametrize("blob", [b"", b"\x07abc", b"\x01", b"\x01\x02\x00", b"\x00{not json"])
def test_bytes_the_engine_did_not_write_are_data_corrupted(blob):
    with pytest.raises(BayesError) as exc:
        eventlog.unpack("message", blob)
    assert exc.value.sqlstate == DATA_CORRUPTED


def test_a_zero_is_stored_by_omission_and_minus_zero_is_kept():
    obs = {"plus": [0.0, -0.0, 0.3, 0], "minus": [0.0] * 4, "features": [], "vices": [0.0] * 8, "symbols": []}
    value = {"sent_at": 1.5, "reply_gap_s": 3, "topic_changed": True, "seed": "é", "observation": obs}
    blob = eventlog.pack("message", value)
    back = eventlog.unpack("message", blob)
    assert math.copysign(1.0, back["observation"]["plus"][1]) == -1.0
    assert back == value
