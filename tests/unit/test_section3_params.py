"""Section 3 as parameter rows (issue 14): the feature evidence and the lexicons
of bayes.params, their validation, the encoder under a custom Lexicon, and the
defaults, which must be MODEL.md's section 3 exactly as the engine had it before
the change."""

from __future__ import annotations

import copy
import hashlib
import json
import math
import re
import types

import pytest
from bayes_dev.states import T0, fresh
from bayes_dev.support import ROOT
from bayes_engine import codec, encoder, events, model, vocab
from bayes_engine import params as P
from bayes_engine.encoder import Lexicon, encode_message
from bayes_engine.errors import BayesError
from hypothesis import given, settings
from hypothesis import strategies as hs

CH1 = dict(fast_s=600, slow_s=28800)
METRICS = vocab.METRIC_NAMES  # intimacy, passion, trust, secureness
FEATURES = tuple(encoder.FEATURES)
VICE_LEXICONS = tuple(f"vice_{name}" for name in vocab.VICES)
LEXICONS = ("positive", "negative", "personal", "humor", *VICE_LEXICONS)


def snapshot(**rows) -> dict:
    """The default snapshot with some rows of bayes.params replaced."""
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    snap["global"].update(rows)
    return snap


def params_with(**rows) -> P.Params:
    return P.Params.from_snapshot(snapshot(**rows))


def enc(text, lexicon=encoder.DEFAULT_LEXICON, gap=None, position=None):
    return encode_message(text, gap, None, position, lexicon=lexicon, **CH1)


def lexicon_of(**rows) -> Lexicon:
    return P.lexicon_of(params_with(**rows))


def positive_plus(*words):
    return sorted({*P.DEFAULT_SNAPSHOT["global"]["lexicon_positive"], *words})


# ---------------------------------------------------------------- the defaults are MODEL.md section 3


def _frozen_encoder() -> types.ModuleType:
    """bayes_engine.encoder as it was deployed before issue 14 (its constants were section 3 in code),
    read from the frozen migration that installed it, by the SHA-256 the migration names."""
    sha = "a8a81fcfdefe292b0791835111fd57a3069227ee1f81904905bbf361e6dc3842"
    head = f"select bayes.install_py_module('bayes_engine.encoder', '{sha}', $bayes_py$"
    places = sorted((ROOT / "supabase").glob("migrations/*.sql")) + sorted(
        (ROOT / "supabase").glob("migrations-archive/*/*.sql")
    )
    for path in places:
        text = path.read_text()
        start = text.find(head)
        if start >= 0:
            source = text[start + len(head) : text.index("$bayes_py$);", start)]
            assert hashlib.sha256(source.encode()).hexdigest() == sha, path
            module = types.ModuleType("encoder_before_issue_14")
            exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 - frozen code of this repository
            return module
    raise AssertionError("no frozen migration carries the encoder of before issue 14")


BEFORE = _frozen_encoder()


def test_the_default_lexicons_are_the_word_lists_of_before_issue_14():
    g = P.DEFAULT_SNAPSHOT["global"]
    assert set(P.LEXICON_KEYS) == {f"lexicon_{name}" for name in LEXICONS}
    assert g["lexicon_positive"] == sorted(BEFORE.POSITIVE)
    assert g["lexicon_negative"] == sorted(BEFORE.NEGATIVE)
    assert g["lexicon_personal"] == sorted(BEFORE.PERSONAL)
    assert g["lexicon_humor"] == sorted(BEFORE.HUMOR_WORDS | set(BEFORE.HUMOR_EMOJI))
    for j, name in enumerate(VICE_LEXICONS):
        assert g[f"lexicon_{name}"] == sorted(BEFORE.VICE_WORDS[j]), name


def test_the_default_evidence_rows_are_the_feature_table_of_before_issue_14():
    g = P.DEFAULT_SNAPSHOT["global"]
    assert set(P.EVIDENCE_KEYS) == {f"feature_{name}" for name in (*BEFORE.FEATURES, "intercept")}
    for name, pairs in BEFORE.FEATURES.items():
        assert g[f"feature_{name}"] == {METRICS[metric]: value for metric, value in pairs}, name
    assert g["feature_intercept"] == dict.fromkeys(METRICS, 0.0)


TEXTS = [
    "I love you. What do you dream about?",
    "whatever, this is boring and stupid. I think the rules are against freedom lol \U0001f602\U0001f602",
    "haha \U0001f923 hehe \U0001f606 let's go to a bar, drink wine and do something crazy and wild",
    "I feel like I can be honest with you, I have a secret, I'm scared. " * 5,
    "the highway is really long, thanks a lot",
    "ok",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("gap, position", [(None, None), (100.0, 1), (2000.0, 5), (200000.0, 2)])
def test_the_default_parameters_encode_as_the_encoder_of_before_issue_14(text, gap, position):
    want = BEFORE.encode_message(text, gap, None, position, **CH1)
    got = encode_message(text, gap, None, position, lexicon=P.lexicon_of(P.DEFAULT_PARAMS), **CH1)
    assert got.to_json() == want.to_json()


@settings(max_examples=300, deadline=None)
@given(
    text=hs.lists(
        hs.sampled_from(
            sorted(BEFORE.POSITIVE | BEFORE.NEGATIVE | BEFORE.PERSONAL | BEFORE.HUMOR_WORDS | {*BEFORE.VICE_WORDS[2]})
            + list(BEFORE.HUMOR_EMOJI)
            + ["?", "Love", "highway", "x" * 40, " ", "\U0001f600"]
        ),
        max_size=40,
    ).map(" ".join),
    gap=hs.one_of(hs.none(), hs.floats(0, 3e5)),
    position=hs.one_of(hs.none(), hs.integers(1, 6)),
)
def test_any_text_encodes_under_the_default_parameters_as_before_issue_14(text, gap, position):
    want = BEFORE.encode_message(text, gap, None, position, **CH1)
    got = encode_message(text, gap, None, position, lexicon=P.lexicon_of(P.DEFAULT_PARAMS), **CH1)
    assert got.to_json() == want.to_json()


MODEL_MD = ROOT.parent / "shared" / "MODEL.md"  # the README's link: ../shared/MODEL.md


def _model_section_3() -> str:
    if not MODEL_MD.is_file():
        pytest.skip(f"MODEL.md is not next to the repository ({MODEL_MD})")
    text = MODEL_MD.read_text()
    return text[text.index("## 3. Observation encoding") : text.index("## 4. ")]


def _model_lexicons(section: str) -> dict:
    """The lexicon lines of section 3 ("- positive: ..." with their continuation lines, "  - 0: ...")."""
    block = section[section.index("Lexicons:") : section.index("Metric features.")]
    lines = []
    for line in block.splitlines()[1:]:
        if re.match(r"\s*- ", line) or not lines:
            lines.append(line.strip()[2:])
        else:
            lines[-1] += " " + line.strip()
    out = {}
    for line in lines:
        name, _, entries = line.partition(":")
        if name.isdigit():
            out[f"vice_{vocab.VICES[int(name)]}"] = sorted(entries.split())
        elif name == "humor":
            words, _, emoji = entries.partition(", and the emoji")
            out[name] = sorted(words.split() + emoji.split())
        elif name in ("positive", "negative", "personal"):
            out[name] = sorted(entries.split())
    return out


def _model_feature_table(section: str) -> dict:
    """The rows of section 3's feature table as {feature: {metric: evidence}} (a "/" row is two features)."""
    letters = {"i": "intimacy", "p": "passion", "t": "trust", "s": "secureness"}
    out = {}
    for row in re.findall(r"^\| ([a-z ]+) \| [^|]+ \| ([^|]+) \|$", section, re.MULTILINE):
        name, evidence = row[0].strip().replace(" ", "_"), row[1]
        if name == "feature":
            continue
        for suffix, part in zip(("", "_one"), evidence.split("/")):
            cells = re.findall(r"\b([ipts]) ([+\u2212-])([0-9.]+)", part)
            out[name + suffix] = {letters[m]: (-1 if sign != "+" else 1) * float(x) for m, sign, x in cells}
    return out


def test_the_default_lexicons_are_model_md_section_3():
    model_lexicons = _model_lexicons(_model_section_3())
    assert set(model_lexicons) == set(LEXICONS)
    for name, words in model_lexicons.items():
        assert P.DEFAULT_SNAPSHOT["global"][f"lexicon_{name}"] == words, name


def test_the_default_evidence_rows_are_model_md_section_3():
    table = _model_feature_table(_model_section_3())
    assert set(table) == set(FEATURES)
    for name, row in table.items():
        assert P.DEFAULT_SNAPSHOT["global"][f"feature_{name}"] == row, name


# ---------------------------------------------------------------- validation: 22023 naming the key

BAD_EVIDENCE = [
    ([0.49], "feature_warm", "must be an object"),
    (0.49, "feature_warm", "must be an object"),
    (None, "feature_warm", "must be an object"),
    ("{}", "feature_warm", "must be an object"),
    ({"charm": 0.1}, "feature_warm", "unknown metric 'charm'"),
    ({"p": 0.1}, "feature_warm", "unknown metric 'p'"),
    ({"passion": 1.01}, "feature_warm.passion", "[-1, 1]"),
    ({"passion": -1.5}, "feature_warm.passion", "[-1, 1]"),
    ({"passion": 1e400}, "feature_warm.passion", "finite"),
    ({"passion": math.nan}, "feature_warm.passion", "finite"),
    ({"passion": "0.4"}, "feature_warm.passion", "number"),
    ({"passion": True}, "feature_warm.passion", "number"),
    ({"passion": None}, "feature_warm.passion", "number"),
    ({"passion": [0.4]}, "feature_warm.passion", "number"),
]


@pytest.mark.parametrize("key", ["feature_warm", "feature_absent", "feature_intercept"])
@pytest.mark.parametrize("value, where, words", BAD_EVIDENCE, ids=[f"{b[0]!r}" for b in BAD_EVIDENCE])
def test_a_bad_evidence_row_is_22023_naming_its_key(key, value, where, words):
    with pytest.raises(BayesError) as err:
        params_with(**{key: value})
    assert err.value.sqlstate == "22023"
    assert "global." + where.replace("feature_warm", key) in err.value.message, err.value.message
    assert words in err.value.message, err.value.message
    assert err.value.hint == "fix the row in bayes.params"


BAD_LEXICONS = [
    ("love", "lexicon_positive", "must be a list"),
    ({"love": 1}, "lexicon_positive", "must be a list"),
    (None, "lexicon_positive", "must be a list"),
    (["a"] * 10_001, "lexicon_positive", "at most 10000"),
    (["love", "Love"], "lexicon_positive[1]", "lower case"),
    (["CUTE"], "lexicon_positive[0]", "lower case"),
    (["\u24b6"], "lexicon_positive[0]", "lower case"),  # a token with a case: lowered text never holds it
    (["two words"], "lexicon_positive[0]", "one word"),
    (["don't"], "lexicon_positive[0]", "one word"),
    (["cute!"], "lexicon_positive[0]", "one word"),
    (["a\U0001f602"], "lexicon_positive[0]", "one word"),
    ([" "], "lexicon_positive[0]", "one word"),
    (["\U0001f602 "], "lexicon_positive[0]", "one word"),
    ([""], "lexicon_positive[0]", "1 to 64 characters"),
    (["x" * 65], "lexicon_positive[0]", "1 to 64 characters"),
    ([3], "lexicon_positive[0]", "string"),
    ([None], "lexicon_positive[0]", "string"),
    ([["love"]], "lexicon_positive[0]", "string"),
]


@pytest.mark.parametrize("key", ["lexicon_positive", "lexicon_humor", "lexicon_vice_dark_humor"])
@pytest.mark.parametrize("value, where, words", BAD_LEXICONS, ids=[repr(b[0])[:30] for b in BAD_LEXICONS])
def test_a_bad_lexicon_is_22023_naming_its_key(key, value, where, words):
    with pytest.raises(BayesError) as err:
        params_with(**{key: value})
    assert err.value.sqlstate == "22023"
    assert "global." + where.replace("lexicon_positive", key) in err.value.message, err.value.message
    assert words in err.value.message, err.value.message


@pytest.mark.parametrize("key", [*P.EVIDENCE_KEYS, *P.LEXICON_KEYS])
def test_a_missing_row_is_22023_naming_its_key(key):
    snap = copy.deepcopy(P.DEFAULT_SNAPSHOT)
    del snap["global"][key]
    with pytest.raises(BayesError) as err:
        P.Params.from_snapshot(snap)
    assert err.value.sqlstate == "22023" and f"global.{key} is missing" in err.value.message


def test_good_rows_are_taken_as_written():
    params = params_with(
        feature_warm={"trust": 0.2, "passion": -1, "secureness": 1},
        feature_intercept={},
        lexicon_positive=["cute", "cute", "\u2764\ufe0f", "\U0001f970", "caf\u00e9", "x2", "_"],
        lexicon_negative=[],
    )
    assert params.g["feature_warm"] == (0.0, -1.0, 0.2, 1.0)  # METRIC_KEYS order, absent metrics 0
    assert params.g["feature_intercept"] == (0.0, 0.0, 0.0, 0.0)
    assert params.g["lexicon_positive"] == ("_", "caf\u00e9", "cute", "x2", "\u2764\ufe0f", "\U0001f970")
    assert params.g["lexicon_negative"] == ()


JSON_VALUES = hs.recursive(
    hs.none() | hs.booleans() | hs.integers(-(10**20), 10**20) | hs.floats() | hs.text(max_size=6),
    lambda inner: hs.lists(inner, max_size=5) | hs.dictionaries(hs.sampled_from([*METRICS, "charm"]), inner),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(
    key=hs.sampled_from(P.EVIDENCE_KEYS),
    value=hs.dictionaries(hs.sampled_from(METRICS), hs.floats(-1.5, 1.5) | hs.integers(-2, 2) | JSON_VALUES, max_size=4)
    | JSON_VALUES,
)
def test_an_evidence_row_is_taken_exactly_when_it_maps_metrics_to_numbers_in_minus_1_1(key, value):
    def good_cell(x):
        return type(x) in (int, float) and math.isfinite(x) and -1 <= x <= 1

    good = isinstance(value, dict) and set(value) <= set(METRICS) and all(good_cell(x) for x in value.values())
    try:
        params = params_with(**{key: value})
    except BayesError as err:
        assert not good, err.message
        assert err.sqlstate == "22023"
        assert f"global.{key}" in err.message
        return
    assert good
    assert params.g[key] == tuple(float(value.get(m, 0.0)) for m in METRICS)


# An entry a designer might type: words in any script and case, emoji, punctuation, spaces.
ENTRY = hs.one_of(
    hs.text(min_size=1, max_size=6),
    hs.sampled_from(
        ["cute", "Cute", "caf\u00e9", "\u00c9t\u00e9", "\u2764\ufe0f", "\U0001f970", "\u24b6", ":)", "x y"]
    ),
)


@settings(max_examples=500, deadline=None)
@given(entry=ENTRY)
def test_every_entry_a_lexicon_takes_is_found_in_a_text_that_spells_it(entry):
    """A designer's entry is either refused (22023 naming the key) or found by the encoder in a text that
    writes it, in the case it was written: a stored word list never holds an entry that cannot match."""
    try:
        lexicon = lexicon_of(lexicon_positive=[entry])
    except BayesError as err:
        assert err.sqlstate == "22023" and "global.lexicon_positive[0]" in err.message
        return
    for text in (entry, f"so {entry} here", f"{entry} {entry}"):
        obs = enc(text, lexicon)
        positive_count = 2 if text == f"{entry} {entry}" else 1
        assert ("warm" if positive_count == 2 else "warm_one") in obs.features, (entry, text, obs)
        assert 3 in obs.symbols


# ---------------------------------------------------------------- the encoder under a custom Lexicon


def test_a_word_added_to_lexicon_positive_fires_warm():
    lexicon = lexicon_of(lexicon_positive=positive_plus("cute"))
    assert "warm_one" not in enc("you are so cute").features  # the default lexicon does not know it
    one = enc("you are so cute", lexicon)
    assert "warm_one" in one.features and 3 in one.symbols
    assert one.plus[1] == pytest.approx(0.15)
    two = enc("cute, really CUTE", lexicon)
    assert "warm" in two.features and two.plus[1] == pytest.approx(0.49)
    # the other words of the list still count with it
    assert "warm" in enc("cute and sweet", lexicon).features


def test_a_word_removed_from_a_lexicon_no_longer_counts():
    words = [w for w in P.DEFAULT_SNAPSHOT["global"]["lexicon_negative"] if w != "boring"]
    lexicon = lexicon_of(lexicon_negative=words)
    assert "cold" in enc("this is boring and stupid").features
    assert "cold_one" in enc("this is boring and stupid", lexicon).features


@pytest.mark.parametrize(
    "text, hit",
    [
        ("cute", True),
        ("Cute!", True),
        ("so-cute-", True),
        ("(cute)", True),
        ("cute_", False),  # _ is a word character: "cute_" is another word
        ("acute", False),
        ("cuteness", False),
        ("cutecute", False),
        ("cut e", False),
        ("cute2", False),
    ],
)
def test_lexicon_words_match_on_word_boundaries_only(text, hit):
    lexicon = lexicon_of(lexicon_positive=["cute"])
    assert ("warm_one" in enc(text, lexicon).features) == hit


def test_a_word_in_several_lexicons_counts_in_each():
    lexicon = lexicon_of(
        lexicon_positive=["bubbly"], lexicon_vice_substances=["bubbly", "wine"], lexicon_personal=["bubbly"]
    )
    obs = enc("bubbly? bubbly!", lexicon)
    assert "warm" in obs.features and "personal_question" in obs.features
    assert obs.vices[vocab.VICES.index("substances")] == 0.5


def test_an_emoji_token_counts_its_occurrences():
    heart, smile = "\u2764\ufe0f", "\U0001f970"  # a two-code-point token and a single code point
    lexicon = lexicon_of(lexicon_positive=positive_plus(heart, smile), lexicon_vice_sexuality=[smile])
    assert enc("hello " + heart, lexicon).features == ["short", "warm_one"]
    glued = enc("hello" + smile + "there" + smile, lexicon)  # occurrences, no word boundaries needed
    assert "warm" in glued.features
    assert glued.vices[vocab.VICES.index("sexuality")] == 0.5
    assert "warm" in enc(heart + heart, lexicon).features
    assert "warm" in enc(smile * 3, lexicon).features
    assert (
        "warm_one"
        in enc("\u2764 alone, without its variation selector", lexicon_of(lexicon_positive=["\u2764"])).features
    )
    assert "warm_one" not in enc("\u2764 alone, without its variation selector", lexicon).features


def test_humor_emoji_are_lexicon_entries_too():
    assert 6 in enc("\U0001f602").symbols
    no_emoji = [e for e in P.DEFAULT_SNAPSHOT["global"]["lexicon_humor"] if encoder.is_word(e)]
    assert 6 not in enc("\U0001f602", lexicon_of(lexicon_humor=no_emoji)).symbols
    assert 6 in enc(":)", lexicon_of(lexicon_humor=[":)"])).symbols


def test_a_feature_weight_change_changes_plus_and_minus():
    text = "I love you, you are wonderful"  # warm (two positive words), nothing else
    default = enc(text)
    assert default.features == ["warm"]
    assert default.plus == pytest.approx([0, 0.49, 0, 0]) and default.minus == [0, 0, 0, 0]
    lexicon = lexicon_of(feature_warm={"passion": 0.8, "trust": -0.3, "intimacy": 0.1})
    changed = enc(text, lexicon)
    assert changed.features == ["warm"]
    assert changed.plus == pytest.approx([0.1, 0.8, 0, 0]) and changed.minus == pytest.approx([0, 0, 0.3, 0])
    silent = enc(text, lexicon_of(feature_warm={}))  # a feature without evidence still fires
    assert silent.features == ["warm"] and silent.plus == [0, 0, 0, 0] and silent.minus == [0, 0, 0, 0]


def test_evidence_of_features_that_fire_together_adds_up_per_sign():
    lexicon = lexicon_of(feature_short={"passion": -0.5, "trust": 0.25}, feature_warm_one={"passion": 0.3})
    obs = enc("love", lexicon)
    assert obs.features == ["short", "warm_one"]
    assert obs.plus == pytest.approx([0, 0.3, 0.25, 0]) and obs.minus == pytest.approx([0, 0.5, 0, 0])


@pytest.mark.parametrize("text", ["ok", "a neutral sentence of some length", "I love you. What do you dream?", ""])
def test_the_intercept_adds_evidence_to_every_message_and_is_never_an_observation(text):
    intercept = {"intimacy": 0.05, "passion": -0.1, "trust": 0.0, "secureness": 1.0}
    lexicon = lexicon_of(feature_intercept=intercept)
    before, after = enc(text), enc(text, lexicon)
    assert after.features == before.features and after.observations == before.observations
    assert after.plus == pytest.approx([before.plus[0] + 0.05, before.plus[1], before.plus[2], before.plus[3] + 1.0])
    assert after.minus == pytest.approx([before.minus[0], before.minus[1] + 0.1, before.minus[2], before.minus[3]])
    assert (after.vices, after.symbols) == (before.vices, before.symbols)


def test_the_intercept_moves_the_state_of_a_message_without_signals_which_stays_no_signals():
    params = params_with(feature_intercept={"trust": 0.4})
    results = {}
    for name, p in (("default", P.DEFAULT_PARAMS), ("intercept", params)):
        state = fresh()
        state["n"] = 20  # past the cold start: no halving, no cold_start reason
        result, data = events.apply_message(
            state, p, "u1", model.Message("a neutral sentence of some length", T0, None), model.RowTimes()
        )
        results[name] = state, result, data
    (plain, r0, _), (moved, r1, data) = results["default"], results["intercept"]
    assert r0["observations"] == r1["observations"] == 0
    assert r0["fallback"]["reason"] == r1["fallback"]["reason"] == "no_signals"
    assert data["observation"]["plus"] == [0.0, 0.0, 0.4, 0.0] and data["observation"]["features"] == []
    assert moved["m"]["t"][0] == pytest.approx(plain["m"]["t"][0] + 0.4)
    assert moved["m"]["t"][1] == plain["m"]["t"][1]


def test_the_parameters_lexicon_is_compiled_once_per_parameter_set():
    params = params_with(lexicon_positive=positive_plus("cute"))
    assert P.lexicon_of(params) is P.lexicon_of(params)
    assert P.lexicon_of(P.DEFAULT_PARAMS) is not P.lexicon_of(params)
    assert "warm_one" in enc("so cute", P.lexicon_of(params)).features


def test_the_message_path_encodes_with_the_parameters_lexicon():
    params = params_with(lexicon_positive=positive_plus("cute"), feature_warm_one={"trust": 0.2})
    message = model.Message("you are so cute, honestly", T0, None)
    _, default_data = events.apply_message(fresh(), P.DEFAULT_PARAMS, "u1", message, model.RowTimes())
    result, data = events.apply_message(fresh(), params, "u1", message, model.RowTimes())
    assert "warm_one" not in default_data["observation"]["features"]
    assert result["features"] == data["observation"]["features"] == ["warm_one"]
    assert data["observation"]["plus"] == [0.0, 0.0, 0.2, 0.0]


def test_replay_uses_the_stored_observation_not_the_current_lexicon():
    params = params_with(lexicon_positive=positive_plus("cute"))
    state = fresh()
    _, data = events.apply_message(state, params, "u1", model.Message("cute cute", T0, None), model.RowTimes())
    log = [("message", json.loads(json.dumps(data)))]
    assert events.replay(P.DEFAULT_PARAMS, "u1", log) == codec.encode(state)


# Random word lists, counted independently: each entry of a list is found as often as the lowered text spells
# it (a word between word boundaries, a token anywhere), and the features follow the counts.
WORD = hs.from_regex(r"[a-z\u00e0-\u00f6\u00f8-\u00ff]{1,6}", fullmatch=True)
TOKEN = hs.sampled_from(["\U0001f970", "\u2764\ufe0f", ":)", "<>", "\U0001f602"])


def _count(entries, lowered):
    words = re.findall(r"\w+", lowered)
    return sum(words.count(e) if re.fullmatch(r"\w+", e) else lowered.count(e) for e in set(entries))


@settings(max_examples=300, deadline=None)
@given(
    positive=hs.lists(WORD | TOKEN, max_size=6),
    negative=hs.lists(WORD | TOKEN, max_size=6),
    pieces=hs.lists(WORD | TOKEN | hs.sampled_from([" ", "!", "?", "A", "\u00c0", "_", "-"]), max_size=30),
)
def test_any_word_lists_count_as_an_independent_count_says(positive, negative, pieces):
    text = "".join(pieces)
    lexicon = lexicon_of(lexicon_positive=positive, lexicon_negative=negative)
    lowered = text.lower()
    n_pos, n_neg = _count(positive, lowered), _count(negative, lowered)
    obs = enc(text, lexicon)
    want = []
    if n_pos:
        want.append("warm" if n_pos >= 2 else "warm_one")
    if n_neg:
        want.append("cold" if n_neg >= 2 else "cold_one")
    assert [f for f in obs.features if f.startswith(("warm", "cold"))] == want
    assert (3 in obs.symbols, 4 in obs.symbols) == (n_pos > 0, n_neg > 0)
