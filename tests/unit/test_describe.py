"""bayes_engine.describe: the bayes_get_state view, checked against numpy/scipy."""

import functools
import json
import math

import numpy as np
import pytest
import scipy.stats as st
from bayes_engine import codec, vocab
from bayes_engine.describe import describe_state
from bayes_engine.params import DEFAULT_PARAMS


def state_a():
    state = codec.default_state(1, DEFAULT_PARAMS)
    state["n"], state["nc"] = 42, 42
    state["m"] = {"i": [7.2, 5.1], "p": [4.4, 3.3], "t": [9.9, 2.0], "s": [3.0, 6.5]}
    state["d"] = [1.0, 4.0, 1.0, 2.5, 4.0, 1.0, 1.25, 3.0]
    state["h"] = [0.1, 0.45, 0.15, 0.1, 0.1, 0.1]
    state["k"] = [4.0, 11.0, 1]
    state["g"] = [math.log(420.0), 17.0]
    return state


def state_b():
    state = codec.default_state(4, DEFAULT_PARAMS)
    state["m"] = {"i": [41.5, 12.25], "p": [30.0, 14.0], "t": [55.1, 9.7], "s": [22.0, 3.1]}
    state["d"] = [12.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 12.0]
    state["h"] = [0.2, 0.2, 0.2, 0.1, 0.1, 0.2]
    return state


def reference(state):
    """Independent composite and sd with numpy/scipy."""
    w = np.array([0.30, 0.25, 0.25, 0.20])
    ab = np.array([state["m"][k] for k in ("i", "p", "t", "s")])
    mean = st.beta.mean(ab[:, 0], ab[:, 1])
    var = st.beta.var(ab[:, 0], ab[:, 1])
    return float(100 * w @ mean), float(np.sqrt(100**2 * (w**2) @ var))


@pytest.mark.parametrize(
    "make", [state_a, state_b] + [functools.partial(codec.default_state, c, DEFAULT_PARAMS) for c in vocab.CHAPTERS]
)
def test_composite_and_sd_against_numpy(make):
    state = make()
    view = describe_state(state, DEFAULT_PARAMS)
    composite, sd = reference(state)
    assert view["composite"] == pytest.approx(composite, rel=1e-12)
    assert view["composite_sd"] == pytest.approx(sd, rel=1e-12)
    for key, name in zip(vocab.METRIC_KEYS, vocab.METRIC_NAMES):
        a, b = state["m"][key]
        metric = view["metrics"][name]
        assert metric["alpha"] == a and metric["beta"] == b
        assert metric["mean"] == pytest.approx(st.beta.mean(a, b), rel=1e-12)
        assert metric["var"] == pytest.approx(st.beta.var(a, b), rel=1e-12)
        assert metric["ci95"] == pytest.approx(list(st.beta.interval(0.95, a, b)), rel=1e-8)
    assert view["boss"]["threshold"] == DEFAULT_PARAMS.chapter(state["c"]).boss_threshold


def test_view_fields():
    view = describe_state(state_a(), DEFAULT_PARAMS)
    assert view["schema_version"] == 2
    assert view["llm_budget"] == {"tokens_left": 3.0, "tokens": 3, "window_messages": 100}
    assert view["chapter"] == 1 and view["n"] == 42 and view["nc"] == 42
    assert list(view["metrics"]) == list(vocab.METRIC_NAMES)
    assert view["skip"] == {
        "a_skip": 4.0,
        "a_respond": 11.0,
        "consecutive_skips": 1,
        "p_skip_mean": pytest.approx(4 / 15),
    }
    assert view["timing"]["mu_log_s"] == pytest.approx(math.log(420.0))
    assert view["timing"]["tau"] == 17.0
    assert view["timing"]["typical_gap_s"] == pytest.approx(420.0)
    assert view["boss"] == {"threshold": 55.0}


def test_mood_argmax():
    view = describe_state(state_a(), DEFAULT_PARAMS)
    assert view["mood"]["state"] == "playful"
    assert list(view["mood"]["belief"]) == list(vocab.MOODS)
    assert view["mood"]["belief"]["playful"] == 0.45
    # ties go to the first mood in vocabulary order
    assert describe_state(state_b(), DEFAULT_PARAMS)["mood"]["state"] == "content"
    fresh = codec.default_state(3, DEFAULT_PARAMS)
    assert describe_state(fresh, DEFAULT_PARAMS)["mood"]["state"] == "content"


def test_top_vices_order_and_ties():
    view = describe_state(state_a(), DEFAULT_PARAMS)
    d = np.array(state_a()["d"])
    mixture = d / d.sum()
    assert view["vices"]["mixture"] == pytest.approx(dict(zip(vocab.VICES, mixture.tolist())))
    # risk_taking and emotional_intensity tie at 4.0: vocabulary order decides
    assert [name for name, _ in view["vices"]["top"]] == ["risk_taking", "emotional_intensity", "vulnerability"]
    assert [p for _, p in view["vices"]["top"]] == pytest.approx([4 / 17.75, 4 / 17.75, 3 / 17.75])
    assert view["vices"]["entropy_bits"] == pytest.approx(st.entropy(mixture, base=2), rel=1e-12)

    uniform = describe_state(codec.default_state(1, DEFAULT_PARAMS), DEFAULT_PARAMS)
    assert [name for name, _ in uniform["vices"]["top"]] == list(vocab.VICES[:3])
    assert uniform["vices"]["entropy_bits"] == pytest.approx(3.0)

    two = describe_state(state_b(), DEFAULT_PARAMS)
    assert [name for name, _ in two["vices"]["top"]] == ["intellectual_dominance", "vulnerability", "risk_taking"]


def _plain(value):
    """Only JSON-native Python types (no numpy scalars)."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return type(value) in (int, float, str, bool) or value is None


@pytest.mark.parametrize("make", [state_a, state_b])
def test_json_serialisable(make):
    view = describe_state(make(), DEFAULT_PARAMS)
    text = json.dumps(view, allow_nan=False)
    assert json.loads(text) == view
    assert _plain(view)


def test_describe_decoded_state():
    text = codec.encode(state_b())
    view = describe_state(codec.decode(text), DEFAULT_PARAMS)
    composite, _ = reference(codec.decode(text))
    assert view["composite"] == pytest.approx(composite, rel=1e-12)
