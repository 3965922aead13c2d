"""bayes_engine.readiness: boss readiness (MODEL.md section 6) by the normal
approximation and by Monte Carlo, the confidence labels, and the fallback
check of a stored state (section 7, rules 1, 2 and 4).

The reference for P_ready = Pr(C >= T) is an independent numerical
integration: C = 100 * sum_k w_k * theta_k with independent Beta thetas,
so its distribution is the convolution of four scaled Beta densities. Each
is discretised into exact bin masses (scipy's Beta CDF) on a 0.001-point
grid and convolved with an FFT. The discretisation moves the composite by
at most 0.002 points, which changes P by less than 1e-3. A million-draw
estimate checks that reference.

Section 6 asks the Monte Carlo method to agree with the normal
approximation within 0.01. On a grid of realistic states (every chapter,
strengths from the chapter's prior to near the most a metric reaches,
composites from 10 points below the threshold to 10 above) they agree for
most states. Where they do not, the test finds out which of the two is off
by comparing both with the reference, and says so in an xfail reason
(pytest -rx shows them). There are two causes:

- Monte Carlo noise. With 10,000 draws the sd is 0.005 near P = 0.5, so
  the tolerance 0.01 is only two of its sds.
- The normal approximation's own error. Each Beta is skewed, more so the
  further its mean is from 1/2 and the smaller its strength. The sum of
  four stays skewed, and Phi((E[C] - T) / sd) underestimates P near the
  threshold: by up to about 0.013 in chapters 4 and 5 (means 0.7-0.8), and
  by up to 0.008 in chapters 2 and 3.

A Monte Carlo result further from the reference than its noise explains
fails, and so does a normal approximation more than 0.01 off outside
chapters 4 and 5, or more than 0.025 off anywhere. The seeds are the
engine's own (player id, n, "readiness"). None was chosen to make a test
pass.
"""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from bayes_engine import codec, model, readiness, rng, vocab
from bayes_engine.errors import BayesError
from bayes_engine.params import DEFAULT_PARAMS as P
from bayes_engine.params import DEFAULT_SNAPSHOT, Params
from scipy import signal, stats

WEIGHTS = dict(zip(vocab.METRIC_KEYS, vocab.METRIC_WEIGHTS))
TOLERANCE = 0.01  # MODEL.md section 6
DRAWS = readiness.MONTE_CARLO_DRAWS


# --------------------------------------------------------------------------
# Independent references
# --------------------------------------------------------------------------


def composite_moments(state):
    """E[C] and sd(C) in closed form, written out here (not model.metric_summary)."""
    mean = var = 0.0
    for key, w in WEIGHTS.items():
        a, b = state["m"][key]
        s = a + b
        mean += w * a / s
        var += w * w * a * b / (s * s * (s + 1.0))
    return 100.0 * mean, 100.0 * math.sqrt(var)


def exact_p_ready(state, threshold, h=0.001):
    """Pr(C >= threshold) by convolving the four scaled Beta distributions (see the module docstring)."""
    pmf = np.ones(1)
    for key, w in WEIGHTS.items():
        a, b = state["m"][key]
        bins = int(round(100.0 * w / h))
        mass = np.diff(stats.beta.cdf(np.linspace(0.0, 1.0, bins + 1), a, b))
        pmf = signal.fftconvolve(pmf, mass)
    pmf = np.clip(pmf, 0.0, None)
    pmf /= pmf.sum()
    # Index j of the sum is four bin indices; each bin's mass sits at its centre.
    centres = (np.arange(pmf.size) + 2.0) * h
    return float(pmf[centres >= threshold].sum())


def monte_carlo_sd(p, draws=DRAWS):
    return math.sqrt(max(p * (1.0 - p), 1.0 / draws) / draws)


# --------------------------------------------------------------------------
# The grid: every chapter, three strengths, composites around the threshold
# --------------------------------------------------------------------------

# Per-metric deviations from the composite's mean with sum_k w_k * SPREAD_k = 0:
# the metrics differ, the composite stays where it is put.
SPREAD = {"i": 0.05, "p": -0.06, "t": 0.02, "s": -0.025}
# Strength alpha+beta of each metric: the chapter's prior strength (a player
# new to the chapter), +10, and +45 (near the most a metric reaches: the
# discount 0.98 caps the evidence a player accumulates at 1 / (1 - 0.98) = 50).
EXTRA_STRENGTHS = (0, 10, 45)
OFFSETS = (-10, -4, -1, 0, 1, 4, 10)  # composite - threshold, in points


def grid_state(chapter, extra_strength, offset, n=25):
    threshold = P.chapter(chapter).boss_threshold
    state = codec.default_state(chapter, P)
    prior = P.metric_prior(chapter)
    for key in vocab.METRIC_KEYS:
        strength = sum(prior[key]) + extra_strength
        mean = (threshold + offset) / 100.0 + SPREAD[key]
        state["m"][key] = [mean * strength, (1.0 - mean) * strength]
    state["n"] = state["nc"] = n
    return state


GRID = [(c, extra, off) for c in vocab.CHAPTERS for extra in EXTRA_STRENGTHS for off in OFFSETS]


def grid_id(case):
    c, extra, off = case
    return f"ch{c}-S0+{extra}-C{off:+d}"


def player_of(case):
    """The player id whose engine seed draws this state's Monte Carlo sample."""
    return "grid-" + grid_id(case)


@pytest.fixture(scope="module")
def exact():
    """The reference P_ready of every grid state, computed once."""
    out = {}
    for case in GRID:
        state = grid_state(*case)
        out[case] = exact_p_ready(state, P.chapter(case[0]).boss_threshold)
    return out


def test_grid_states_have_the_intended_composites():
    for case in GRID:
        state = grid_state(*case)
        c, extra, off = case
        codec.validate(state, "grid state")
        composite, _ = composite_moments(state)
        assert composite == pytest.approx(P.chapter(c).boss_threshold + off, abs=1e-9)
        _, model_composite, _ = model.metric_summary(state)
        assert model_composite == pytest.approx(composite, abs=1e-9)


@pytest.mark.parametrize("state_key", [(1, 0, 0), (5, 0, 1), (4, 10, -1), (3, 45, 4)], ids=grid_id)
def test_the_reference_integration_agrees_with_a_million_draws(state_key):
    state = grid_state(*state_key)
    threshold = P.chapter(state_key[0]).boss_threshold
    reference = exact_p_ready(state, threshold)
    draws = 1_000_000
    estimate = readiness.monte_carlo_probability(state, threshold, draws=draws, seed=20261120)
    assert abs(estimate - reference) <= 5 * monte_carlo_sd(reference, draws) + 1e-3


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_normal_method_is_phi_of_the_closed_form_moments(case):
    state = grid_state(*case)
    threshold = P.chapter(case[0]).boss_threshold
    mean, sd = composite_moments(state)
    result = readiness.readiness(state, P, "normal")
    assert result["p_ready"] == pytest.approx(stats.norm.cdf((mean - threshold) / sd), rel=1e-12, abs=1e-15)
    assert result["threshold"] == threshold
    assert result["composite"] == pytest.approx(mean, abs=1e-12)
    assert result["composite_sd"] == pytest.approx(sd, rel=1e-12)
    assert (result["method"], result["chapter"], result["n"]) == ("normal", case[0], 25)


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_monte_carlo_matches_the_reference_integration(case, exact):
    """The sampler itself is right: within 4 sd of its own noise of the exact value, on every grid state."""
    state = grid_state(*case)
    mc = readiness.readiness(state, P, "monte_carlo", user_id=player_of(case))["p_ready"]
    p = exact[case]
    assert abs(mc - p) <= 4 * monte_carlo_sd(p) + 1e-3, (mc, p)


@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_monte_carlo_agrees_with_the_normal_approximation_within_0_01(case, exact):
    state = grid_state(*case)
    threshold = P.chapter(case[0]).boss_threshold
    normal = readiness.readiness(state, P, "normal")["p_ready"]
    mc = readiness.readiness(state, P, "monte_carlo", user_id=player_of(case))["p_ready"]
    if abs(mc - normal) <= TOLERANCE:
        return
    # They disagree: which of the two is off, and by how much?
    p = exact[case]
    million = readiness.monte_carlo_probability(state, threshold, draws=1_000_000, seed=1)
    normal_error, noise = normal - p, mc - p
    numbers = (
        f"Monte Carlo {mc:.4f}, normal {normal:.4f}, exact {p:.4f} (1e6 draws: {million:.4f}); "
        f"normal - exact = {normal_error:+.4f}, Monte Carlo - exact = {noise:+.4f} "
        f"(Monte Carlo sd {monte_carlo_sd(p):.4f})"
    )
    if abs(noise) > 4 * monte_carlo_sd(p) + 1e-3:
        pytest.fail(f"Monte Carlo is off the exact value by more than its noise explains: {numbers}")
    cause = (
        "the normal approximation's own error"
        if abs(normal_error) > TOLERANCE
        else "mostly the normal approximation's error"
        if abs(normal_error) >= abs(noise)
        else "mostly Monte Carlo noise"
    )
    pytest.xfail(f"{cause}: {numbers}")


def test_normal_approximation_error_is_largest_in_the_skewed_chapters(exact):
    """Where the normal approximation misses by more than 0.01 on the grid: chapters 4 and 5 only, by < 0.025."""
    errors = {}
    for case in GRID:
        state = grid_state(*case)
        errors[case] = readiness.readiness(state, P, "normal")["p_ready"] - exact[case]
    worst = max(errors, key=lambda case: abs(errors[case]))
    assert abs(errors[worst]) < 0.025, (worst, errors[worst])
    beyond = sorted(case for case in GRID if abs(errors[case]) > TOLERANCE)
    assert {case[0] for case in beyond} <= {4, 5}, beyond
    for c in (1, 2, 3):
        assert max(abs(errors[case]) for case in GRID if case[0] == c) <= TOLERANCE


# --------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------


def test_the_same_seed_gives_the_same_result():
    state = grid_state(5, 0, 1)
    first = readiness.readiness(state, P, "monte_carlo", user_id="player-a", session_seed="run-1")
    again = readiness.readiness(copy.deepcopy(state), P, "monte_carlo", user_id="player-a", session_seed="run-1")
    assert first == again
    seed = rng.seed_of("player-a", state["n"], readiness.READINESS, "run-1")
    threshold = P.chapter(5).boss_threshold
    assert readiness.monte_carlo_probability(state, threshold, DRAWS, seed) == first["p_ready"]
    assert readiness.monte_carlo_probability(state, threshold, DRAWS, seed) == first["p_ready"]
    assert first["draws"] == DRAWS and first["method"] == "monte_carlo"


def test_the_seed_depends_on_the_player_the_message_count_and_the_session_seed():
    state = grid_state(3, 10, 0)
    values = {
        readiness.readiness(state, P, "monte_carlo", user_id=user, session_seed=session)["p_ready"]
        for user in ("a", "b", "c")
        for session in (None, "s1", "s2")
    }
    later = dict(state, n=state["n"] + 1)
    values.add(readiness.readiness(later, P, "monte_carlo", user_id="a")["p_ready"])
    # Ten independent draws of a count near 5,000 out of 10,000: almost never fewer than 5 distinct values.
    assert len(values) >= 5, values


def test_an_unknown_method_is_22023():
    with pytest.raises(BayesError) as err:
        readiness.readiness(grid_state(1, 0, 0), P, "bootstrap")
    assert err.value.sqlstate == "22023"


# --------------------------------------------------------------------------
# Confidence labels and the ready flag
# --------------------------------------------------------------------------


def below(x):
    return math.nextafter(x, -math.inf)


def above(x):
    return math.nextafter(x, math.inf)


@pytest.mark.parametrize(
    "p, label",
    [
        (0.0, "high"),
        (0.05, "high"),
        (below(0.1), "high"),
        (0.1, "medium"),
        (above(0.1), "medium"),
        (0.2, "medium"),
        (below(0.3), "medium"),
        (0.3, "low"),
        (above(0.3), "low"),
        (0.45, "low"),
        (below(0.6), "low"),
        (0.6, "low"),
        (above(0.6), "medium"),
        (0.75, "medium"),
        (below(0.9), "medium"),
        (0.9, "medium"),
        (above(0.9), "high"),
        (0.95, "high"),
        (1.0, "high"),
    ],
)
def test_confidence_label_boundaries(p, label):
    """MODEL.md 6: high when P > 0.9 or P < 0.1, medium when P > 0.6 or P < 0.3, else low."""
    assert model.confidence_label(p) == label


@pytest.mark.parametrize("method", readiness.METHODS)
def test_the_result_labels_its_own_probability(method):
    for case in GRID:
        result = readiness.readiness(grid_state(*case), P, method, user_id=player_of(case))
        assert result["confidence"] == model.confidence_label(result["p_ready"])
        assert result["ready"] is (result["p_ready"] >= 0.7)


def params_with(**global_values):
    snapshot = json.loads(json.dumps(DEFAULT_SNAPSHOT))
    snapshot["global"].update(global_values)
    return Params.from_snapshot(snapshot)


def test_ready_is_inclusive_at_the_ready_probability():
    state = grid_state(2, 10, 1)
    p = readiness.readiness(state, P, "normal")["p_ready"]
    assert readiness.readiness(state, params_with(ready_probability=p), "normal")["ready"] is True
    assert readiness.readiness(state, params_with(ready_probability=above(p)), "normal")["ready"] is False
    mc = readiness.readiness(state, P, "monte_carlo", user_id="x")["p_ready"]
    assert readiness.readiness(state, params_with(ready_probability=mc), "monte_carlo", user_id="x")["ready"] is True
    assert (
        readiness.readiness(state, params_with(ready_probability=above(mc)), "monte_carlo", user_id="x")["ready"]
        is False
    )


# --------------------------------------------------------------------------
# The fallback check (section 7, rules 1, 2 and 4)
# --------------------------------------------------------------------------

VARIANCE_THRESHOLDS = {"intimacy": 0.025, "passion": 0.025, "trust": 0.020, "secureness": 0.025}


def state_with(chapter, n, means, variances):
    """A state whose metric k has mean means[k] and variance variances[k] (strength mu(1-mu)/var - 1)."""
    state = codec.default_state(chapter, P)
    for key, name in zip(vocab.METRIC_KEYS, vocab.METRIC_NAMES):
        mu, var = means[name], variances[name]
        strength = mu * (1.0 - mu) / var - 1.0
        state["m"][key] = [mu * strength, (1.0 - mu) * strength]
    state["n"] = state["nc"] = n
    return state


def flat(value):
    return dict.fromkeys(vocab.METRIC_NAMES, value)


def at_composite(chapter, gap):
    """Equal means putting the composite at threshold + gap."""
    return flat((P.chapter(chapter).boss_threshold + gap) / 100.0)


LOW = flat(0.002)  # every metric well below its variance threshold
HIGH = flat(0.03)  # every metric above its threshold


def independent_reason(state):
    """MODEL.md 7's rules 1, 2 and 4 in order, from the state alone."""
    if state["n"] < 10:
        return "cold_start"
    for key, name in zip(vocab.METRIC_KEYS, vocab.METRIC_NAMES):
        a, b = state["m"][key]
        if a * b / ((a + b) ** 2 * (a + b + 1)) > VARIANCE_THRESHOLDS[name]:
            return "high_variance"
    composite, _ = composite_moments(state)
    if abs(composite - P.chapter(state["c"]).boss_threshold) < 5:
        return "critical_zone"
    return "bayesian_sufficient"


@pytest.mark.parametrize(
    "n, variances, gap, reason",
    [
        (0, HIGH, 0, "cold_start"),  # all three rules fire: the first wins
        (9, HIGH, 0, "cold_start"),
        (9, LOW, 20, "cold_start"),  # only rule 1
        (10, HIGH, 0, "high_variance"),  # rules 2 and 4 fire: rule 2 wins
        (10, HIGH, 20, "high_variance"),
        (10, LOW, 0, "critical_zone"),
        (10, LOW, 4.99, "critical_zone"),
        (10, LOW, -4.99, "critical_zone"),
        (10, LOW, 5.01, "bayesian_sufficient"),
        (10, LOW, -5.01, "bayesian_sufficient"),
        (500, LOW, 20, "bayesian_sufficient"),
    ],
)
@pytest.mark.parametrize("chapter", vocab.CHAPTERS)
def test_fallback_reasons_in_rule_order(chapter, n, variances, gap, reason):
    state = state_with(chapter, n, at_composite(chapter, gap), variances)
    result = readiness.fallback_check(state, P)
    assert result["reason"] == reason == independent_reason(state)
    assert result["needed"] is (reason != "bayesian_sufficient")
    composite, sd = composite_moments(state)
    assert result["composite"] == pytest.approx(composite, abs=1e-9)
    assert result["composite_sd"] == pytest.approx(sd, rel=1e-12)
    assert result["threshold"] == P.chapter(chapter).boss_threshold
    assert (result["chapter"], result["n"]) == (chapter, n)
    assert result["variances"] == pytest.approx(variances, rel=1e-9)


@pytest.mark.parametrize("metric", vocab.METRIC_NAMES)
def test_each_variance_threshold_is_strict(metric):
    """Rule 2 fires when a variance is above its threshold, not at it."""
    threshold = VARIANCE_THRESHOLDS[metric]
    means = at_composite(3, 20)
    over = state_with(3, 10, means, {**LOW, metric: threshold * (1 + 1e-9)})
    under = state_with(3, 10, means, {**LOW, metric: threshold * (1 - 1e-9)})
    assert readiness.fallback_check(over, P)["reason"] == "high_variance"
    assert readiness.fallback_check(under, P)["reason"] == "bayesian_sufficient"


def test_fallback_check_never_says_no_signals_and_agrees_with_the_rules_on_the_grid():
    for case in GRID:
        for n in (0, 9, 10, 200):
            state = grid_state(*case, n=n)
            reason = readiness.fallback_check(state, P)["reason"]
            assert reason == independent_reason(state)
            assert reason in ("cold_start", "high_variance", "critical_zone", "bayesian_sufficient")
