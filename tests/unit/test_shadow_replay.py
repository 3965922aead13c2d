"""bayes_engine.shadow: the counterfactual replay and the calibration (issue 14), in plain Python.

The logs here are written the way the database writes them: each message and
each LLM answer applied with events.apply to the decoded stored state and
encoded again, and logged as its event input. The messages are real chat lines
(chatterbot-corpus) and the LLM a stand-in (vaderSentiment), as in the
lifetime benchmark.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from bayes_dev import lifetime
from bayes_engine import codec, encoder, events, model, params, shadow, vocab
from bayes_engine.errors import BayesError
from hypothesis import given, settings
from hypothesis import strategies as st

PRM = params.DEFAULT_PARAMS
DAY0 = 1_780_000_000 - 1_780_000_000 % 86400


@pytest.fixture(scope="module")
def corpus():
    lines = lifetime.corpus_messages()
    return lines, [lifetime.standin_deltas(c) for c in _compounds(lines)]


def _compounds(lines):
    standin = lifetime.StandIn()
    return [standin.compound(line) for line in lines]


def shadow_log(player, corpus, deltas, prm=PRM, answer=lambda k, result: True, extra=None):
    """`player` through the engine's Python as a shadow player: every message answered by the
    stand-in (when `answer` says so); returns (log, final stored text)."""
    user_id = player.ids["reference"]
    text = codec.encode(codec.default_state(1, prm))
    last = None
    log = []
    for k, line in enumerate(player.lines):
        sent_at = float(player.sent_at(DAY0, k))
        state = codec.decode(text, prm)
        data = {
            "text": corpus[line],
            "sent_at": sent_at,
            "reply_gap_s": player.gaps[k],
            "topic_changed": None,
            "seed": None,
        }
        result, event_input = events.apply(state, prm, user_id, "message", data, model.RowTimes(last, last))
        text = codec.encode(state)
        mid = lifetime.message_id(k)
        log.append(shadow.LoggedEvent("message", mid, event_input, "shadow", sent_at))
        last = sent_at if last is None else max(last, sent_at)
        if answer(k, result):
            state = codec.decode(text, prm)
            _, event_input = events.apply(state, prm, user_id, "llm_scores", {"deltas": deltas[line]})
            text = codec.encode(state)
            log.append(shadow.LoggedEvent("llm_scores", mid, event_input, None, sent_at))
        if extra:
            for kind, data in extra(k):
                state = codec.decode(text, prm)
                _, event_input = events.apply(state, prm, user_id, kind, data)
                text = codec.encode(state)
                log.append(shadow.LoggedEvent(kind, None, event_input, None, sent_at))
    return log, text


def players(n, messages=60, seed=14, corpus_size=1000):
    return lifetime.population(seed, n, messages, corpus_size)


def test_the_logged_replay_of_a_shadow_player_equals_his_stored_state(corpus):
    lines, deltas = corpus
    outcome = lambda k: [("outcome", {"decision": "reply", "engaged": k % 3 == 0})] if k % 7 == 3 else []  # noqa: E731
    for player in players(4, messages=80, corpus_size=len(lines)):
        log, stored = shadow_log(player, lines, deltas, extra=outcome)
        turns, text = shadow.replay(PRM, player.ids["reference"], log, "logged")
        assert text == stored
        assert all(t.consulted and t.answered for t in turns)
        assert [t.n for t in turns] == list(range(1, 81))


def test_the_replayed_policy_takes_the_live_decisions(corpus):
    """A player in bayes mode (the LLM asked only when fallback.needed) replays, as candidate under
    the same parameters, to the same decisions and the same stored state."""
    lines, deltas = corpus
    for player in players(3, messages=120, corpus_size=len(lines)):
        live = []

        def asked(k, result, live=live):
            live.append((result["n"], result["fallback"]["reason"], result["fallback"]["needed"]))
            return result["fallback"]["needed"]

        log, stored = shadow_log(player, lines, deltas, answer=asked)
        turns, text = shadow.replay(PRM, player.ids["reference"], log, "candidate")
        assert [(t.n, t.reason, t.consulted) for t in turns] == live
        assert text == stored


def test_the_llm_trajectory_holds_only_the_llm_evidence(corpus):
    """With the stand-in's answer all zeros, the LLM's trajectory never leaves the prior's mean
    path (the discount keeps it at the prior); the engine's own trajectory does."""
    lines, _ = corpus
    zeros = [{"intimacy": 0}] * len(lines)
    player = players(1, messages=50, corpus_size=len(lines))[0]
    log, _ = shadow_log(player, lines, zeros)
    turns, text = shadow.replay(PRM, player.ids["reference"], log, "llm")
    state = codec.decode(text, PRM)
    for key, (a0, b0) in PRM.metric_prior(1).items():
        assert state["m"][key] == pytest.approx([a0, b0], rel=1e-5)
    logged, _ = shadow.replay(PRM, player.ids["reference"], log, "logged")
    assert any(abs(a.composite - b.composite) > 1 for a, b in zip(turns, logged))


def test_evaluate_counts_calls_by_bucket_and_compares_after_the_cold_start(corpus):
    lines, deltas = corpus
    logs = [
        (p.ids["reference"], shadow_log(p, lines, deltas)[0]) for p in players(5, messages=60, corpus_size=len(lines))
    ]
    report = shadow.evaluate(PRM, PRM, logs)
    assert report["players"] == 5 and report["messages"] == 300
    assert sum(b["count"] for b in report["buckets"]) == 300
    assert sum(b["llm_calls"] for b in report["buckets"]) == report["llm_calls"]
    assert report["buckets"][0]["llm_calls"] >= 5 * 9  # the cold start (n = 1..9 after the message) asks every time
    assert report["fidelity"]["compared"] == 5 * 50
    assert report["unanswered"] == 0
    # every call granted after the cold start took a token: at most B + W-refills per player
    late = report["llm_calls"] - 5 * 9
    assert late <= 5 * (3 + 51 * 3 / 100)
    # the budget: a larger window (a smaller budget) never asks more often
    tight = shadow.evaluate(PRM, shadow.candidate_params(params.DEFAULT_SNAPSHOT, {"llm_budget_window": 1000}), logs)
    assert tight["llm_calls"] <= report["llm_calls"]


def test_evaluate_counts_only_shadow_messages_in_the_window(corpus):
    lines, deltas = corpus
    player = players(1, messages=40, corpus_size=len(lines))[0]
    log, _ = shadow_log(player, lines, deltas)
    for ev in log[40:]:  # about half-way the player leaves shadow
        if ev.kind == "message":
            ev.mode = "bayes"
    shadow_messages = sum(ev.kind == "message" and ev.mode == "shadow" for ev in log)
    report = shadow.evaluate(PRM, PRM, [(player.ids["reference"], log)])
    assert report["messages"] == shadow_messages
    since = log[10].occurred_at
    report = shadow.evaluate(PRM, PRM, [(player.ids["reference"], log)], since=since)
    assert report["messages"] == sum(
        ev.kind == "message" and ev.mode == "shadow" and ev.occurred_at >= since for ev in log
    )


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ([1], "must be a JSON object"),
        ({"no_such_row": 1}, "not a parameter"),
        ({"lexicon_positive": ["nice"]}, "cannot be replayed"),
        ({"llm_budget_window": 0}, "llm_budget_window"),
        ({"feature_warm": {"passion": 2}}, "feature_warm"),
        ({"feature_warm": {"charm": 0.2}}, "unknown metric"),
    ],
)
def test_bad_overrides_are_22023(overrides, match):
    with pytest.raises(BayesError, match=match) as err:
        shadow.candidate_params(params.DEFAULT_SNAPSHOT, overrides)
    assert err.value.sqlstate == "22023"


def _synthetic(weights, intercept, rows, noise, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random((rows, len(shadow.FEATURE_NAMES))) < 0.3).astype(float)
    y = intercept + x @ weights + rng.normal(0.0, noise, size=(rows, len(vocab.METRIC_NAMES)))
    return x, y


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_calibration_recovers_known_weights(seed):
    """LLM evidence a known linear function of the features plus noise: the fit finds it."""
    rng = np.random.default_rng(seed)
    weights = rng.uniform(-0.5, 0.5, size=(len(shadow.FEATURE_NAMES), len(vocab.METRIC_NAMES)))
    intercept = rng.uniform(-0.2, 0.2, size=len(vocab.METRIC_NAMES))
    rows = 4000
    noise = 0.1
    x, y = _synthetic(weights, intercept, rows, noise, seed)
    proposal = shadow.fit_evidence(x.tolist(), y.tolist(), PRM, ridge=0.0)
    # the standard error of a coefficient is about noise / sqrt(rows * 0.3 * 0.7); 6 of them, and the rounding
    tolerance = 6 * noise / math.sqrt(rows * 0.21) + 1e-4
    for m, metric in enumerate(vocab.METRIC_NAMES):
        assert proposal["feature_intercept"][metric] == pytest.approx(intercept[m], abs=2 * tolerance)
        for j, name in enumerate(shadow.FEATURE_NAMES):
            assert proposal[f"feature_{name}"][metric] == pytest.approx(weights[j, m], abs=tolerance)


def test_the_ridge_keeps_the_weight_of_a_feature_never_seen():
    x, y = _synthetic(np.zeros((len(shadow.FEATURE_NAMES), 4)), np.zeros(4), 500, 0.05, 1)
    never = shadow.FEATURE_NAMES.index("absent")
    x[:, never] = 0.0
    proposal = shadow.fit_evidence(x.tolist(), y.tolist(), PRM, ridge=1.0)
    assert proposal["feature_absent"] == {
        name: round(v, 4) for name, v in zip(vocab.METRIC_NAMES, PRM.g["feature_absent"])
    }
    # and the proposal is a valid set of parameter rows
    shadow.candidate_params(params.DEFAULT_SNAPSHOT, proposal)


def test_the_fit_matches_numpy_least_squares_with_ridge_zero():
    x, y = _synthetic(np.full((len(shadow.FEATURE_NAMES), 4), 0.1), np.zeros(4), 300, 0.2, 7)
    proposal = shadow.fit_evidence(x.tolist(), y.tolist(), PRM, ridge=0.0)
    design = np.hstack([np.ones((300, 1)), x])
    solution = np.linalg.lstsq(design, y, rcond=None)[0]
    for m, metric in enumerate(vocab.METRIC_NAMES):
        assert proposal["feature_intercept"][metric] == pytest.approx(round(float(solution[0, m]), 4), abs=1e-4)


def test_the_verdict():
    def fid(c, a):
        return {"fidelity": {"compared": 10, "composite_mad": c, "boss_ready_agreement": a}}

    assert shadow.verdict(fid(2, 0.9), fid(1, 0.9)) == "better"
    assert shadow.verdict(fid(2, 0.9), fid(1, 0.95)) == "better"
    assert shadow.verdict(fid(2, 0.9), fid(3, 0.9)) == "worse"
    assert shadow.verdict(fid(2, 0.9), fid(1, 0.8)) == "mixed"
    assert shadow.verdict(fid(2, 0.9), fid(2, 0.9)) == "same"


def test_design_rows_follow_the_feature_names():
    assert shadow.FEATURE_NAMES == tuple(encoder.FEATURES)
    row = shadow.design_row(["warm", "short"])
    assert sum(row) == 2 and row[shadow.FEATURE_NAMES.index("warm")] == 1
    assert shadow.llm_evidence({"trust": -4}) == [0.0, 0.0, -0.4, 0.0]
