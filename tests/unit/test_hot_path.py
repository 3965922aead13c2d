"""Issue 15's cuts of the per-message Python change no output: pg.step against the plain reference.

bayes_dev.hot_path_reference keeps every rewritten piece as it was written
before the cuts (loops over the vocabularies, explicit sort keys, the full
validation of the codec, its generic writer, json.dumps); here a corpus of
conversations goes through both, and the state, the result and the event
texts must be equal byte for byte. The rewritten pieces are also compared
one by one on drawn inputs, and the codec's fast path against its full
validation on corrupt states.
"""

import copy
import json
import math
import random

import pytest
from bayes_dev import hot_path_reference as reference
from bayes_dev.corrupt import corruptions, mutated_states
from bayes_dev.players import MESSAGES
from bayes_dev.states import states
from bayes_engine import codec, eventlog, events, model, pg, vocab
from bayes_engine.errors import BayesError
from bayes_engine.params import DEFAULT_SNAPSHOT, Params
from hypothesis import given, settings
from hypothesis import strategies as hs

TEXTS = [
    *MESSAGES,
    "",
    "?",
    "why? why? really?",
    "haha lol \U0001f602\U0001f602\U0001f602 let's do something crazy and wild tonight",
    "I love you, you are amazing, wonderful and kind. What do you dream about?",
    "I hate this. Terrible, awful, boring. Goodbye.",
    "I feel like I can be honest with you. " * 9,
    "\u2600\u2601 x" * 3,
    "\u00c9t\u00e9 \u00df LOVE? \u2764",
]


def _snapshots():
    """The defaults, and two variants that reach the other branches (intercept, no cold start, a small
    budget and window, audits and uncertainty often, no skip runs, no vice decay, a lexicon with an
    emoji and a common word, no metric decay in chapter 3; a tight evidence budget, a low threshold)."""
    varied = copy.deepcopy(DEFAULT_SNAPSHOT)
    g = varied["global"]
    g.update(
        feature_intercept={"intimacy": 0.05, "passion": -0.02, "trust": 0.0, "secureness": 0.01},
        cold_start_messages=0,
        llm_budget_tokens=2.5,
        llm_budget_window=7,
        audit_rate=0.3,
        uncertain_margin=0.3,
        max_consecutive_skips=0,
        vice_decay_rate_per_h=0.0,
        timing_max_gap_s=1e9,
    )
    g["lexicon_positive"] = sorted({*g["lexicon_positive"], "ok", "\u2764", "you"})
    g["lexicon_vice_dark_humor"] = sorted({*g["lexicon_vice_dark_humor"], "\U0001f602", "haha"})
    varied["chapters"][2]["decay_rate_per_h"] = 0.0
    varied["chapters"][0]["decay_grace_h"] = 0
    tight = copy.deepcopy(DEFAULT_SNAPSHOT)
    tight["global"].update(discount=1.0, evidence_budget_per_hour=0.3, ready_probability=0.0, max_consecutive_skips=5)
    for row in tight["chapters"]:
        row.update(skip_cap=1.0, boss_threshold=20)
    return [DEFAULT_SNAPSHOT, varied, tight]


@pytest.fixture(scope="module")
def revisions():
    """Parameter revisions that pg.load_params finds in its cache (negative: no database has them)."""
    params = {-1 - j: Params.from_snapshot(snapshot) for j, snapshot in enumerate(_snapshots())}
    pg._params_cache.update(params)
    yield params
    for revision in params:
        pg._params_cache.pop(revision, None)


def _conversation(rnd, player, params, revision, messages):
    """(pg.step arguments, params) of each message of one player; other writers in between."""
    user_id = f"00000000-0000-4000-8000-{player:012d}"
    state = codec.default_state(1, params)
    if player % 7 == 3:  # a personalised HMM
        state["A"] = [[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]] + [[1 / 6] * 6 for _ in range(5)]
        state["B"] = [[0.05 + 0.01 * j + 0.003 * r for j in range(14)] for r in range(6)]
    text = codec.encode(state)
    version, last = 1, None
    t = 1_790_000_000.0 + rnd.random() * 1e6
    for k in range(messages):
        if k and rnd.random() < 0.1:  # another writer changes the state between two messages
            other = codec.decode(text, params)
            choice = rnd.random()
            if choice < 0.4:
                events.apply(other, params, user_id, "llm_scores", {"deltas": {"trust": rnd.choice([-4, 3, 10])}})
            elif choice < 0.8:
                events.apply(other, params, user_id, "outcome", {"decision": "skip", "engaged": rnd.random() < 0.5})
            else:
                events.apply(other, params, user_id, "chapter", {"chapter": min(5, other["c"] + 1)})
            text = codec.encode(other)
            version += 1
        gap = rnd.choice([None, 0.5, 3.0, 40.0, 400.0, 3000.0, 20000.0, 90000.0, 250000.0, 3e6])
        t += gap if gap is not None else 45.0
        data = {
            "text": rnd.choice(TEXTS),
            "sent_at": round(t, 3),
            "reply_gap_s": gap,
            "topic_changed": rnd.choice([None, True, False]),
            "seed": rnd.choice([None, "7"]),
            "received_at": round(t, 3) + 1.0,
        }
        # jsonb's text of the state: its own key order and spacing (what bayes.step receives)
        stored = json.dumps(json.loads(text), sort_keys=True)
        message_id = rnd.choice([None, f"m-{k}", f'q"\\\u00fc-{k}'])
        args = ("message", user_id, message_id, json.dumps(data), stored, version, last, last, revision, 37.5)
        yield args
        text = pg.step(None, *args)[0]
        version += 1
        last = data["sent_at"] if last is None else max(last, data["sent_at"])


def test_message_step_equals_the_plain_reference(revisions):
    rnd = random.Random(15)
    compared = 0
    for player in range(36):
        revision = -1 - player % 3
        params = revisions[revision]
        for args in _conversation(rnd, player, params, revision, rnd.randint(20, 160)):
            _, user_id, message_id, input_text, stored, version, last, decayed, _, percent = args
            state, result, packed, _ = pg.step(None, *args)  # the due time: tests/unit/test_decay_due.py
            want_state, want_result, want_input = reference.step(
                user_id, message_id, input_text, stored, version, last, decayed, params, percent
            )
            assert (state, result) == (want_state, want_result), (player, version)
            # the event's input as the log stores it since issue 15 (packed), from the reference's JSON
            assert packed == eventlog.pack("message", json.loads(want_input)), (player, version)
            compared += 1
    assert compared > 2500


@settings(max_examples=300)
@given(hs.lists(hs.floats(0.0, 1.0), min_size=6, max_size=6), hs.lists(hs.integers(0, 13), max_size=9))
def test_mood_step_equals_the_loop(belief, symbols):
    total = math.fsum(belief)
    belief = [x / total for x in belief] if total > 0 else [1 / 6] * 6
    params = Params.from_snapshot(DEFAULT_SNAPSHOT)
    for chapter in (1, 5):
        transition = model.chapter_transition(params.g["mood_transition"], params.chapter(chapter).mood_volatility)
        for emission in (params.g["mood_emission"], [[0.0] * 14] * 6):  # and an emission that underflows
            want = reference.mood_step(belief, transition, emission, symbols)
            assert model.mood_step(belief, transition, emission, symbols) == want


@settings(max_examples=300)
@given(states())
def test_summaries_equal_the_loops(state):
    params = Params.from_snapshot(DEFAULT_SNAPSHOT)
    assert model.metric_summary(state) == reference.metric_summary(state)
    assert model.composite_cumulants(state) == reference.composite_cumulants(state)
    assert model.boss_readiness(state, params) == reference.boss_readiness(state, params)
    assert model.vice_summary(state) == reference.vice_summary(state)
    assert model.mood_name(state) == reference.mood_name(state)
    assert codec.quantize_probabilities(state["h"]) == reference.quantize_probabilities(state["h"])


def test_ties_keep_the_first_vice_and_mood():
    state = codec.default_state(1, Params.from_snapshot(DEFAULT_SNAPSHOT))
    state["d"] = [2.0, 3.0, 3.0, 1.0, 3.0, 1.0, 1.0, 1.0]
    state["h"] = [0.1, 0.3, 0.1, 0.3, 0.1, 0.1]
    assert model.vice_summary(state) == reference.vice_summary(state)
    top = [name for name, _ in model.vice_summary(state)["top"]]
    assert top == ["risk_taking", "substances", "emotional_intensity"]
    assert model.mood_name(state) == reference.mood_name(state) == "playful"
    # equal remainders: the missing units go to the first entries
    assert codec.quantize_probabilities([1.0] * 6) == reference.quantize_probabilities([1.0] * 6)


def _full(state, what="stored state"):
    """(normalised copy, None) or (None, the error) of the full validation."""
    try:
        return codec.validate_fully(copy.deepcopy(state), what), None
    except BayesError as err:
        return None, (err.sqlstate, err.message)


def _check_fast_path(state):
    fast = codec._validate_plain(copy.deepcopy(state))
    full, error = _full(state)
    if fast is not None:  # the fast path accepts only what the full validation accepts, with the same copy
        assert error is None and fast == full
        assert [type(x) for x in json.loads(json.dumps(fast))] == [type(x) for x in json.loads(json.dumps(full))]
    try:
        got = codec.encode(copy.deepcopy(state))
    except BayesError as err:
        got = (err.sqlstate, err.message)
    try:
        want = reference.encode(copy.deepcopy(state))
    except BayesError as err:
        want = (err.sqlstate, err.message)
    assert got == want


@settings(max_examples=400)
@given(mutated_states())
def test_the_codec_fast_path_equals_the_full_validation(state):
    _check_fast_path(state)


def test_the_codec_fast_path_refuses_every_corruption():
    state = json.loads(codec.encode(codec.default_state(2, Params.from_snapshot(DEFAULT_SNAPSHOT))))
    for name, text in corruptions(state):
        try:
            corrupt = json.loads(text)
        except (ValueError, RecursionError):  # too many digits, nested too deeply: codec.decode refuses the text
            continue
        _, error = _full(corrupt)
        if error is not None:
            assert codec._validate_plain(corrupt) is None, name
        _check_fast_path(corrupt)
    for value in (True, None, "1", [1.0], float("nan"), float("inf"), 10**400, -0.0, 1e16):
        for key, where in (("d", 3), ("h", 0), ("b", 4), ("g", 0), ("g", 1), ("k", 2), ("dd", 1)):
            corrupt = copy.deepcopy(state)
            corrupt[key][where] = value
            _check_fast_path(corrupt)
        corrupt = copy.deepcopy(state)
        corrupt["lb"] = value
        _check_fast_path(corrupt)


def test_the_rollout_bucket_cache_answers_as_the_hash():
    from bayes_engine import cohort

    for j in range(200):
        user_id = f"00000000-0000-4000-8000-{j:012d}"
        for percent in (0.0, 12.34, 50.0, 100.0):
            want = "bayes" if cohort.user_bucket(user_id, "rollout") < round(percent * 100) else "shadow"
            assert cohort.player_mode(user_id, percent) == want


def test_vocabularies_the_written_out_code_assumes():
    assert len(vocab.MOODS) == 6 and len(vocab.METRIC_KEYS) == 4 and len(vocab.VICES) == 8
