"""bayes_engine.params: defaults equal MODEL.md, validation names the bad key."""

import copy
import json
import math
from decimal import Decimal

import pytest
from bayes_engine import params as P
from bayes_engine import vocab
from bayes_engine.errors import BayesError
from hypothesis import given, settings
from hypothesis import strategies as hs

# MODEL.md section 2.1, copied literally: (mean, strength) per metric i, p, t, s.
MEAN_STRENGTH = {
    2: [(0.40, 12), (0.55, 10), (0.45, 11), (0.50, 10)],
    3: [(0.55, 18), (0.60, 16), (0.58, 17), (0.60, 15)],
    4: [(0.68, 25), (0.65, 22), (0.67, 24), (0.70, 20)],
    5: [(0.78, 35), (0.72, 30), (0.75, 33), (0.80, 28)],
}
CHAPTER_1 = [(1.5, 6), (3, 3), (2, 5), (2, 3)]

# Per-chapter columns from MODEL.md sections 1, 2.1, 3, 4.2, 4.4, 5.
COLUMNS = {
    "boss_threshold": [55, 60, 65, 70, 75],
    "skip_prior_skip": [3, 2, 1.5, 1, 0.5],
    "skip_prior_respond": [7, 8, 8.5, 9, 9.5],
    "skip_cap": [0.50, 0.35, 0.25, 0.15, 0.08],
    "reply_baseline_s": [300, 240, 180, 120, 90],
    "delay_coef": [0.15, 0.30, 0.50, 0.75, 1.0],
    "delay_cap_s": [10, 60, 300, 900, 1800],
    "fast_reply_s": [600, 300, 300, 300, 300],
    "slow_reply_s": [28800, 14400, 7200, 3600, 1800],
    "decay_grace_h": [8, 16, 24, 48, 72],
    "decay_rate_per_h": [0.008, 0.006, 0.004, 0.003, 0.002],
    "vice_decay_grace_h": [24, 48, 72, 96, 168],
    "mood_volatility": [1.3, 1.15, 1.0, 0.9, 0.85],
}


def chapter_row(snapshot, c):
    return next(row for row in snapshot["chapters"] if row["chapter"] == c)


def test_snapshot_shape():
    snap = P.DEFAULT_SNAPSHOT
    assert sorted(row["chapter"] for row in snap["chapters"]) == [1, 2, 3, 4, 5]
    for row in snap["chapters"]:
        assert set(row) == set(P.CHAPTER_KEYS)
    assert set(snap["global"]) == set(P.GLOBAL_KEYS)
    json.dumps(snap)  # plain JSON


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5])
def test_default_priors_match_model_table(c):
    row = chapter_row(P.DEFAULT_SNAPSHOT, c)
    for name, j in zip(vocab.METRIC_NAMES, range(4)):
        if c == 1:
            alpha, beta = CHAPTER_1[j]
        else:
            mean, strength = MEAN_STRENGTH[c][j]
            alpha, beta = mean * strength, (1 - mean) * strength
        assert row[f"prior_{name}_alpha"] == pytest.approx(alpha, abs=1e-10)
        assert row[f"prior_{name}_beta"] == pytest.approx(beta, abs=1e-10)
        # stored rounded to 10 decimals
        assert row[f"prior_{name}_alpha"] == round(row[f"prior_{name}_alpha"], 10)
    assert P.DEFAULT_PARAMS.metric_prior(c)["i"] == (
        pytest.approx(row["prior_intimacy_alpha"]),
        pytest.approx(row["prior_intimacy_beta"]),
    )


def test_chapter_2_priors_exact():
    prior = P.DEFAULT_PARAMS.metric_prior(2)
    assert prior == {"i": (4.8, 7.2), "p": (5.5, 4.5), "t": (4.95, 6.05), "s": (5.0, 5.0)}


@pytest.mark.parametrize("key", sorted(COLUMNS))
def test_default_chapter_columns(key):
    for c in vocab.CHAPTERS:
        assert chapter_row(P.DEFAULT_SNAPSHOT, c)[key] == COLUMNS[key][c - 1]
        assert getattr(P.DEFAULT_PARAMS.chapter(c), key) == COLUMNS[key][c - 1]


def test_default_globals():
    g = P.DEFAULT_PARAMS.g
    assert P.DEFAULT_PARAMS.weights == (0.30, 0.25, 0.25, 0.20)
    assert math.fsum(P.DEFAULT_PARAMS.weights) == pytest.approx(1.0, abs=1e-12)
    assert g["discount"] == 0.98
    assert g["cold_start_messages"] == 10 and isinstance(g["cold_start_messages"], int)
    assert g["max_consecutive_skips"] == 2
    assert g["evidence_budget_per_hour"] == 5.0
    assert g["uncertain_margin"] == 0.1 and g["audit_rate"] == 0.02
    assert g["llm_budget_tokens"] == 3 and g["llm_budget_window"] == 100
    for retired in ("critical_zone", *(f"variance_threshold_{name}" for name in vocab.METRIC_NAMES)):
        assert retired not in g
    assert g["ready_probability"] == 0.7
    assert g["vice_prior"] == 1.0
    assert g["vice_decay_rate_per_h"] == 0.002
    assert g["timing_obs_precision"] == 1.0
    assert g["timing_max_gap_s"] == 6 * 3600
    assert g["mood_start_belief"] == (0.40, 0.25, 0.10, 0.10, 0.05, 0.10)
    assert math.fsum(g["mood_start_belief"]) == pytest.approx(1.0)
    assert g["mood_transition"][0] == (0.55, 0.20, 0.08, 0.07, 0.03, 0.07)
    assert g["mood_emission"][5][1] == 0.22


def test_matrices_are_stochastic():
    g = P.DEFAULT_PARAMS.g
    assert len(g["mood_transition"]) == 6 and all(len(r) == 6 for r in g["mood_transition"])
    assert len(g["mood_emission"]) == 6 and all(len(r) == 14 for r in g["mood_emission"])
    for row in g["mood_transition"] + g["mood_emission"]:
        assert math.fsum(row) == pytest.approx(1.0, abs=1e-12)
        assert all(x >= 0 for x in row)


def test_params_is_read_only():
    with pytest.raises(TypeError):
        P.DEFAULT_PARAMS.g["discount"] = 0.5
    with pytest.raises(AttributeError):
        P.DEFAULT_PARAMS.chapter(1).skip_cap = 0.9


@pytest.mark.parametrize("c", [0, 6, -1, 1.0, True, "1", None])
def test_unknown_chapter(c):
    with pytest.raises(BayesError) as exc:
        P.DEFAULT_PARAMS.chapter(c)
    assert exc.value.sqlstate == "22023"


def test_accepts_json_text_decimals_and_integral_floats():
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["global"]["discount"] = Decimal("0.98")
    snap["global"]["cold_start_messages"] = 10.0
    snap["chapters"][0]["chapter"] = 1.0
    snap["chapters"][1]["extra_bookkeeping_column"] = "ignored"
    params = P.Params.from_snapshot(snap)
    assert params.g["discount"] == 0.98 and isinstance(params.g["discount"], float)
    assert params.g["cold_start_messages"] == 10
    text_params = P.Params.from_snapshot(json.dumps(P.DEFAULT_SNAPSHOT))
    assert text_params.chapter(3) == P.DEFAULT_PARAMS.chapter(3)
    assert dict(text_params.g) == dict(P.DEFAULT_PARAMS.g)


def rejects(snap, *words):
    with pytest.raises(BayesError) as exc:
        P.Params.from_snapshot(snap)
    assert exc.value.sqlstate == "22023"
    for word in words:
        assert word in exc.value.message, exc.value.message
    return exc.value


def test_rejects_missing_chapter():
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["chapters"] = [row for row in snap["chapters"] if row["chapter"] != 4]
    rejects(snap, "chapter 4", "missing")


def test_rejects_duplicate_chapter():
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["chapters"][1]["chapter"] = 1
    rejects(snap, "duplicates chapter 1")


@pytest.mark.parametrize("key", ["delay_coef", "prior_trust_beta", "mood_volatility"])
def test_rejects_missing_chapter_key(key):
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    del chapter_row(snap, 3)[key]
    rejects(snap, "chapter 3", key, "missing")


@pytest.mark.parametrize("key", ["discount", "mood_transition", "llm_budget_window", "uncertain_margin"])
def test_rejects_missing_global_key(key):
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    del snap["global"][key]
    rejects(snap, key, "missing")


@pytest.mark.parametrize(
    "bad, word",
    [
        (math.nan, "finite"),
        (math.inf, "finite"),
        (True, "number"),
        ("0.5", "number"),
        (None, "number"),
    ],
)
def test_rejects_bad_chapter_values(bad, word):
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    chapter_row(snap, 2)["skip_cap"] = bad
    rejects(snap, "chapter 2", "skip_cap", word)


@pytest.mark.parametrize("bad, word", [(math.nan, "finite"), (False, "number"), ("x", "number")])
def test_rejects_bad_global_values(bad, word):
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["global"]["vice_prior"] = bad
    rejects(snap, "vice_prior", word)


@pytest.mark.parametrize(
    "where, key, value, word",
    [
        ("chapter", "prior_intimacy_alpha", 0, "[0.01, 100000]"),
        ("chapter", "prior_trust_beta", 1e-300, "[0.01, 100000]"),
        ("chapter", "skip_prior_respond", 1e6, "[0.01, 100000]"),
        ("global", "vice_prior", 0.001, "[0.01, 100000]"),
        ("global", "evidence_budget_per_hour", 1e7, "(0, 1000000]"),
        ("global", "clock_skew_s", -1, "[0, 31536000]"),
        ("global", "clock_skew_s", 31536001, "[0, 31536000]"),
        ("global", "max_message_age_h", 0, "(0, 87600]"),
        ("global", "max_message_age_h", 87601, "(0, 87600]"),
        ("global", "idempotency_window_h", -1, "[0, 87600]"),
        ("global", "idempotency_window_h", 87601, "[0, 87600]"),
        ("chapter", "reply_baseline_s", -300, "> 0"),
        ("chapter", "skip_cap", 1.5, "[0, 1]"),
        ("chapter", "boss_threshold", 120, "[0, 100]"),
        ("global", "discount", 0, "(0, 1]"),
        ("global", "discount", 1.01, "(0, 1]"),
        ("global", "cold_start_messages", 2.5, "integer"),
        ("global", "max_consecutive_skips", -1, ">= 0"),
        ("global", "timing_obs_precision", 0, "(0, 1000000]"),
        ("global", "uncertain_margin", -0.01, "[0, 0.5]"),
        ("global", "uncertain_margin", 0.51, "[0, 0.5]"),
        ("global", "audit_rate", 1.5, "[0, 1]"),
        ("global", "llm_budget_tokens", -1, "[0, 1000000]"),
        ("global", "llm_budget_tokens", 1e6 + 1, "[0, 1000000]"),
        ("global", "llm_budget_window", 0.5, "[1, 1000000000]"),
        ("global", "llm_budget_window", 2e9, "[1, 1000000000]"),
    ],
)
def test_rejects_out_of_range(where, key, value, word):
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    target = chapter_row(snap, 5) if where == "chapter" else snap["global"]
    target[key] = value
    rejects(snap, key, word)


def test_rejects_bad_matrices():
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["global"]["mood_transition"][2][2] = 0.9
    rejects(snap, "mood_transition[2]", "sum to 1")
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["global"]["mood_emission"][1][3] = -0.1
    rejects(snap, "mood_emission[1][3]", ">= 0")
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["global"]["mood_emission"] = snap["global"]["mood_emission"][:5]
    rejects(snap, "mood_emission", "6 rows")
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["global"]["mood_start_belief"] = [0.5, 0.5, 0, 0, 0]
    rejects(snap, "mood_start_belief", "6 numbers")


def test_rejects_non_objects_and_bad_json():
    rejects("not json", "JSON")
    rejects([], "snapshot")
    rejects({"chapters": [], "global": {}}, "chapter 1", "missing")
    rejects({"chapters": P.DEFAULT_SNAPSHOT["chapters"]}, "global")


# ---------------------------------------------------------------- any bad value: 22023, never another exception
# (issue 12: "discount" = 1e400, which jsonb prints as a 401-digit integer, was
# an OverflowError, SQLSTATE 38000 and HTTP 500 in every RPC).

JSON_VALUES = hs.recursive(
    hs.none()
    | hs.booleans()
    | hs.integers(min_value=-(10**420), max_value=10**420)
    | hs.floats(allow_nan=True, allow_infinity=True)
    | hs.decimals(allow_nan=False, allow_infinity=False)
    | hs.text(max_size=5),
    lambda inner: hs.lists(inner, max_size=7) | hs.dictionaries(hs.text(max_size=3), inner, max_size=3),
    max_leaves=20,
)


def _keys():
    chapter_keys = [("chapter", c, key) for c in vocab.CHAPTERS for key in P.CHAPTER_KEYS]
    return chapter_keys + [("global", None, key) for key in P.GLOBAL_KEYS]


@settings(max_examples=600, deadline=None)
@given(target=hs.sampled_from(_keys()), value=JSON_VALUES, via_text=hs.booleans())
def test_any_bad_value_is_22023_naming_its_key(target, value, via_text):
    where, c, key = target
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    if where == "chapter":
        chapter_row(snap, c)[key] = value
    else:
        snap["global"][key] = value
    if via_text:
        try:
            snap = json.dumps(snap, default=str)  # as the database sends it (Decimals as their text)
        except ValueError:
            return
    try:
        P.Params.from_snapshot(snap)
    except BayesError as err:
        assert err.sqlstate == "22023"
        named = key if where == "global" else (f"chapters[{c - 1}]" if key == "chapter" else f"chapter {c} {key}")
        assert named in err.message, err.message


@pytest.mark.parametrize("text", ["1e400", "-1e400", "1" + "0" * 400, "1e-400"])
def test_a_huge_number_as_jsonb_prints_it_is_22023(text):
    snap = json.loads(json.dumps(P.DEFAULT_SNAPSHOT).replace('"discount": 0.98', f'"discount": {text}'))
    if text == "1e-400":  # underflows to 0.0: out of (0, 1]
        rejects(snap, "global.discount", "(0, 1]")
    else:
        rejects(snap, "global.discount", "finite")
