"""bayes_engine.model: MODEL.md sections 4-8 as math (metrics, vices, mood,
timing, skip and delay, decay, readiness and fallback, LLM scores, outcomes,
chapters).

Each formula is checked against an independent computation (numpy, scipy,
closed forms written out here) and the invariants with hypothesis.
"""

import copy
import math

import numpy as np
import pytest
from bayes_dev import reference
from bayes_dev.states import HOUR, T0, fresh, states
from bayes_engine import model, vocab
from bayes_engine.errors import BayesError
from bayes_engine.params import DEFAULT_PARAMS as P
from hypothesis import given
from hypothesis import strategies as hs
from scipy import integrate, stats

# ---------------------------------------------------------------- 4.1 and 4.3 metrics


@given(
    states(),
    hs.lists(hs.floats(0, 3), min_size=4, max_size=4),
    hs.lists(hs.floats(0, 3), min_size=4, max_size=4),
    hs.floats(0, 10 * HOUR),
)
def test_metric_update_is_the_discounted_beta_update(s, plus, minus, dt):
    before = copy.deepcopy(s)
    s["b"] = [1.0, 2.0, 4.5, 0.0, T0]
    applied = model.update_metrics(s, plus, minus, P, T0 + dt)
    leak = math.exp(-((T0 + dt) - T0) / HOUR)  # the elapsed time as the epoch arithmetic sees it
    for j, key in enumerate(vocab.METRIC_KEYS):
        e_plus, e_minus = applied[j]
        # one message is worth at most one observation, half while n < 10
        cap = 0.5 if before["n"] < 10 else 1.0
        assert e_plus + e_minus <= cap + 1e-12
        # never more than the budget left after the leak
        spent = [1.0, 2.0, 4.5, 0.0][j] * leak
        assert e_plus + e_minus <= max(0.0, 5.0 - spent) + 1e-12
        assert s["b"][j] == pytest.approx(spent + e_plus + e_minus, rel=1e-12, abs=1e-15)
        # the ratio of positive to negative evidence is kept by scaling
        if plus[j] + minus[j] > 0 and e_plus + e_minus > 0:
            assert e_plus * minus[j] == pytest.approx(e_minus * plus[j], rel=1e-9, abs=1e-12)
        # discount towards the prior, then the evidence
        a, b = before["m"][key]
        a0, b0 = before["mp"][key]
        assert s["m"][key][0] == pytest.approx(a0 + 0.98 * (a - a0) + e_plus, rel=1e-12)
        assert s["m"][key][1] == pytest.approx(b0 + 0.98 * (b - b0) + e_minus, rel=1e-12)
    assert s["b"][4] == T0 + dt


def test_evidence_scaling_and_cold_start_halving_worked_by_hand():
    s = fresh(1)
    s["n"] = 3
    applied = model.update_metrics(s, [0.56 + 0.35, 0, 0.3, 0], [0, 0, 0.25, 0], P, T0)
    # intimacy 0.91 <= 1: halved to 0.455; trust 0.30 + 0.25 = 0.55: halved to 0.15 and 0.125
    assert applied[0] == pytest.approx((0.455, 0.0))
    assert applied[2] == pytest.approx((0.15, 0.125))
    s["n"] = 10
    applied = model.update_metrics(s, [1.2, 0, 0, 0], [0.4, 0, 0, 0], P, T0)
    # 1.6 > 1: scaled to 0.75 / 0.25; not halved any more
    assert applied[0] == pytest.approx((0.75, 0.25))


def test_mixed_evidence_raises_both_alpha_and_beta():
    s = fresh(3)
    s["n"] = 20
    a, b = s["m"]["p"]
    model.update_metrics(s, [0, 0.49, 0, 0], [0, 0.42, 0, 0], P, T0)
    assert s["m"]["p"][0] > a and s["m"]["p"][1] > b


def test_no_evidence_pulls_towards_the_prior_geometrically():
    s = fresh(2)
    s["m"]["i"] = [40.0, 3.0]
    a0, b0 = s["mp"]["i"]
    for k in range(1, 30):
        model.update_metrics(s, [0] * 4, [0] * 4, P, T0)
        assert s["m"]["i"][0] - a0 == pytest.approx((40.0 - a0) * 0.98**k, rel=1e-12)
        assert s["m"]["i"][1] - b0 == pytest.approx((3.0 - b0) * 0.98**k, rel=1e-12)


def test_spam_stops_moving_the_score():
    s = fresh(1)
    s["n"] = 50
    t = T0
    means = []
    for _ in range(200):  # "love love love" every second: warm, +0.49 passion each time
        t += 1.0
        model.update_metrics(s, [0, 0.49, 0, 0], [0, 0, 0, 0], P, t)
        means.append(s["m"]["p"][0] / sum(s["m"]["p"]))
    # about 5 units of budget in the first seconds, then (almost) nothing gets through
    # and the discount pulls the mean back down towards the prior
    assert s["b"][1] == pytest.approx(5.0, abs=0.06)
    assert max(means) == means[10] or max(means) - means[-1] > 0.05
    assert means[-1] < max(means)


@given(hs.floats(0, 5), hs.floats(0, 100 * HOUR), hs.floats(0, 100 * HOUR))
def test_budget_leak_composes(spent, dt1, dt2):
    s = fresh(1)
    s["b"] = [spent, 0, 0, 0, T0]
    model.update_metrics(s, [0] * 4, [0] * 4, P, T0 + dt1)
    model.update_metrics(s, [0] * 4, [0] * 4, P, T0 + dt1 + dt2)
    assert s["b"][0] == pytest.approx(spent * math.exp(-(dt1 + dt2) / HOUR), rel=1e-9, abs=1e-300)


# ---------------------------------------------------------------- 4.2 vices, mood, timing


def numpy_transition(volatility):
    a = np.array(P.g["mood_transition"])
    out = a.copy()
    for r in range(6):
        d = a[r, r]
        nd = max(0.3, d / volatility) if volatility > 1 else min(0.8, d / volatility)
        out[r] = a[r] * (1 - nd) / (1 - d)
        out[r, r] = nd
    return out


@pytest.mark.parametrize("chapter", [1, 2, 3, 4, 5])
def test_chapter_transition_matches_numpy(chapter):
    v = P.chapter(chapter).mood_volatility
    got = np.array(model.chapter_transition(P.g["mood_transition"], v))
    np.testing.assert_allclose(got, numpy_transition(v), rtol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=1e-12)


def test_volatility_one_clips_a_personalised_diagonal():
    a = [[0.9, 0.02, 0.02, 0.02, 0.02, 0.02]] + [[1 / 6] * 6 for _ in range(5)]
    got = model.chapter_transition(a, 1.0)
    assert got[0][0] == 0.8 and sum(got[0]) == pytest.approx(1.0)
    # a row with nothing off the diagonal: the new diagonal 1/1.3, the rest spread evenly
    row = model.chapter_transition([[1.0, 0, 0, 0, 0, 0]] + a[1:], 1.3)[0]
    assert row[0] == pytest.approx(1 / 1.3)
    assert row[1:] == pytest.approx([(1 - 1 / 1.3) / 5] * 5)


@given(
    hs.lists(hs.floats(0.001, 1), min_size=6, max_size=6), hs.sets(hs.integers(0, 13), max_size=8), hs.integers(1, 5)
)
def test_mood_step_matches_numpy_and_is_normalised(belief, symbols, chapter):
    b = np.array(belief) / sum(belief)
    a = numpy_transition(P.chapter(chapter).mood_volatility)
    e = np.array(P.g["mood_emission"])
    want = b @ a
    if symbols:
        want = want * np.prod(e[:, sorted(symbols)], axis=1)
    want = want / want.sum()
    got = model.mood_step(
        list(b),
        model.chapter_transition(P.g["mood_transition"], P.chapter(chapter).mood_volatility),
        P.g["mood_emission"],
        sorted(symbols),
    )
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
    assert math.fsum(got) == pytest.approx(1.0, abs=1e-12)


def test_mood_step_falls_back_to_predict_only_when_the_product_underflows():
    b = [0.40, 0.25, 0.10, 0.10, 0.05, 0.10]
    a = P.g["mood_transition"]
    zero = [[0.0] * 14 for _ in range(6)]
    predicted = (np.array(b) @ np.array(a)).tolist()
    assert model.mood_step(b, a, zero, [0, 1]) == pytest.approx(predicted, rel=1e-12)
    assert model.mood_step(b, a, P.g["mood_emission"], []) == pytest.approx(predicted, rel=1e-12)


@given(hs.floats(-5, 15), hs.floats(0.1, 1e4), hs.one_of(hs.none(), hs.floats(0, 40000)))
def test_timing_update_is_the_normal_conjugate_update(mu, tau, gap):
    s = fresh(1)
    s["g"] = [mu, tau]
    model.update_timing(s, gap, P)
    if gap is None or gap > 21600:
        assert s["g"] == [mu, tau]
        return
    x = math.log(max(gap, 1.0))
    # posterior of a Normal mean with known observation precision 1: precision adds,
    # the mean is the precision-weighted average
    assert s["g"][1] == pytest.approx(tau + 1.0)
    assert s["g"][0] == pytest.approx((tau * mu + x) / (tau + 1.0), rel=1e-12, abs=1e-12)


def test_vice_summary_against_numpy():
    s = fresh(1)
    s["d"] = [1.0, 3.5, 1.0, 2.0, 1.0, 1.0, 6.0, 1.0]
    got = model.vice_summary(s)
    p = np.array(s["d"]) / sum(s["d"])
    assert [name for name, _ in got["top"]] == ["dark_humor", "risk_taking", "sexuality"]
    assert got["top"][0][1] == pytest.approx(p[6])
    assert got["entropy_bits"] == pytest.approx(stats.entropy(p, base=2))


# ---------------------------------------------------------------- 4.4 skip and delay


def skip_probability(a_skip, a_respond, cap, run):
    """P(skip) = E[min(theta, cap)] * 0.5^run, theta ~ Beta, by numerical integration."""
    dist = stats.beta(a_skip, a_respond)
    below, _ = integrate.quad(lambda t: t * dist.pdf(t), 0, cap)
    return (below + cap * dist.sf(cap)) * 0.5**run


@pytest.mark.parametrize("chapter, run", [(1, 0), (1, 1), (3, 0), (5, 0)])
def test_skip_frequency_matches_the_thompson_probability(chapter, run):
    draws = 20000
    skips = 0
    ps = []
    for n in range(draws):
        s = fresh(chapter)
        s["k"][2] = run
        skip, p = model.decide_skip(s, P, "player-x", n, None)
        skips += skip
        ps.append(p)
        assert s["k"][2] == (run + 1 if skip else 0)
    cp = P.chapter(chapter)
    want = skip_probability(cp.skip_prior_skip, cp.skip_prior_respond, cp.skip_cap, run)
    se = math.sqrt(want * (1 - want) / draws)
    assert abs(skips / draws - want) < 4.5 * se
    assert abs(np.mean(ps) - want) < 4.5 * np.std(ps) / math.sqrt(draws)
    assert max(ps) <= cp.skip_cap * 0.5**run


def test_never_more_than_two_skips_in_a_row():
    s = fresh(1)
    s["k"] = [1000.0, 0.001, 2]  # theta near 1: it would always skip
    skip, p = model.decide_skip(s, P, "u", 1, None)
    assert (skip, p) == (False, 0.0) and s["k"][2] == 0


def test_delay_follows_the_posterior_predictive():
    s = fresh(3)
    s["g"] = [math.log(200.0), 4.0]
    cp = P.chapter(3)
    delays = np.array([model.reply_delay(s, P, "u", n, None) for n in range(20000)])
    assert delays.min() >= 1.0 and delays.max() <= cp.delay_cap_s
    # delay = min(cap, max(1, coef * e^y)), y ~ N(mu, 1/tau + 1): compare quantiles inside the clip
    sd = math.sqrt(1 / 4.0 + 1.0)
    for q in (0.1, 0.25, 0.5, 0.75):
        want = min(cp.delay_cap_s, max(1.0, cp.delay_coef * math.exp(stats.norm.ppf(q, math.log(200.0), sd))))
        assert np.quantile(delays, q) == pytest.approx(want, rel=0.05)


# ---------------------------------------------------------------- 5 decay


def decayed(s, last, decayed_at, now):
    out = copy.deepcopy(s)
    model.decay(out, P, last, decayed_at, now)
    return out


@given(states(), hs.floats(0, 400), hs.floats(0, 1), hs.floats(0, 1))
def test_decay_composes_over_any_cut_points(s, hours, cut1, cut2):
    last = T0
    end = T0 + hours * HOUR
    t1, t2 = sorted((T0 + cut1 * hours * HOUR, T0 + cut2 * hours * HOUR))
    once = decayed(s, last, None, end)
    steps = decayed(s, last, None, t1)
    steps = decayed(steps, last, t1, t2)
    steps = decayed(steps, last, t2, end)
    for key in vocab.METRIC_KEYS:
        assert steps["m"][key] == pytest.approx(once["m"][key], rel=1e-9)
    assert steps["d"] == pytest.approx(once["d"], rel=1e-9)
    assert steps["h"] == pytest.approx(once["h"], rel=1e-9, abs=1e-12)


@given(states(), hs.floats(0, 2000))
def test_decay_never_raises_a_mean_and_moves_only_metrics_vices_mood(s, hours):
    out = decayed(s, T0, None, T0 + hours * HOUR)
    for key in vocab.METRIC_KEYS:
        a, b = s["m"][key]
        a2, b2 = out["m"][key]
        assert a2 / (a2 + b2) <= a / (a + b) * (1 + 1e-12)
        assert a2 > 0 and b2 > 0
    assert math.fsum(out["h"]) == pytest.approx(1.0)
    for key in ("v", "c", "n", "nc", "mp", "k", "g", "b", "dd"):
        assert out[key] == s[key]


def test_decay_formula_worked_by_hand():
    s = fresh(2)  # grace 16 h, rate 0.006 / h
    s["m"]["t"] = [30.0, 10.0]  # mean .75, strength 40; prior (4.95, 6.05): mean .45, strength 11
    out = decayed(s, T0, None, T0 + (16 + 100) * HOUR)
    f = math.exp(-0.006 * 100)
    strength = 11 + (40 - 11) * f
    mean = 0.45 + (0.75 - 0.45) * f
    assert out["m"]["t"] == pytest.approx([mean * strength, (1 - mean) * strength], rel=1e-12)
    # vices: grace 48 h, rate 0.002 / h over 68 h
    s["d"] = [5.0] + [1.0] * 7
    out = decayed(s, T0, None, T0 + (16 + 100) * HOUR)
    assert out["d"][0] == pytest.approx(1 + 4 * math.exp(-0.002 * 68), rel=1e-12)


def test_a_mean_below_the_prior_keeps_its_mean_and_widens():
    s = fresh(1)
    s["m"]["p"] = [2.0, 18.0]  # mean .1 < .5
    out = decayed(s, T0, None, T0 + 500 * HOUR)
    a, b = out["m"]["p"]
    assert a / (a + b) == pytest.approx(0.1, rel=1e-12)
    assert a + b < 20.0


def test_grace_boundary_is_strict():
    s = fresh(1)
    s["m"]["i"] = [10.0, 2.0]
    assert decayed(s, T0, None, T0 + 8 * HOUR) == s
    assert decayed(s, T0, None, T0 + 8 * HOUR + 1)["m"]["i"] != s["m"]["i"]
    assert model.decay_hours(None, None, T0 + 1e6, 8) == 0.0  # no message yet: left alone
    assert model.decay_hours(T0, T0 + 20 * HOUR, T0 + 21 * HOUR, 8) == pytest.approx(1.0)


# ---------------------------------------------------------------- 6 and 7


@given(states())
def test_readiness_is_the_edgeworth_expansion(s):
    """Section 6's formula, computed independently (bayes_dev.reference: scipy's Beta moments)."""
    metrics, c, sd = model.metric_summary(s)
    means = [a / (a + b) for a, b in s["m"].values()]
    var = [a * b / ((a + b) ** 2 * (a + b + 1)) for a, b in s["m"].values()]
    w = np.array(vocab.METRIC_WEIGHTS)
    assert c == pytest.approx(100 * float(w @ means), rel=1e-12)
    assert sd == pytest.approx(100 * math.sqrt(float((w**2) @ var)), rel=1e-12)
    kappa = np.zeros(4)
    for (a, b), weight in zip(s["m"].values(), vocab.METRIC_WEIGHTS):
        mean, variance, skew, kurtosis = (float(x) for x in stats.beta.stats(a, b, moments="mvsk"))
        scale = 100 * weight
        kappa += [scale * mean, scale**2 * variance, scale**3 * skew * variance**1.5, scale**4 * kurtosis * variance**2]
    assert model.composite_cumulants(s) == pytest.approx(tuple(kappa), rel=1e-9, abs=1e-12)
    expected = reference.edgeworth(s, P.chapter(s["c"]).boss_threshold)
    boss = model.boss_readiness(s, P)
    assert boss["p_ready"] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert boss["ready"] == (boss["p_ready"] >= 0.7)


@pytest.mark.parametrize(
    "p, label",
    [
        (0.95, "high"),
        (0.05, "high"),
        (0.9, "medium"),
        (0.7, "medium"),
        (0.25, "medium"),
        (0.1, "medium"),
        (0.6, "low"),
        (0.3, "low"),
        (0.45, "low"),
    ],
)
def test_confidence_labels(p, label):
    assert model.confidence_label(p) == label


def test_fallback_rules_fire_in_order():
    s = fresh(1)
    assert model.fallback_reason(s, P, 0.5, 0, 0.0) == "cold_start"
    s["n"] = 10
    assert model.fallback_reason(s, P, 0.5, 0, 0.0) == "no_signals"
    assert model.fallback_reason(s, P, 0.5, 2, 0.0) == "uncertain"
    assert model.fallback_reason(s, P, 0.95, 2, 0.0) == "audit"
    assert model.fallback_reason(s, P, 0.05, 2, 0.0199) == "audit"
    assert model.fallback_reason(s, P, 0.05, 2, 0.02) == "bayesian_sufficient"
    # Without a message: rules 1 and 3 only.
    assert model.fallback_reason(s, P, 0.95) == "bayesian_sufficient"
    assert model.fallback_reason(s, P, 0.5) == "uncertain"
    s["n"] = 9
    assert model.fallback_reason(s, P, 0.95) == "cold_start"


@pytest.mark.parametrize("p_ready, reason", [(0.1, "bayesian_sufficient"), (0.9, "bayesian_sufficient")])
def test_the_uncertain_band_is_open(p_ready, reason):
    s = fresh(1)
    s["n"] = 50
    assert model.fallback_reason(s, P, p_ready, 2, 0.5) == reason
    assert model.fallback_reason(s, P, math.nextafter(p_ready, 0.5), 2, 0.5) == "uncertain"


def test_a_message_refills_the_budget_and_a_grant_takes_one_token():
    s = fresh(1)
    s["n"] = 50
    s["lb"] = 1.0
    decision = model.message_fallback(s, P, 0.5, 3, "player-1", None)
    assert decision == {"needed": True, "reason": "uncertain", "budget_left": pytest.approx(0.03)}
    assert s["lb"] == 0.03  # 1 + 3/100 - 1, in whole micro-tokens
    decision = model.message_fallback(s, P, 0.5, 3, "player-1", None)
    assert decision == {"needed": False, "reason": "uncertain", "budget_left": 0.06}
    decision = model.message_fallback(s, P, 0.5, 0, "player-1", None)
    assert decision == {"needed": False, "reason": "no_signals", "budget_left": 0.09}
    s["lb"] = 3.0
    model.message_fallback(s, P, 0.99, 3, "player-1", None)
    assert s["lb"] == 3.0  # capped at B; bayesian_sufficient (or an audit) decides the rest


def test_cold_start_is_granted_and_free():
    s = fresh(1)
    s["lb"] = 0.0
    for n in range(1, 10):
        s["n"] = n
        decision = model.message_fallback(s, P, 0.5, 0, "player-1", None)
        assert decision["needed"] and decision["reason"] == "cold_start"
    assert s["lb"] == pytest.approx(9 * 0.03)


# ---------------------------------------------------------------- 7 LLM scores, 4.4 outcomes, 8 chapters


def test_llm_deltas_become_evidence_unhalved_and_unbudgeted():
    s = fresh(1)
    s["b"] = [5.0, 5.0, 5.0, 5.0, T0]
    before = copy.deepcopy(s["m"])
    model.apply_llm_scores(s, P, {"intimacy": 4, "trust": -2.5, "passion": 0})
    assert s["m"]["i"] == [before["i"][0] + 0.4, before["i"][1]]
    assert s["m"]["t"] == [before["t"][0], before["t"][1] + 0.25]
    assert s["m"]["p"] == before["p"] and s["m"]["s"] == before["s"]


@pytest.mark.parametrize(
    "deltas",
    [
        {},
        {"charm": 1},
        {"trust": 11},
        {"trust": -10.5},
        {"trust": "3"},
        {"trust": True},
        {"trust": None},
        {"trust": float("nan")},
        [1, 2],
    ],
)
def test_bad_llm_deltas_are_22023(deltas):
    with pytest.raises(BayesError) as exc:
        model.apply_llm_scores(fresh(1), P, deltas)
    assert exc.value.sqlstate == "22023"


@pytest.mark.parametrize(
    "decision, engaged, which", [("skip", True, 0), ("skip", False, 1), ("reply", True, 1), ("reply", False, 0)]
)
def test_outcomes_update_the_skip_beta(decision, engaged, which):
    s = fresh(1)
    k = list(s["k"])
    model.record_outcome(s, P, decision, engaged)
    k[which] += 1
    assert s["k"] == k


def test_chapter_transition_mixes_towards_the_new_prior():
    s = fresh(1)
    s["m"]["i"] = [10.0, 4.0]
    s["d"][2] = 4.0
    h = list(s["h"])
    assert model.advance_chapter(s, P, 3)
    prior = P.metric_prior(3)
    assert s["m"]["i"] == pytest.approx([0.7 * 10 + 0.3 * prior["i"][0], 0.7 * 4 + 0.3 * prior["i"][1]])
    assert s["mp"] == {k: list(v) for k, v in prior.items()}
    assert s["c"] == 3 and s["nc"] == 0
    assert s["k"] == [1.5, 8.5, 0]
    assert s["g"] == [math.log(180), 1.0]
    assert s["d"][2] == 4.0 and s["h"] == h
    assert not model.advance_chapter(s, P, 3)
    with pytest.raises(BayesError) as exc:
        model.advance_chapter(s, P, 2)
    assert exc.value.sqlstate == "22023"
