"""bayes_engine.readiness: boss readiness (MODEL.md section 6) by its three
methods against an exact oracle computed here, the confidence labels, the
seeds, and the fallback check of a stored state (section 7, rules 1 and 3).

The oracle. P_ready = Pr(C >= T) with C = sum_k c_k X_k, c_k = 100 w_k and
independent X_k ~ Beta(alpha_k, beta_k). Each scaled Beta c_k X_k is cut
into bins [j h, (j+1) h) whose masses are exact (scipy's regularised
incomplete beta, ``special.betainc``), over the range that holds all but
TAIL of its mass on each side; the four mass vectors are convolved with an
FFT. If the bin indexes of the four sum to J, then C lies in
[J h, (J + 4) h], so

    lo = sum of the masses of J with J h >= T
    hi = sum of the masses of J with (J + 4) h > T, plus the mass cut off

bracket the exact P: lo <= P <= hi. That is the oracle's own error bound,
hi - lo (about 4 h times the density of C at T), plus rounding: betainc is
accurate to about 1e-15 and the FFT's rounding is checked against a direct
convolution (test_the_fft_convolution_equals_the_direct_one), both far below
1e-9. The step is h = sd(C) / 1000, refined (divided by 4) for any case
where the bracket is too wide to decide the assertion. The point estimate
spreads each bin's mass evenly over it (C's offset in [J h, (J + 4) h] is then
an Irwin-Hall sum of four uniforms): its error is of second order in h,
checked by halving h, and a million draws check the whole.

The grid of section 6, three families of cases:

- FRESH: the fresh priors of every chapter, thresholds 30 to 90 (every
  whole point): 5 x 61 = 305 cases;
- RANDOM: 200 seeded states, 40 per chapter: each metric is its chapter's
  prior plus e_k pseudo-counts of evidence, the state's level e
  log-uniform on [0.5, 300] times a log-normal factor per metric (sd 1 in
  the log, capped at 300): strengths from the prior's to a few hundred,
  metrics unequally informed as the feature table makes them. The evidence
  is split between alpha and beta by a positivity common to the state
  plus noise per metric (sd 0.2), set so that (E[C] - T_c) / sd(C) is
  uniform on [-3, 3]: P_ready spans (0, 1);
- ENGINE: 120 states that the engine itself reaches, every 10th message of
  ten seeded conversations (two starting in each chapter) through the real
  decode/apply/encode cycle (varied messages and gaps, the stand-in LLM's
  deltas fed back when the fallback asks and at random, chapters advanced
  when the boss is ready).

Edgeworth (the default method) must be within 0.005 of every value of the
oracle's bracket on every case; Monte Carlo (10,000 draws, the engine's own
seeds) within 4 sqrt(p (1 - p) / 10,000) + 0.005 of the exact value; the
plain normal approximation (MODEL.md v1's method, kept for comparison)
within 0.04, its own documented bound (MODEL.md measured 0.034).

Outside the grid. The 0.005 of section 6 needs the four metrics' evidence to
be of comparable size. With each metric's evidence drawn independently
(log-uniform on [0.5, 300 - S0], split uniformly), 3 of 3,000 seeded states
were beyond 0.005 (worst 0.0085, all in chapter 1): one metric near its
prior's small strength (Beta(2, 6) for intimacy) next to metrics with
40-300 pseudo-counts, so that C is nearly one skewed, broad Beta, which a
fourth-order expansion fits less well. The engine does not make such
states (the discount 0.98 keeps every metric within about 50 pseudo-counts
of its prior, and the features feed all four);
test_edgeworth_outside_the_grid_an_unbalanced_state keeps the first
example found, 0.0083 off (the normal approximation: 0.013).
"""

from __future__ import annotations

import copy
import json
import math
import random

import numpy as np
import pytest
from bayes_engine import codec, events, model, readiness, rng, vocab
from bayes_engine.errors import BayesError
from bayes_engine.params import DEFAULT_PARAMS as P
from bayes_engine.params import DEFAULT_SNAPSHOT, Params
from scipy import signal, special, stats

SCALES = tuple(100.0 * w for w in vocab.METRIC_WEIGHTS)
DRAWS = readiness.MONTE_CARLO_DRAWS
EDGEWORTH_TOLERANCE = 0.005  # MODEL.md section 6
NORMAL_TOLERANCE = 0.04  # the normal approximation's own bound (MODEL.md: 0.034 measured)
TAIL = 1e-13  # the mass of each Beta left out of the bins on each side
STEPS_PER_SD = 1000  # h = sd(C) / STEPS_PER_SD


# --------------------------------------------------------------------------
# The oracle
# --------------------------------------------------------------------------


def composite_sd(state):
    """sd(C) in closed form, written out here."""
    var = 0.0
    for key, c in zip(vocab.METRIC_KEYS, SCALES):
        a, b = state["m"][key]
        s = a + b
        var += c * c * a * b / (s * s * (s + 1.0))
    return math.sqrt(var)


def composite_bins(state, h):
    """(masses, offset, cut): the distribution of the sum J of the four bin indexes.

    masses[i] is Pr(J = offset + i); `cut` the mass of the four Betas left
    outside their bins (at most 8 TAIL).
    """
    masses, offset, cut = np.ones(1), 0, 0.0
    for key, c in zip(vocab.METRIC_KEYS, SCALES):
        a, b = state["m"][key]
        first = math.floor(c * special.betaincinv(a, b, TAIL) / h)
        last = math.ceil(c * special.betainccinv(a, b, TAIL) / h)
        edges = np.minimum(np.arange(first, last + 1) * h / c, 1.0)
        cdf = special.betainc(a, b, edges)
        cut += cdf[0] + special.betaincc(a, b, edges[-1])
        masses = signal.fftconvolve(masses, np.diff(cdf))
        offset += first
    return np.clip(masses, 0.0, None), offset, cut


def irwin_hall4_sf(x):
    """Pr(U1 + U2 + U3 + U4 >= x) for independent uniforms on [0, 1]."""
    x = np.clip(x, 0.0, 4.0)
    cdf = sum((-1) ** k * math.comb(4, k) * np.where(x > k, (x - k) ** 4, 0.0) for k in range(5)) / 24.0
    return 1.0 - cdf


class Oracle:
    """The composite's bin masses at step h, for any number of thresholds."""

    def __init__(self, state, h):
        self.h = h
        self.masses, self.offset, self.cut = composite_bins(state, h)
        self.tail = np.concatenate([np.cumsum(self.masses[::-1])[::-1], [0.0]])

    def _at_least(self, j):
        """Pr(J >= j)."""
        return float(self.tail[min(max(j - self.offset, 0), self.masses.size)])

    def bracket(self, threshold):
        """(lo, estimate, hi) with lo <= Pr(C >= threshold) <= hi (see the module docstring)."""
        h = self.h
        k = math.ceil(threshold / h)  # J h >= T exactly when J >= k
        while (k - 1) * h >= threshold:
            k -= 1
        while k * h < threshold:
            k += 1
        lo = self._at_least(k)
        hi = min(1.0, self._at_least(k - 3) + self.cut)  # (J + 4) h > T exactly when J >= k - 3 (J h < T for J < k)
        j = np.arange(k - 4, k)
        inside = (j - self.offset >= 0) & (j - self.offset < self.masses.size)
        straddle = self.masses[j[inside] - self.offset] @ irwin_hall4_sf((threshold - j[inside] * h) / h)
        return lo, lo + float(straddle), hi


def exact_bracket(state, threshold, h=None):
    return Oracle(state, h or composite_sd(state) / STEPS_PER_SD).bracket(threshold)


def monte_carlo_bound(p, draws=DRAWS):
    """Section 6's tolerance of the Monte Carlo method around the exact p."""
    return 4.0 * math.sqrt(p * (1.0 - p) / draws) + 0.005


# --------------------------------------------------------------------------
# The three families of cases
# --------------------------------------------------------------------------

THRESHOLDS = tuple(range(30, 91))
RANDOM_SEED = 20260613
RANDOM_PER_CHAPTER = 40


def with_metrics(chapter, pairs, n=25):
    state = codec.default_state(chapter, P)
    state["m"] = {key: [float(a), float(b)] for key, (a, b) in zip(vocab.METRIC_KEYS, pairs)}
    state["n"] = state["nc"] = n
    return codec.validate(state, "test state")


def random_state(rnd, chapter):
    """One state of the RANDOM family (module docstring)."""
    prior = P.metric_prior(chapter)
    threshold = P.chapter(chapter).boss_threshold
    level = math.exp(rnd.uniform(math.log(0.5), math.log(300.0)))
    evidence = [min(300.0, level * math.exp(rnd.gauss(0.0, 1.0))) for _ in vocab.METRIC_KEYS]
    noise = [rnd.gauss(0.0, 0.2) for _ in vocab.METRIC_KEYS]
    z = rnd.uniform(-3.0, 3.0)

    def build(positivity):
        pairs = []
        for key, e, d in zip(vocab.METRIC_KEYS, evidence, noise):
            a0, b0 = prior[key]
            u = min(1.0, max(0.0, positivity + d))
            pairs.append((a0 + u * e, b0 + (1.0 - u) * e))
        return with_metrics(chapter, pairs)

    def z_of(state):
        k1, k2, _, _ = model.composite_cumulants(state)
        return (k1 - threshold) / math.sqrt(k2)

    low, high = -1.0, 2.0  # bisection on the common positivity
    for _ in range(50):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if z_of(build(middle)) < z else (low, middle)
    return build(0.5 * (low + high))


MESSAGES = (
    "hi",
    "",
    "ok",
    "...",
    "I love you. What do you dream about?",
    "whatever, this is boring",
    "haha lol \U0001f602 let's do something crazy and wild tonight",
    "I feel like I can be honest with you. " * 6,
    "You are amazing and wonderful, thank you so much for listening",
    "I hate this. It is stupid and annoying.",
    "What do you think about philosophy? Do you read much?",
    "fine. goodbye",
    "So today I walked to the station and took the train into town, met two colleagues about the new office "
    "plan, and then went home.",
)


def engine_states(players=10, messages=120, every=10, seed=7):
    """The ENGINE family: states the engine reaches through its own decode/apply/encode cycle.

    Player j starts in chapter 1 and is advanced at once to chapter 1 + j % 5
    (bayes_advance_chapter may be called at any time), so that every chapter
    is visited; later it advances when the boss is ready, now and then.
    """
    rnd = random.Random(seed)
    out = []
    for player in range(players):
        user = f"engine-{player}"
        tendency = rnd.uniform(-6.0, 10.0)  # the stand-in LLM's mean delta for this player
        consults = rnd.uniform(0.1, 0.8)  # how often the backend feeds the stand-in's deltas back unasked
        state = codec.default_state(1, P)
        events.apply(state, P, user, "chapter", {"chapter": 1 + player % 5})
        text = codec.encode(state)
        t, last = 1_795_000_000.0, None
        for i in range(messages):
            gap = math.exp(rnd.gauss(math.log(90.0), 1.5)) if rnd.random() > 0.05 else rnd.uniform(8, 40) * 3600.0
            t += gap
            state = codec.decode(text, P)
            data = {"text": rnd.choice(MESSAGES), "sent_at": t, "reply_gap_s": gap, "topic_changed": None, "seed": None}
            result, _ = events.apply(state, P, user, "message", data, model.RowTimes(last, last))
            last = t
            if result["fallback"]["needed"] or rnd.random() < consults:
                deltas = {name: max(-10, min(10, round(rnd.gauss(tendency, 3.0)))) for name in vocab.METRIC_NAMES}
                events.apply(state, P, user, "llm_scores", {"deltas": deltas})
            if result["boss"]["ready"] and state["c"] < 5 and rnd.random() < 0.05:
                events.apply(state, P, user, "chapter", {"chapter": state["c"] + 1})
            text = codec.encode(state)
            if i % every == every - 1:
                out.append(codec.decode(text, P))
    return out


class Case:
    """One (state, threshold) of the grid, with its oracle bracket and the seed of its Monte Carlo draws."""

    def __init__(self, family, name, state, threshold, oracle):
        self.family, self.name, self.state, self.threshold = family, name, state, threshold
        self.oracle = oracle
        self.lo, self.exact, self.hi = oracle.bracket(threshold)
        self.user_id = f"{family}-{name}"

    def __repr__(self):
        return f"{self.family}:{self.name} T={self.threshold} exact={self.exact:.6f}"

    def refined(self):
        """The bracket at a step 4 times smaller (only for cases too close to call)."""
        self.oracle = Oracle(self.state, self.oracle.h / 4.0)
        self.lo, self.exact, self.hi = self.oracle.bracket(self.threshold)


def build_grid():
    cases = []
    for chapter in vocab.CHAPTERS:
        state = codec.default_state(chapter, P)
        oracle = Oracle(state, composite_sd(state) / STEPS_PER_SD)
        cases += [Case("fresh", f"ch{chapter}", state, float(t), oracle) for t in THRESHOLDS]
    rnd = random.Random(RANDOM_SEED)
    for j in range(RANDOM_PER_CHAPTER):
        for chapter in vocab.CHAPTERS:
            state = random_state(rnd, chapter)
            oracle = Oracle(state, composite_sd(state) / STEPS_PER_SD)
            cases.append(Case("random", f"{j}-ch{chapter}", state, P.chapter(chapter).boss_threshold, oracle))
    for j, state in enumerate(engine_states()):
        oracle = Oracle(state, composite_sd(state) / STEPS_PER_SD)
        cases.append(Case("engine", f"{j}-ch{state['c']}", state, P.chapter(state["c"]).boss_threshold, oracle))
    return cases


@pytest.fixture(scope="module")
def grid():
    return build_grid()


def edgeworth_of(case):
    return model.edgeworth_probability(case.state, case.threshold)


# --------------------------------------------------------------------------
# The oracle checked
# --------------------------------------------------------------------------


def test_the_fft_convolution_equals_the_direct_one():
    """The FFT's rounding, on a coarse step where np.convolve (exact sums of products) is affordable."""
    state = codec.default_state(1, P)
    h = 0.05
    fft, offset, _ = composite_bins(state, h)
    direct, direct_offset = np.ones(1), 0
    for key, c in zip(vocab.METRIC_KEYS, SCALES):
        a, b = state["m"][key]
        first = math.floor(c * special.betaincinv(a, b, TAIL) / h)
        last = math.ceil(c * special.betainccinv(a, b, TAIL) / h)
        direct = np.convolve(direct, np.diff(special.betainc(a, b, np.minimum(np.arange(first, last + 1) * h / c, 1))))
        direct_offset += first
    assert offset == direct_offset
    assert np.abs(fft - direct).max() < 1e-15
    assert abs(np.abs(fft - direct).sum()) < 1e-12


@pytest.mark.parametrize(
    "pairs, chapter",
    [
        (((1.5, 6), (3, 3), (2, 5), (2, 3)), 1),  # chapter 1's priors
        (((40, 12), (30, 9), (25, 20), (60, 8)), 3),
        (((1.9672, 6.0630), (41.587, 4.2328), (28.939, 29.118), (63.350, 6.9739)), 1),  # the unbalanced example
    ],
)
def test_the_oracle_agrees_with_itself_at_half_the_step_and_with_a_million_draws(pairs, chapter):
    state = with_metrics(chapter, pairs)
    threshold = P.chapter(chapter).boss_threshold
    h = composite_sd(state) / STEPS_PER_SD
    lo, estimate, hi = exact_bracket(state, threshold, h)
    lo2, estimate2, hi2 = exact_bracket(state, threshold, h / 2)
    assert lo <= lo2 <= estimate2 <= hi2 <= hi
    assert hi - lo < 0.002 and hi2 - lo2 < 0.001
    assert abs(estimate2 - estimate) < 1e-6  # the estimate's error is of second order in h
    draws = 1_000_000
    sampled = readiness.monte_carlo_probability(state, threshold, draws=draws, seed=20261120)
    assert abs(sampled - estimate) <= 5 * math.sqrt(estimate * (1 - estimate) / draws) + 1e-4


def test_the_grid_is_what_the_docstring_says(grid):
    families = {}
    for case in grid:
        families.setdefault(case.family, []).append(case)
    assert len(families["fresh"]) == 305
    assert len(families["random"]) == 200
    assert len(families["engine"]) == 120
    # P_ready spans (0, 1) in the random and engine families.
    for family in ("random", "engine"):
        p = np.array([case.exact for case in families[family]])
        assert (p < 0.05).sum() >= 10 and (p > 0.95).sum() >= 5 and ((p > 0.2) & (p < 0.8)).sum() >= 20, family
    strengths = [sum(pair) for case in families["random"] for pair in case.state["m"].values()]
    assert min(strengths) < 10 and max(strengths) > 250
    assert {case.state["c"] for case in families["engine"]} == set(vocab.CHAPTERS)
    for case in grid:
        assert case.lo <= case.exact <= case.hi
        assert case.hi - case.lo < 0.003, case


# --------------------------------------------------------------------------
# Edgeworth, normal and Monte Carlo against the oracle
# --------------------------------------------------------------------------


def test_composite_cumulants_are_those_of_scipys_betas():
    state = with_metrics(2, ((4.1, 9.3), (30.0, 2.5), (1.2, 0.7), (150.0, 90.0)))
    k = np.zeros(4)
    for key, c in zip(vocab.METRIC_KEYS, SCALES):
        mean, var, skew, kurt = stats.beta.stats(*state["m"][key], moments="mvsk")
        k += [c * mean, c**2 * var, c**3 * skew * var**1.5, c**4 * kurt * var**2]
    assert model.composite_cumulants(state) == pytest.approx(tuple(k), rel=1e-10)


def test_edgeworth_is_section_6s_formula():
    """The expansion written out again, with scipy's normal and Hermite polynomials."""
    state = with_metrics(4, ((20.0, 6.0), (9.0, 12.0), (30.0, 11.0), (3.0, 2.0)))
    k1, k2, k3, k4 = model.composite_cumulants(state)
    for threshold in (40.0, 55.5, 70.0, 80.0):
        z = (threshold - k1) / math.sqrt(k2)
        g1, g2 = k3 / k2**1.5, k4 / k2**2
        he = np.polynomial.hermite_e.hermeval
        f = stats.norm.cdf(z) - stats.norm.pdf(z) * (
            g1 / 6 * he(z, [0, 0, 1]) + g2 / 24 * he(z, [0, 0, 0, 1]) + g1**2 / 72 * he(z, [0, 0, 0, 0, 0, 1])
        )
        assert model.edgeworth_probability(state, threshold) == pytest.approx(min(1, max(0, 1 - f)), abs=1e-13)


def test_edgeworth_is_within_0_005_of_the_exact_probability_on_the_grid(grid):
    """Section 6: within 0.005 of every value the exact P can take (the oracle's bracket), on every case."""
    failures = []
    for case in grid:
        e = edgeworth_of(case)
        while max(e - case.lo, case.hi - e) > EDGEWORTH_TOLERANCE and case.hi - case.lo > 1e-5:
            if abs(e - case.exact) > EDGEWORTH_TOLERANCE:
                break  # the bracket cannot help: the estimate itself is out
            case.refined()
        if max(e - case.lo, case.hi - e) > EDGEWORTH_TOLERANCE:
            failures.append((case, e, e - case.exact))
    assert not failures, failures


def test_every_writer_and_the_read_rpc_report_the_edgeworth_probability(grid):
    for case in grid:
        if case.family == "fresh" and case.threshold != P.chapter(case.state["c"]).boss_threshold:
            continue
        boss = model.boss_readiness(case.state, P)
        assert boss["p_ready"] == edgeworth_of(case)
        result = readiness.readiness(case.state, P)
        assert result["method"] == "edgeworth" and result["p_ready"] == boss["p_ready"]
        assert result["threshold"] == case.threshold


def test_the_normal_approximation_is_within_its_own_bound_0_04(grid):
    """MODEL.md v1's method, kept for comparison: Phi((E[C] - T) / sd(C)), within 0.04 (MODEL measured 0.034)."""
    worst = 0.0
    for case in grid:
        _, composite, sd = model.metric_summary(case.state)
        p = model.normal_probability(composite, sd, case.threshold)
        assert max(p - case.lo, case.hi - p) <= NORMAL_TOLERANCE, case
        worst = max(worst, abs(p - case.exact))
    assert worst > 0.01  # it is a worse method than Edgeworth: this is why section 6 changed


def test_the_normal_method_is_phi_of_the_closed_form_moments(grid):
    for case in grid[::7]:
        state = case.state
        threshold = P.chapter(state["c"]).boss_threshold
        mean = sum(c * a / (a + b) for c, (a, b) in zip(SCALES, (state["m"][k] for k in vocab.METRIC_KEYS)))
        result = readiness.readiness(state, P, "normal")
        want = stats.norm.sf((threshold - mean) / composite_sd(state))
        assert result["p_ready"] == pytest.approx(want, rel=1e-9, abs=1e-15)
        assert result["composite"] == pytest.approx(mean, abs=1e-10)
        assert result["composite_sd"] == pytest.approx(composite_sd(state), rel=1e-12)
        assert (result["method"], result["chapter"], result["n"]) == ("normal", state["c"], state["n"])


def test_monte_carlo_agrees_with_the_exact_probability_within_section_6s_tolerance(grid):
    """10,000 draws seeded as the engine seeds them, within 4 sqrt(p(1 - p)/10,000) + 0.005 of the exact p."""
    failures = []
    for case in grid:
        seed = rng.seed_of(case.user_id, case.state["n"], readiness.READINESS)
        p_mc = readiness.monte_carlo_probability(case.state, case.threshold, DRAWS, seed)
        if abs(p_mc - case.exact) > monte_carlo_bound(case.exact):
            failures.append((case, p_mc))
    assert not failures, failures


def test_the_monte_carlo_method_draws_with_the_engines_seed(grid):
    for case in [c for c in grid if c.family != "fresh"][::5]:
        result = readiness.readiness(case.state, P, "monte_carlo", user_id=case.user_id)
        seed = rng.seed_of(case.user_id, case.state["n"], readiness.READINESS)
        assert result["p_ready"] == readiness.monte_carlo_probability(case.state, case.threshold, DRAWS, seed)
        assert result["draws"] == DRAWS and result["method"] == "monte_carlo"
        assert abs(result["p_ready"] - case.exact) <= monte_carlo_bound(case.exact)


# --------------------------------------------------------------------------
# Outside the grid: unbalanced strengths
# --------------------------------------------------------------------------

# Found while writing these tests (a random state of chapter 1 whose
# intimacy is near its prior, strength 8, while the other metrics carry
# 46-70 pseudo-counts with means up to .91): the composite is nearly one
# Beta(2, 6) scaled by 30.
UNBALANCED = ((1.9672321077012378, 6.062970066183357), (41.58733811225027, 4.232805759463663))
UNBALANCED += ((28.939199601196407, 29.11784700745499), (63.350100131777396, 6.9738506607662725))


def test_edgeworth_outside_the_grid_an_unbalanced_state():
    """Measured, not hidden: 0.0083 below the exact value, beyond section 6's 0.005 (module docstring)."""
    state = with_metrics(1, UNBALANCED)
    lo, exact, hi = exact_bracket(state, 55.0)
    assert hi - lo < 0.001 and exact == pytest.approx(0.88953, abs=2e-5)
    edgeworth = model.edgeworth_probability(state, 55.0)
    _, composite, sd = model.metric_summary(state)
    normal = model.normal_probability(composite, sd, 55.0)
    assert abs(edgeworth - exact) < 0.01
    assert abs(edgeworth - exact) < abs(normal - exact) < NORMAL_TOLERANCE


# --------------------------------------------------------------------------
# Seeds and method validation
# --------------------------------------------------------------------------


def a_state(chapter=5):
    return with_metrics(chapter, ((30.0, 8.0), (20.0, 9.0), (26.0, 9.0), (22.0, 6.0)))


def test_the_same_seed_gives_the_same_result():
    state = a_state()
    first = readiness.readiness(state, P, "monte_carlo", user_id="player-a", session_seed="run-1")
    again = readiness.readiness(copy.deepcopy(state), P, "monte_carlo", user_id="player-a", session_seed="run-1")
    assert first == again
    seed = rng.seed_of("player-a", state["n"], readiness.READINESS, "run-1")
    threshold = P.chapter(5).boss_threshold
    assert readiness.monte_carlo_probability(state, threshold, DRAWS, seed) == first["p_ready"]
    assert first["draws"] == DRAWS and first["method"] == "monte_carlo"


def test_the_seed_depends_on_the_player_the_message_count_and_the_session_seed():
    state = with_metrics(3, ((11.0, 5.0), (11.0, 6.0), (12.0, 6.0), (10.0, 5.0)))
    assert 0.3 < model.edgeworth_probability(state, 65.0) < 0.7
    values = {
        readiness.readiness(state, P, "monte_carlo", user_id=user, session_seed=session)["p_ready"]
        for user in ("a", "b", "c")
        for session in (None, "s1", "s2")
    }
    later = dict(state, n=state["n"] + 1)
    values.add(readiness.readiness(later, P, "monte_carlo", user_id="a")["p_ready"])
    # Ten independent counts out of 10,000 near the middle: almost never fewer than 5 distinct values.
    assert len(values) >= 5, values


@pytest.mark.parametrize("method", ["bootstrap", "", "Edgeworth", None, "normal "])
def test_an_unknown_method_is_22023(method):
    with pytest.raises(BayesError) as err:
        readiness.readiness(a_state(), P, method)
    assert err.value.sqlstate == "22023"


def test_the_methods_are_the_three_of_section_6():
    assert readiness.METHODS == ("edgeworth", "normal", "monte_carlo")
    state = a_state()
    for method in readiness.METHODS:
        result = readiness.readiness(state, P, method, user_id="u")
        assert result["method"] == method
        assert {"threshold", "p_ready", "ready", "confidence", "chapter", "n", "composite", "composite_sd"} <= set(
            result
        )


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
def test_the_result_labels_its_own_probability(grid, method):
    for case in grid[::3]:
        result = readiness.readiness(case.state, P, method, user_id=case.user_id)
        assert result["confidence"] == model.confidence_label(result["p_ready"])
        assert result["ready"] is (result["p_ready"] >= 0.7)
        assert 0.0 <= result["p_ready"] <= 1.0


def params_with(**global_values):
    snapshot = json.loads(json.dumps(DEFAULT_SNAPSHOT))
    snapshot["global"].update(global_values)
    return Params.from_snapshot(snapshot)


@pytest.mark.parametrize("method", readiness.METHODS)
def test_ready_is_inclusive_at_the_ready_probability(method):
    state = with_metrics(2, ((8.0, 5.0), (7.0, 4.0), (7.5, 5.0), (6.5, 4.5)))
    p = readiness.readiness(state, P, method, user_id="x")["p_ready"]
    assert 0.2 < p < 0.9
    assert readiness.readiness(state, params_with(ready_probability=p), method, user_id="x")["ready"] is True
    assert readiness.readiness(state, params_with(ready_probability=above(p)), method, user_id="x")["ready"] is False


# --------------------------------------------------------------------------
# The fallback check of a stored state (section 7, rules 1 and 3)
# --------------------------------------------------------------------------

CERTAIN_NO = ((2.0, 30.0), (3.0, 30.0), (2.0, 30.0), (2.0, 30.0))  # composite near 8: P_ready about 0
UNCERTAIN = ((11.0, 9.0), (11.0, 9.0), (11.0, 9.0), (11.0, 9.0))  # composite 55, chapter 1's threshold: P about 0.5
CERTAIN_YES = ((60.0, 4.0), (60.0, 4.0), (60.0, 4.0), (60.0, 4.0))  # composite near 94: P_ready about 1


def checked(state, params=P):
    """fallback_check of a copy, asserting that it changed nothing."""
    before = copy.deepcopy(state)
    result = readiness.fallback_check(state, params)
    assert state == before  # consumes nothing
    return result


def test_the_example_states_are_where_they_should_be():
    assert model.boss_readiness(with_metrics(1, CERTAIN_NO), P)["p_ready"] < 1e-6
    assert 0.4 < model.boss_readiness(with_metrics(1, UNCERTAIN), P)["p_ready"] < 0.6
    assert model.boss_readiness(with_metrics(1, CERTAIN_YES), P)["p_ready"] > 1 - 1e-6


@pytest.mark.parametrize("cold_start", [0, 1, 10, 25])
@pytest.mark.parametrize("pairs, rule3", [(CERTAIN_NO, False), (UNCERTAIN, True), (CERTAIN_YES, False)])
def test_rules_in_order_and_the_cold_start_boundary(cold_start, pairs, rule3):
    params = params_with(cold_start_messages=cold_start)
    for n in sorted({0, max(cold_start - 1, 0), cold_start, cold_start + 1, 500}):
        state = with_metrics(1, pairs, n=n)
        result = checked(state, params)
        want = "cold_start" if n < cold_start else "uncertain" if rule3 else "bayesian_sufficient"
        assert result["reason"] == want, (n, cold_start)
        assert result["needed"] is (want != "bayesian_sufficient")  # lb = B = 3: a request would be granted
        assert result["budget_left"] == state["lb"] == 3.0
        assert result["cold_start_messages"] == cold_start


@pytest.mark.parametrize("lb", [0.0, 0.5, below(1.0), 1.0, above(1.0), 2.999999, 3.0])
def test_needed_follows_the_budget_for_uncertain_only(lb):
    """cold_start is always granted; uncertain only with at least one token; bayesian_sufficient never."""
    for pairs, n, reason in ((UNCERTAIN, 3, "cold_start"), (UNCERTAIN, 40, "uncertain"), (CERTAIN_NO, 40, None)):
        state = with_metrics(1, pairs, n=n)
        state["lb"] = lb
        result = checked(state)
        want_reason = reason or "bayesian_sufficient"
        assert result["reason"] == want_reason
        want = {"cold_start": True, "uncertain": lb >= 1.0, "bayesian_sufficient": False}[want_reason]
        assert result["needed"] is want, (lb, want_reason)
        assert result["budget_left"] == lb


def test_the_uncertain_band_is_strict_at_the_default_margin():
    """eps < P < 1 - eps, eps = 0.1: P exactly 0.1 or 0.9 is not uncertain; one float inside is."""
    state = with_metrics(1, UNCERTAIN, n=40)
    assert 1.0 - P.g["uncertain_margin"] == 0.9
    for p, want in [
        (0.1, "bayesian_sufficient"),
        (above(0.1), "uncertain"),
        (0.5, "uncertain"),
        (below(0.9), "uncertain"),
        (0.9, "bayesian_sufficient"),
        (below(0.1), "bayesian_sufficient"),
        (above(0.9), "bayesian_sufficient"),
        (0.0, "bayesian_sufficient"),
        (1.0, "bayesian_sufficient"),
    ]:
        assert model.fallback_reason(state, P, p) == want, p
        status = model.fallback_status(state, P, p)
        assert status["reason"] == want and status["needed"] is (want == "uncertain")


@pytest.mark.parametrize("pairs", [((7.0, 20.0),) * 4, ((4.0, 10.0),) * 4, UNCERTAIN, ((17.0, 9.0),) * 4])
def test_a_stored_state_exactly_at_the_margins_is_not_uncertain(pairs):
    """fallback_check on real states: with eps set to the state's own P (or 1 - P), P sits exactly on the margin."""
    state = with_metrics(1, pairs, n=40)
    p = model.boss_readiness(state, P)["p_ready"]
    assert 0.0 < p < 1.0
    # 1 - x has no rounding error for x in [0.5, 1]: then 1 - (1 - x) == x.
    margin, inside = (p, below(p)) if p <= 0.5 else (1.0 - p, 1.0 - above(p))
    assert margin == p or 1.0 - margin == p
    assert inside < p < 1.0 - inside
    at = checked(state, params_with(uncertain_margin=margin))
    assert at["p_ready"] == p and at["reason"] == "bayesian_sufficient" and at["needed"] is False
    assert at["uncertain_band"] == [margin, 1.0 - margin]
    one_float_wider = checked(state, params_with(uncertain_margin=inside))
    assert one_float_wider["reason"] == "uncertain" and one_float_wider["needed"] is True


def test_the_check_reports_what_the_rules_read():
    state = with_metrics(3, UNCERTAIN, n=12)
    state["lb"] = 1.25
    result = checked(state)
    _, composite, sd = model.metric_summary(state)
    boss = model.boss_readiness(state, P)
    assert result == {
        "needed": result["reason"] == "uncertain",
        "reason": result["reason"],
        "budget_left": 1.25,
        "chapter": 3,
        "n": 12,
        "cold_start_messages": 10,
        "composite": composite,
        "composite_sd": sd,
        "threshold": 65.0,
        "p_ready": boss["p_ready"],
        "uncertain_band": [0.1, 0.9],
        "budget_tokens": 3,
    }


def test_the_check_never_says_no_signals_or_audit(grid):
    """Rules 2 and 4 need a message: the check of a stored state only ever says rule 1, rule 3 or nothing."""
    seen = set()
    for case in grid[::2]:
        for n in (0, 9, 10, 200):
            state = dict(case.state, n=n, nc=min(n, case.state["nc"]))
            for lb in (0.0, 3.0):
                result = checked(dict(state, lb=lb))
                seen.add(result["reason"])
                p = model.boss_readiness(state, P)["p_ready"]
                want = "cold_start" if n < 10 else "uncertain" if 0.1 < p < 0.9 else "bayesian_sufficient"
                assert result["reason"] == want
    assert seen == {"cold_start", "uncertain", "bayesian_sufficient"}
