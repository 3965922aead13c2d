"""bayes_engine.codec: defaults, validation, upgrades, compact JSON."""

import copy
import json
import math
from decimal import Decimal

import pytest
from bayes_engine import SCHEMA_VERSION, codec, vocab
from bayes_engine.errors import BayesError
from bayes_engine.params import DEFAULT_PARAMS, DEFAULT_SNAPSHOT, Params
from hypothesis import given, settings
from hypothesis import strategies as hs

FLOAT_REL = 5e-6  # 6 significant digits


# ---------------------------------------------------------------- helpers


def assert_close_state(got, want):
    """got == want up to the documented rounding of encode."""
    assert list(got) == [k for k in codec.KEY_ORDER if k in want]
    for key in ("v", "c", "n", "nc"):
        assert got[key] == want[key] and type(got[key]) is int
    for block in ("m", "mp"):
        assert list(got[block]) == list(vocab.METRIC_KEYS)
        for key in vocab.METRIC_KEYS:
            assert got[block][key] == pytest.approx(want[block][key], rel=FLOAT_REL)
    assert got["d"] == pytest.approx(want["d"], rel=FLOAT_REL)
    total = math.fsum(want["h"])
    assert got["h"] == pytest.approx([x / total for x in want["h"]], abs=1.01e-6)
    assert got["k"][:2] == pytest.approx(want["k"][:2], rel=FLOAT_REL)
    assert got["k"][2] == want["k"][2] and type(got["k"][2]) is int
    assert got["g"] == pytest.approx(want["g"], rel=FLOAT_REL)
    for got_x, want_x in zip(got["b"][:4], want["b"][:4]):
        assert got_x == pytest.approx(want_x, rel=FLOAT_REL, abs=1e-6)
    assert abs(got["b"][4] - want["b"][4]) <= 0.5
    assert got["dd"] == want["dd"]
    for key in ("m", "mp"):
        for pair in got[key].values():
            assert all(type(x) is float for x in pair)
    for key in ("d", "h", "g", "b"):
        assert all(type(x) is float for x in got[key])


def corrupt(state, path_words, sqlstate="XX001"):
    """decode(state) and decode(text) raise BayesError naming the path."""
    for data in (state, json.dumps(state)):
        with pytest.raises(BayesError) as exc:
            codec.decode(data)
        assert exc.value.sqlstate == sqlstate, exc.value.message
        for word in path_words:
            assert word in exc.value.message, exc.value.message
    return exc.value


def fresh(chapter=1):
    return codec.default_state(chapter, DEFAULT_PARAMS)


# ---------------------------------------------------------------- defaults


@pytest.mark.parametrize("chapter", vocab.CHAPTERS)
def test_default_state_validates_and_round_trips(chapter):
    state = fresh(chapter)
    assert codec.validate(state) == state
    assert state["v"] == SCHEMA_VERSION == 2
    assert state["lb"] == DEFAULT_SNAPSHOT["global"]["llm_budget_tokens"] == 3
    assert state["c"] == chapter
    assert state["m"] == state["mp"]
    assert state["m"] == {k: list(v) for k, v in DEFAULT_PARAMS.metric_prior(chapter).items()}
    cp = DEFAULT_PARAMS.chapter(chapter)
    assert state["k"] == [cp.skip_prior_skip, cp.skip_prior_respond, 0]
    assert state["g"] == [math.log(cp.reply_baseline_s), 1.0]
    assert state["d"] == [1.0] * 8
    assert state["h"] == list(DEFAULT_SNAPSHOT["global"]["mood_start_belief"])
    assert state["b"] == [0, 0, 0, 0, 0] and state["dd"] == [0, 0]
    text = codec.encode(state)
    assert len(text.encode()) <= codec.MAX_BYTES
    assert_close_state(codec.decode(text), state)
    assert codec.encode(codec.decode(text)) == text


def test_default_state_unknown_chapter():
    with pytest.raises(BayesError) as exc:
        codec.default_state(6, DEFAULT_PARAMS)
    assert exc.value.sqlstate == "22023"


def test_encode_format():
    text = codec.encode(fresh(1))
    assert " " not in text
    assert text.startswith('{"v":2,"c":1,"n":0,"nc":0,"m":{"i":[1.5,6],"p":[3,3],"t":[2,5],"s":[2,3]},')
    assert '"g":[5.70378,1]' in text
    assert list(json.loads(text)) == ["v", "c", "n", "nc", "m", "mp", "d", "h", "k", "g", "b", "dd", "lb"]
    assert text.endswith(',"dd":[0,0],"lb":3}')


def test_encode_key_order_with_hmm_matrices():
    state = fresh(2)
    state = {
        "B": [list(r) for r in DEFAULT_PARAMS.g["mood_emission"]],
        "A": [list(r) for r in DEFAULT_PARAMS.g["mood_transition"]],
        **state,
    }
    text = codec.encode(state)
    assert list(json.loads(text))[-2:] == ["A", "B"]
    assert len(text.encode()) <= codec.MAX_BYTES_WITH_HMM
    back = codec.decode(text)
    assert back["A"] == state["A"]  # multiples of 1e-6 survive exactly
    assert back["B"] == state["B"]


def test_encode_rounding_rules():
    state = fresh(3)
    state["m"]["i"] = [12.3456789, 1e-5]
    state["b"] = [4.123456789, 1e-9, 0.0, 2.0, 1800000000.6]
    state["h"] = [0.5 - 2e-7, 0.5 - 2e-7, 1e-7, 1e-7, 1e-7, 1e-7]
    state["g"] = [5.0, 1000001.0]
    text = codec.encode(state)
    assert '"i":[12.3457,1e-5]' in text
    assert '"b":[4.12346,0,0,2,1800000001]' in text
    assert '"g":[5,1e6]' in text
    back = codec.decode(text)
    assert math.fsum(back["h"]) == pytest.approx(1.0, abs=1e-12)
    assert back["h"][:2] == [0.5, 0.5]


def test_decode_accepts_dict_with_decimals():
    """jsonb_plpython3u hands numbers over as Decimal."""
    parsed = json.loads(codec.encode(fresh(4)), parse_float=Decimal, parse_int=Decimal)
    back = codec.decode(parsed)
    assert_close_state(back, fresh(4))


def test_decode_does_not_mutate_input():
    state = fresh(1)
    snapshot = copy.deepcopy(state)
    codec.decode(state)
    assert state == snapshot


# ---------------------------------------------------------------- hypothesis

positive = hs.floats(min_value=0.05, max_value=60.0)
pair = hs.tuples(positive, positive).map(list)


@hs.composite
def valid_states(draw, with_hmm=False):
    n = draw(hs.integers(0, 10**6))
    raw_h = draw(hs.lists(hs.floats(0.0, 1.0), min_size=6, max_size=6).filter(lambda h: sum(h) > 1e-3))
    state = {
        "v": 2,
        "c": draw(hs.sampled_from(vocab.CHAPTERS)),
        "n": n,
        "nc": draw(hs.integers(0, n)),
        "m": {k: draw(pair) for k in vocab.METRIC_KEYS},
        "mp": {k: draw(pair) for k in vocab.METRIC_KEYS},
        "d": draw(hs.lists(hs.floats(1.0, 1000.0), min_size=8, max_size=8)),
        "h": [x / math.fsum(raw_h) for x in raw_h],
        "k": [draw(hs.floats(0.05, 1000.0)), draw(hs.floats(0.05, 1000.0)), draw(hs.integers(0, 2))],
        "g": [draw(hs.floats(-1.0, 12.0)), draw(hs.floats(0.5, 1e6))],
        "b": draw(hs.lists(hs.floats(0.0, 5.0), min_size=4, max_size=4))
        + [draw(hs.one_of(hs.integers(0, 2 * 10**9), hs.floats(0.0, 2e9)))],
        "dd": [draw(hs.integers(0, 40000)), draw(hs.integers(0, 10**6))],
        "lb": draw(hs.one_of(hs.floats(0.0, 3.0), hs.integers(0, 3))),  # the budgets a game would set
    }
    if with_hmm:
        rows = draw(hs.lists(hs.lists(hs.floats(0.001, 1.0), min_size=6, max_size=6), min_size=6, max_size=6))
        state["A"] = [[x / math.fsum(r) for x in r] for r in rows]
        state["B"] = draw(hs.lists(hs.lists(hs.floats(0.001, 1.0), min_size=14, max_size=14), min_size=6, max_size=6))
    return state


@settings(max_examples=400, deadline=None)
@given(state=valid_states())
def test_valid_states_round_trip_and_fit(state):
    assert codec.validate(state)
    text = codec.encode(state)
    assert len(text.encode("utf-8")) <= codec.MAX_BYTES, text
    back = codec.decode(text)
    assert_close_state(back, state)
    assert abs(math.fsum(back["h"]) - 1.0) <= 1e-9
    assert codec.validate(back) == back
    assert codec.encode(back) == text  # idempotent


@settings(max_examples=100, deadline=None)
@given(state=valid_states(with_hmm=True))
def test_valid_states_with_hmm_round_trip_and_fit(state):
    text = codec.encode(state)
    assert len(text.encode("utf-8")) <= codec.MAX_BYTES_WITH_HMM
    back = codec.decode(text)
    for r in range(6):
        assert math.fsum(back["A"][r]) == pytest.approx(1.0, abs=1e-9)
        assert back["A"][r] == pytest.approx(state["A"][r], abs=1.01e-6)
        assert back["B"][r] == pytest.approx(state["B"][r], rel=FLOAT_REL)
    assert codec.encode(back) == text


def test_realistic_large_state_fits():
    state = {
        "v": 2,
        "c": 5,
        "n": 10**6,
        "nc": 999_999,
        "m": {k: [59.876543, 0.0612345] for k in vocab.METRIC_KEYS},
        "mp": {k: [0.0612345, 59.876543] for k in vocab.METRIC_KEYS},
        "d": [999.87654321] * 8,
        "h": [0.1234567, 0.0001234, 0.2345678, 0.3456789, 0.1111111, 0.1850621],
        "k": [0.5123456, 987.654321, 2],
        "g": [-0.0512345, 987654.321],
        "b": [4.9876543, 0.00123456, 3.3333333, 1.23456e-5, 1_799_999_999.75],
        "dd": [20_833, 10**6],
        "lb": 2.999999,
    }
    state["h"] = [x / math.fsum(state["h"]) for x in state["h"]]
    text = codec.encode(state)
    assert len(text.encode("utf-8")) <= codec.MAX_BYTES, len(text)
    assert_close_state(codec.decode(text), state)


# ---------------------------------------------------------------- corruption


def mutated(mutate):
    state = fresh(2)
    mutate(state)
    return state


def put(path, value):
    """A mutation setting state[path...] = value."""

    def mutate(state):
        target = state
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def drop(key):
    return lambda state: state.pop(key)


CORRUPTIONS = [
    # (mutation, words the message must contain)
    (drop("m"), ["m", "missing"]),
    (drop("dd"), ["dd", "missing"]),
    (drop("h"), ["h", "missing"]),
    (put(["zz"], 1), ["zz", "not a key"]),
    (put(["c"], True), ["c", "integer", "bool"]),
    (put(["c"], 0), ["c", "1..5"]),
    (put(["c"], 6), ["c", "1..5"]),
    (put(["c"], "2"), ["c", "integer"]),
    (put(["n"], -1), ["n", ">= 0"]),
    (put(["n"], 1.5), ["n", "integer"]),
    (put(["n"], 3.0), ["n", "integer"]),
    (put(["nc"], 5), ["nc", "<= n"]),
    (put(["nc"], None), ["nc", "integer"]),
    (put(["m"], []), ["m", "object"]),
    (put(["m", "i"], [1.0]), ["m.i", "2 entries"]),
    (put(["m", "i"], [-1.0, 2.0]), ["m.i[0] (alpha)", ">= 1e-12", "-1.0"]),
    (put(["m", "t"], [1.0, 0.0]), ["m.t[1] (beta)", ">= 1e-12"]),
    (put(["mp", "s"], [math.nan, 2.0]), ["mp.s[0]", "finite"]),
    (put(["m", "p"], [True, 2.0]), ["m.p[0]", "number", "bool"]),
    (put(["m", "p"], ["1", 2.0]), ["m.p[0]", "number"]),
    (put(["m", "x"], [1.0, 2.0]), ["m.x", "not a metric"]),
    (lambda s: s["mp"].pop("i"), ["mp.i", "missing"]),
    (put(["d", 3], 0.0), ["d[3]", ">= 1e-12"]),
    (put(["d", 7], math.inf), ["d[7]", "finite"]),
    (put(["d"], [1.0] * 7), ["d", "8 entries"]),
    (put(["d"], {"a": 1}), ["d", "array"]),
    (put(["h", 2], -0.1), ["h[2]", ">= 0"]),
    (put(["h"], [0.5, 0.3, 0.1, 0.0, 0.0, 0.0]), ["h", "sum to 1"]),
    (put(["h"], [0.5, 0.5]), ["h", "6 entries"]),
    (put(["k", 0], 0.0), ["k[0] (a_skip)", ">= 1e-12"]),
    (put(["k", 1], -2.0), ["k[1] (a_respond)", ">= 1e-12"]),
    (put(["k", 2], 1.5), ["k[2] (consecutive_skips)", "integer"]),
    (put(["k", 2], -1), ["k[2]", ">= 0"]),
    (put(["g", 0], math.nan), ["g[0] (mu)", "finite"]),
    (put(["g", 1], 0.0), ["g[1] (tau)", ">= 1e-12"]),
    # Schema-valid extremes that no state the engine writes ever reaches (issue 12, defect 6).
    (put(["m", "i"], [1e-300, 2.0]), ["m.i[0] (alpha)", ">= 1e-12", "1e-300"]),
    (put(["mp", "p"], [3.0, 1e16]), ["mp.p[1] (beta)", "<= 1e15"]),
    (put(["n"], 10**30), ["n", "<= 1000000000000000"]),
    (put(["nc"], 10**16), ["nc", "<= 1000000000000000"]),
    (put(["d", 0], 1e300), ["d[0]", "<= 1e15"]),
    (put(["k", 2], 10**18), ["k[2]", "<= 1000000000000000"]),
    (put(["g", 0], -1e4), ["g[0] (mu)", ">= -1000"]),
    (put(["g", 1], 1e20), ["g[1] (tau)", "<= 1e15"]),
    (put(["b", 0], 1e16), ["b[0] (spent)", "<= 1e15"]),
    (put(["b", 4], 1e300), ["b[4] (epoch second)", "<= 7258118400"]),
    (put(["b", 4], 10**400), ["b[4] (epoch second)", "finite"]),
    (put(["dd", 0], 10**6), ["dd[0] (day)", "<= 84006"]),
    (put(["b"], [0, 0, 0, 0]), ["b", "5 entries"]),
    (put(["b", 1], -0.5), ["b[1] (spent)", ">= 0"]),
    (put(["b", 4], -1), ["b[4] (epoch second)", ">= 0"]),
    (put(["dd", 0], 1.5), ["dd[0] (day)", "integer"]),
    (put(["dd", 1], -3), ["dd[1] (count)", ">= 0"]),
    (put(["dd"], [1, 2, 3]), ["dd", "2 entries"]),
    (put(["A"], [[1, 0, 0, 0, 0, 0]] * 5), ["A", "6 entries"]),
    (put(["A"], [[1, 0, 0, 0, 0, 0]] * 5 + [[0.5, 0.6, 0, 0, 0, 0]]), ["A[5]", "sum to 1"]),
    (put(["A"], [[1.2, -0.2, 0, 0, 0, 0]] * 6), ["A[0][1]", ">= 0"]),
    (put(["B"], [[0.1] * 14] * 3 + [[0.0] * 14] + [[0.1] * 14] * 2), ["B[3]", "positive sum"]),
    (put(["B"], [[0.1] * 14] * 2 + [[0.1] * 13] + [[0.1] * 14] * 3), ["B[2]", "14 entries"]),
    # numbers JSON holds and a float or SQL's bigint does not (issue 12: they raised OverflowError, 38000)
    (put(["d", 2], 10**400), ["d[2]", "finite", "(int)"]),
    (put(["g", 0], -(10**400)), ["g[0] (mu)", "finite"]),
    (put(["m", "s"], [10**309, 1.0]), ["m.s[0] (alpha)", "finite"]),
    (put(["n"], 10**400), ["n", "<= 1000000000000000", "a number of 401 digits"]),
    (put(["dd", 0], 2**63), ["dd[0] (day)", "<= 84006", "9223372036854775808"]),
    (put(["k", 2], 2**70), ["k[2] (consecutive_skips)", "<= 1000000000000000"]),
]


@pytest.mark.parametrize("mutate, words", CORRUPTIONS)
def test_corruption_raises_xx001_naming_path(mutate, words):
    error = corrupt(mutated(mutate), words)
    assert error.message.startswith("stored state is corrupt: ")


@pytest.mark.parametrize("mutate, words", CORRUPTIONS[:12])
def test_encode_refuses_corrupt_states(mutate, words):
    with pytest.raises(BayesError) as exc:
        codec.encode(mutated(mutate))
    assert exc.value.sqlstate == "XX001"
    assert exc.value.message.startswith("state to store is corrupt: ")


def test_validate_names_path_in_example_message():
    with pytest.raises(BayesError) as exc:
        codec.validate(mutated(put(["m", "i"], [-1.0, 6.0])))
    assert exc.value.message == "stored state is corrupt: m.i[0] (alpha) must be >= 1e-12, got -1.0"


@pytest.mark.parametrize("text", ["", "{", "not json", '{"v":1,', "[1,2"])
def test_invalid_json_text(text):
    with pytest.raises(BayesError) as exc:
        codec.decode(text)
    assert exc.value.sqlstate == "XX001"
    assert "JSON" in exc.value.message


@pytest.mark.parametrize("data", ["[]", "null", "42", '"text"', [], None])
def test_non_object(data):
    with pytest.raises(BayesError) as exc:
        codec.decode(data)
    assert exc.value.sqlstate == "XX001"


def test_json_nested_deeper_than_python_reads_is_corrupt():
    """(issue 12: json.loads raised RecursionError, 38000 through PL/Python)."""
    text = codec.encode(fresh(1))[:-1] + ',"zz":' + "[" * 5000 + "]" * 5000 + "}"
    with pytest.raises(BayesError) as exc:
        codec.decode(text)
    assert (exc.value.sqlstate, exc.value.message) == ("XX001", "stored state is corrupt: nested too deeply")


def test_a_number_of_more_digits_than_python_converts_is_corrupt():
    text = codec.encode(fresh(1)).replace('"d":[1,', '"d":[' + "7" * 5000 + ",", 1)
    with pytest.raises(BayesError) as exc:
        codec.decode(text)
    assert exc.value.sqlstate == "XX001" and "not valid JSON" in exc.value.message


JSON_VALUES = hs.recursive(
    hs.none()
    | hs.booleans()
    | hs.integers()
    | hs.sampled_from([10**400, -(10**400), 2**63, 2**63 - 1])
    | hs.floats()
    | hs.text(max_size=4),
    lambda inner: hs.lists(inner, max_size=9) | hs.dictionaries(hs.sampled_from(codec.KEY_ORDER + ("zz",)), inner),
    max_leaves=30,
)


@settings(max_examples=500, deadline=None)
@given(
    hs.one_of(
        JSON_VALUES,
        hs.builds(lambda key, value: {**fresh(2), key: value}, hs.sampled_from(codec.KEY_ORDER), JSON_VALUES),
    )
)
def test_decode_refuses_anything_with_a_bayes_error_only(data):
    """Whatever the JSON, decode returns a state or raises BayesError (XX001 or 0A000): never another exception."""
    for value in (data, json.dumps(data)):
        try:
            codec.decode(value)
        except BayesError as err:
            assert err.sqlstate in ("XX001", "0A000")


def test_nan_in_json_text():
    text = codec.encode(fresh(1)).replace('"g":[5.70378,1]', '"g":[NaN,1]')
    with pytest.raises(BayesError) as exc:
        codec.decode(text)
    assert exc.value.sqlstate == "XX001" and "g[0]" in exc.value.message


# ---------------------------------------------------------------- versions


def test_newer_schema_is_not_supported():
    error = corrupt(mutated(put(["v"], 3)), ["v=3", "newer than this code (v2)", "deploy"], sqlstate="0A000")
    assert error.message == "stored state has schema v=3, newer than this code (v2): deploy the newer code"


@pytest.mark.parametrize("v", [0, -3])
def test_old_schema_without_upgrade_is_corrupt(v):
    corrupt(mutated(put(["v"], v)), ["v", "no upgrade"])


@pytest.mark.parametrize("v", [None, "1", True, 1.0])
def test_bad_version_is_corrupt(v):
    corrupt(mutated(put(["v"], v)), ["v", "integer"])


def test_missing_version_is_corrupt():
    corrupt(mutated(drop("v")), ["v", "missing"])


def test_validate_rejects_other_versions():
    with pytest.raises(BayesError) as exc:
        codec.validate(mutated(put(["v"], 1)))
    assert exc.value.sqlstate == "XX001" and "v must be 2" in exc.value.message


def _v1_state(chapter=3):
    """A state as the v1 engine stored it: schema 1, no lb."""
    state = fresh(chapter)
    del state["lb"]
    state["v"] = 1
    return state


@pytest.mark.parametrize("tokens", [3, 0, 0.5, 7.25])
def test_a_v1_state_is_upgraded_on_read_with_a_full_budget(tokens):
    snapshot = copy.deepcopy(DEFAULT_SNAPSHOT)
    snapshot["global"]["llm_budget_tokens"] = tokens
    params = Params.from_snapshot(snapshot)
    old = _v1_state()
    for data in (old, json.dumps(old)):
        back = codec.decode(data, params)
        assert back["v"] == 2 and back["lb"] == tokens
        assert {k: v for k, v in back.items() if k not in ("v", "lb")} == {k: v for k, v in old.items() if k != "v"}
        assert codec.validate(back) == back
    v2_text = codec.encode(fresh(3))
    v1_text = v2_text.replace('"v":2', '"v":1').replace(',"lb":3}', "}")
    assert v1_text != v2_text
    assert codec.decode(v1_text, params) == {**codec.decode(v2_text), "lb": tokens}
    assert old["v"] == 1 and "lb" not in old  # the caller's dict is untouched
    # Without parameters (a check of validity only), the default budget.
    assert codec.decode(old)["lb"] == 3


def test_a_v1_state_with_an_lb_key_is_corrupt():
    state = _v1_state()
    state["lb"] = 2
    corrupt(state, ["lb", "not a key of schema v1"])


def _v0_to_v1(state, params):
    """A hypothetical v0 schema that had no day counter and called the chapter "chapter"."""
    state["c"] = state.pop("chapter")
    state["dd"] = [0, 0]
    state["v"] = 1
    return state


def _v0_state():
    state = _v1_state()
    state["chapter"] = state.pop("c")
    del state["dd"]
    state["v"] = 0
    return state


def test_upgrade_steps_chain_up_to_the_current_schema(monkeypatch):
    monkeypatch.setitem(codec.UPGRADES, 0, _v0_to_v1)
    old = _v0_state()
    for data in (old, json.dumps(old)):
        back = codec.decode(data)
        assert back["v"] == 2 and back["c"] == 3 and back["dd"] == [0, 0] and back["lb"] == 3
        assert codec.validate(back) == back
    assert old["v"] == 0 and "chapter" in old  # the caller's dict is untouched


def test_upgrade_chain(monkeypatch):
    def minus1_to_0(state, params):
        state["v"] = 0
        state["n"] = state.pop("count")
        return state

    monkeypatch.setitem(codec.UPGRADES, 0, _v0_to_v1)
    monkeypatch.setitem(codec.UPGRADES, -1, minus1_to_0)
    old = _v0_state()
    old["count"] = old.pop("n")
    old["v"] = -1
    assert codec.decode(old)["n"] == 0


def test_upgrade_step_must_advance_version(monkeypatch):
    monkeypatch.setitem(codec.UPGRADES, 0, lambda state, params: state)
    corrupt(_v0_state(), ["upgrade step from v=0", "expected 1", "v was not advanced"])


def test_the_upgrades_registry_holds_v1_to_v2():
    assert list(codec.UPGRADES) == [1]


# ---------------------------------------------------------------- the LLM budget as stored


@settings(max_examples=300, deadline=None)
@given(tokens=hs.one_of(hs.floats(0.0, 3.0), hs.floats(0.0, codec.MAX_LLM_TOKENS)))
def test_lb_is_stored_in_whole_micro_tokens_rounded_down(tokens):
    state = fresh(1)
    state["lb"] = tokens
    text = codec.encode(state)
    stored = json.loads(text)["lb"]
    units = Decimal(str(stored)) * 1_000_000
    assert units == units.to_integral_value()  # whole micro-tokens
    assert stored <= tokens < stored + 1.000001e-6  # as floats: never rounded up
    assert codec.encode(codec.decode(text)) == text
