"""The model: every update of MODEL.md sections 4, 5, 6, 7 and 8, once.

Functions here take a *decoded* state (a dict as returned by
:func:`codec.decode`) and update it in place; the caller owns the dict.
Times are epoch seconds (floats). Nothing here touches the database, so the
SQL functions, the app-server benchmark and the tests all run this code.

The order of one message (section 4): decay up to the message time, encode,
metrics, vices, mood, timing, skip and delay, fallback and boss readiness.
"""

import math

from . import codec, encoder, rng, vocab
from .errors import INVALID_PARAMETER, BayesError
from .params import lexicon_of

SECONDS_PER_HOUR = 3600.0
SECONDS_PER_DAY = 86400

FALLBACK_REASONS = ("cold_start", "no_signals", "uncertain", "audit", "bayesian_sufficient")
DECISIONS = ("skip", "reply")
LLM_DELTA_LIMIT = 10.0


# --------------------------------------------------------------------------
# Section 5: decay
# --------------------------------------------------------------------------


def decay_window_start(last_message_at, decayed_at, grace_h):
    """Epoch seconds at which the decay window starts: max(decayed_at, last_message_at + grace);
    None without a message."""
    if last_message_at is None:
        return None
    start = last_message_at + grace_h * SECONDS_PER_HOUR
    if decayed_at is not None and decayed_at > start:
        start = decayed_at
    return start


def decay_hours(last_message_at, decayed_at, now, grace_h):
    """Hours of decay in the window [max(decayed_at, last_message_at + grace), now].

    Zero when there is no message yet, or when `now` is not strictly after the
    start of the window (a player exactly at the grace boundary is not
    decayed).
    """
    start = decay_window_start(last_message_at, decayed_at, grace_h)
    if start is None or now <= start:
        return 0.0
    return (now - start) / SECONDS_PER_HOUR


def decay_factors(params, chapter, last_message_at, decayed_at, now):
    """(hours, f, f_v): the metric decay hours, and the metric/mood and vice factors.

    A factor is exactly 1.0 when its window is empty (or its rate is 0):
    then nothing of that kind moves, not even by rounding.
    """
    cp = params.chapter(chapter)
    f = f_v = 1.0
    hours = decay_hours(last_message_at, decayed_at, now, cp.decay_grace_h)
    if hours > 0.0 and cp.decay_rate_per_h > 0.0:
        f = math.exp(-cp.decay_rate_per_h * hours)
    vice_hours = decay_hours(last_message_at, decayed_at, now, cp.vice_decay_grace_h)
    vice_rate = params.g["vice_decay_rate_per_h"]
    if vice_hours > 0.0 and vice_rate > 0.0:
        f_v = math.exp(-vice_rate * vice_hours)
    return hours, f, f_v


def _choose(condition, if_true, if_false):
    return if_true if condition else if_false


def decayed_metric(alpha, beta, alpha0, beta0, f, where=_choose, schema=2):
    """Section 5's step for one Beta metric: (alpha, beta) decayed by factor f.

    In (mean, strength): the strength moves down towards the prior's by f
    when it is above it, and stays when it is not (a posterior is never
    narrowed); the mean moves only when it is above the prior mean (a mean is
    never raised). Pure arithmetic, so the bulk decay runs this same formula
    on numpy arrays of a whole batch (with ``where=numpy.where``); the
    results are the same floats as one player at a time.

    ``schema=1`` is MODEL.md v1's formula, whose strength moved towards the
    prior's also from below: only the replay of events logged by v1 uses it.
    """
    strength0 = alpha0 + beta0
    mean0 = alpha0 / strength0
    strength = alpha + beta
    mean = alpha / strength
    if schema == 1:
        strength = strength0 + (strength - strength0) * f
    else:
        strength = where(strength > strength0, strength0 + (strength - strength0) * f, strength)
    mean = where(mean > mean0, mean0 + (mean - mean0) * f, mean)
    return mean * strength, (1.0 - mean) * strength


def decayed_towards(value, target, f):
    """A value moved towards its target by factor f (the mood belief, a vice)."""
    return target + (value - target) * f


def decay(state, params, last_message_at, decayed_at, now, schema=2):
    """Apply the absence decay of section 5 up to `now`, in place; return the metric decay hours.

    Metrics move in (mean, strength) towards the chapter prior ``mp`` with
    f = exp(-r_c * hours) (:func:`decayed_metric`; `schema` 1 for the replay
    of an event logged by v1). The mood belief moves towards the start
    belief with the same f; the vices towards the Dirichlet prior with their
    own grace and rate. Skip, timing, the evidence budget and the LLM budget
    do not decay.
    """
    hours, f, f_v = decay_factors(params, state["c"], last_message_at, decayed_at, now)
    if f < 1.0:
        m, mp = state["m"], state["mp"]
        for key in vocab.METRIC_KEYS:
            alpha, beta = m[key]
            alpha0, beta0 = mp[key]
            m[key] = list(decayed_metric(alpha, beta, alpha0, beta0, f, schema=schema))
        start = params.g["mood_start_belief"]
        state["h"] = [decayed_towards(h, h0, f) for h, h0 in zip(state["h"], start)]
    if f_v < 1.0:
        prior = params.g["vice_prior"]
        state["d"] = [decayed_towards(d, prior, f_v) for d in state["d"]]
    return hours


# --------------------------------------------------------------------------
# Section 4.1 and 4.3: metrics and the evidence budget
# --------------------------------------------------------------------------


def update_metrics(state, plus, minus, params, now):
    """Discounted Beta update of the four metrics with one message's evidence.

    plus, minus: summed evidence per metric (>= 0). Per metric the evidence is
    scaled to at most 1 in total, halved while n < cold_start_messages, and
    clipped to what the leaky-bucket budget allows; then
    alpha <- alpha0 + gamma*(alpha - alpha0) + E+ and the same for beta. The
    discount applies on every message. Returns the applied (E+, E-) pairs.
    """
    g = params.g
    gamma = g["discount"]
    budget = g["evidence_budget_per_hour"]
    halve = state["n"] < g["cold_start_messages"]
    b = state["b"]
    elapsed = now - b[4]
    leak = math.exp(-elapsed / SECONDS_PER_HOUR) if elapsed > 0.0 else 1.0
    m, mp = state["m"], state["mp"]
    applied = []
    spent_out = []
    for j, key in enumerate(vocab.METRIC_KEYS):
        e_plus, e_minus = plus[j], minus[j]
        total = e_plus + e_minus
        if total > 1.0:
            e_plus, e_minus, total = e_plus / total, e_minus / total, 1.0
        if halve:
            e_plus, e_minus, total = 0.5 * e_plus, 0.5 * e_minus, 0.5 * total
        spent = b[j] * leak
        room = budget - spent
        if total > room:
            scale = room / total if room > 0.0 else 0.0
            e_plus, e_minus, total = e_plus * scale, e_minus * scale, total * scale
        spent_out.append(spent + total)
        alpha, beta = m[key]
        alpha0, beta0 = mp[key]
        m[key] = [alpha0 + gamma * (alpha - alpha0) + e_plus, beta0 + gamma * (beta - beta0) + e_minus]
        applied.append((e_plus, e_minus))
    spent_out.append(now if now > b[4] else b[4])
    state["b"] = spent_out
    return applied


def metric_summary(state, moments=None):
    """Means and variances per metric, the composite (0-100) and its sd.

    `moments`: the state's :func:`metric_moments`, when the caller has them.
    """
    if moments is None:
        moments = metric_moments(state["m"])
    means, variances = moments[0], moments[1]
    w0, w1, w2, w3 = vocab.METRIC_WEIGHTS
    v0, v1, v2, v3 = variances
    metrics = {name: {"mean": mean, "var": var} for name, mean, var in zip(vocab.METRIC_NAMES, means, variances)}
    composite = 0.0 + w0 * means[0] + w1 * means[1] + w2 * means[2] + w3 * means[3]
    composite_var = 0.0 + w0 * w0 * v0 + w1 * w1 * v1 + w2 * w2 * v2 + w3 * w3 * v3
    return metrics, 100.0 * composite, 100.0 * math.sqrt(composite_var)


# --------------------------------------------------------------------------
# Section 4.2: vices, mood, timing
# --------------------------------------------------------------------------


def update_vices(state, increments):
    state["d"] = [d + x for d, x in zip(state["d"], increments)]


def vice_summary(state):
    d = state["d"]
    total = math.fsum(d)
    mixture = [x / total for x in d]
    # By decreasing share, the first vice first on a tie: the sort is stable, also reversed.
    first, second, third = sorted(_VICE_INDEXES, key=mixture.__getitem__, reverse=True)[:3]
    entropy = 0.0
    log2 = math.log2
    for p in mixture:
        if p > 0.0:
            entropy -= p * log2(p)
    vices = vocab.VICES
    return {
        "top": [[vices[first], mixture[first]], [vices[second], mixture[second]], [vices[third], mixture[third]]],
        "entropy_bits": max(entropy, 0.0),
    }


_VICE_INDEXES = tuple(range(len(vocab.VICES)))


def chapter_transition(matrix, volatility):
    """The transition matrix of a chapter: section 4.2's volatility adjustment.

    Each diagonal d becomes max(0.3, d/v) when v > 1, else min(0.8, d/v); the
    off-diagonals of its row are rescaled so that the row sums to 1 (spread
    evenly if they were all zero).
    """
    rows = []
    size = len(matrix)
    for r, row in enumerate(matrix):
        diagonal = row[r]
        new_diagonal = max(0.3, diagonal / volatility) if volatility > 1.0 else min(0.8, diagonal / volatility)
        off = 1.0 - diagonal
        rest = 1.0 - new_diagonal
        if off > 0.0:
            new_row = [x * rest / off for x in row]
        else:
            new_row = [rest / (size - 1)] * size
        new_row[r] = new_diagonal
        rows.append(tuple(new_row))
    return tuple(rows)


def mood_step(belief, transition, emission, symbols):
    """One forward step: b' proportional to (b^T A) times the product of B[:, o] over the symbols.

    With no symbol, or when the product underflows to 0, it is the
    predict-only step b' = b^T A (normalised). Written out for the six
    moods (the codec allows no other size): each sum and each product is
    taken in the same order as a loop over the moods and the symbols would.
    """
    b0, b1, b2, b3, b4, b5 = belief
    a0, a1, a2, a3, a4, a5 = transition
    p0 = b0 * a0[0] + b1 * a1[0] + b2 * a2[0] + b3 * a3[0] + b4 * a4[0] + b5 * a5[0]
    p1 = b0 * a0[1] + b1 * a1[1] + b2 * a2[1] + b3 * a3[1] + b4 * a4[1] + b5 * a5[1]
    p2 = b0 * a0[2] + b1 * a1[2] + b2 * a2[2] + b3 * a3[2] + b4 * a4[2] + b5 * a5[2]
    p3 = b0 * a0[3] + b1 * a1[3] + b2 * a2[3] + b3 * a3[3] + b4 * a4[3] + b5 * a5[3]
    p4 = b0 * a0[4] + b1 * a1[4] + b2 * a2[4] + b3 * a3[4] + b4 * a4[4] + b5 * a5[4]
    p5 = b0 * a0[5] + b1 * a1[5] + b2 * a2[5] + b3 * a3[5] + b4 * a4[5] + b5 * a5[5]
    if symbols:
        e0, e1, e2, e3, e4, e5 = emission
        q0, q1, q2, q3, q4, q5 = p0, p1, p2, p3, p4, p5
        for o in symbols:
            q0 *= e0[o]
            q1 *= e1[o]
            q2 *= e2[o]
            q3 *= e3[o]
            q4 *= e4[o]
            q5 *= e5[o]
        total = math.fsum((q0, q1, q2, q3, q4, q5))
        if total > 0.0:
            return [q0 / total, q1 / total, q2 / total, q3 / total, q4 / total, q5 / total]
    total = math.fsum((p0, p1, p2, p3, p4, p5))
    return [p0 / total, p1 / total, p2 / total, p3 / total, p4 / total, p5 / total]


def mood_matrices(state, params):
    """(A_c, B) for the state's chapter: the state's own A/B when present, else the defaults."""
    raw_a = state.get("A")
    if raw_a is None:
        key = ("transition", state["c"])
        a = params.derived.get(key)
        if a is None:
            volatility = params.chapter(state["c"]).mood_volatility
            a = params.derived[key] = chapter_transition(params.g["mood_transition"], volatility)
    else:
        a = chapter_transition(raw_a, params.chapter(state["c"]).mood_volatility)
    raw_b = state.get("B")
    return a, (raw_b if raw_b is not None else params.g["mood_emission"])


def update_timing(state, gap_s, params):
    """Normal update of the log reply gap with a known gap x <= timing_max_gap_s (x >= 1 s)."""
    if gap_s is None or gap_s > params.g["timing_max_gap_s"]:
        return
    tau_x = params.g["timing_obs_precision"]
    mu, tau = state["g"]
    x = math.log(gap_s if gap_s > 1.0 else 1.0)
    state["g"] = [(tau * mu + tau_x * x) / (tau + tau_x), tau + tau_x]


# --------------------------------------------------------------------------
# Section 4.4: skip and delay
# --------------------------------------------------------------------------


def decide_skip(state, params, user_id, n, session_seed):
    """Thompson-sampled skip decision; updates the run length k[2].

    theta ~ Beta(a_skip, a_respond), capped at the chapter's skip_cap and
    halved per consecutive skip; skip when U < theta, never more than
    max_consecutive_skips in a row. Returns (skip, p) with p the skip
    probability used (0 when the run limit forces a reply).
    """
    a_skip, a_respond, run = state["k"]
    if run >= params.g["max_consecutive_skips"]:  # theta is not drawn: p would be 0 whatever it is
        p = 0.0
        skip = False
    else:
        cap = params.chapter(state["c"]).skip_cap
        theta = rng.draw(user_id, n, rng.SKIP_THETA, session_seed).betavariate(a_skip, a_respond)
        p = min(theta, cap) * 0.5**run
        skip = rng.draw(user_id, n, rng.SKIP_UNIFORM, session_seed).random() < p
    state["k"] = [a_skip, a_respond, run + 1 if skip else 0]
    return skip, p


def reply_delay(state, params, user_id, n, session_seed):
    """min(cap_c, max(1, coef_c * e^y)) seconds, y from the posterior predictive N(mu, 1/tau + 1/tau_x)."""
    cp = params.chapter(state["c"])
    mu, tau = state["g"]
    sd = math.sqrt(1.0 / tau + 1.0 / params.g["timing_obs_precision"])
    y = rng.draw(user_id, n, rng.DELAY, session_seed).gauss(mu, sd)
    return min(cp.delay_cap_s, max(1.0, cp.delay_coef * math.exp(min(y, 700.0))))


# --------------------------------------------------------------------------
# Sections 6 and 7: boss readiness and fallback
# --------------------------------------------------------------------------


def confidence_label(p):
    if p > 0.9 or p < 0.1:
        return "high"
    if p > 0.6 or p < 0.3:
        return "medium"
    return "low"


def _beta_cumulants(alpha, beta):
    """The first four cumulants of Beta(alpha, beta): mean, variance, third and fourth cumulant."""
    s = alpha + beta
    ab = alpha * beta
    var = ab / (s * s * (s + 1.0))
    k3 = 2.0 * ab * (beta - alpha) / (s * s * s * (s + 1.0) * (s + 2.0))
    k4 = 6.0 * ab * ((alpha - beta) ** 2 * (s + 1.0) - ab * (s + 2.0)) / (s**4 * (s + 1.0) ** 2 * (s + 2.0) * (s + 3.0))
    return alpha / s, var, k3, k4


# Section 6's scale of each metric in the composite, c = 100 w, and its powers.
_SCALES = tuple(100.0 * w for w in vocab.METRIC_WEIGHTS)
_SCALES_2 = tuple(c * c for c in _SCALES)
_SCALES_3 = tuple(c2 * c for c, c2 in zip(_SCALES, _SCALES_2))
_SCALES_4 = tuple(c2 * c2 for c2 in _SCALES_2)


def metric_moments(m):
    """((mean per metric), (variance per metric), (k1, k2, k3, k4) of the composite) of the metrics `m`.

    Each metric's Beta cumulants (:func:`_beta_cumulants`) once, for both
    :func:`metric_summary` and :func:`composite_cumulants`; every sum is
    taken in METRIC_KEYS order, as a loop over the metrics would.
    """
    mean0, var0, third0, fourth0 = _beta_cumulants(*m["i"])
    mean1, var1, third1, fourth1 = _beta_cumulants(*m["p"])
    mean2, var2, third2, fourth2 = _beta_cumulants(*m["t"])
    mean3, var3, third3, fourth3 = _beta_cumulants(*m["s"])
    c0, c1, c2, c3 = _SCALES
    d0, d1, d2, d3 = _SCALES_2
    t0, t1, t2, t3 = _SCALES_3
    f0, f1, f2, f3 = _SCALES_4
    return (
        (mean0, mean1, mean2, mean3),
        (var0, var1, var2, var3),
        (
            0.0 + c0 * mean0 + c1 * mean1 + c2 * mean2 + c3 * mean3,
            0.0 + d0 * var0 + d1 * var1 + d2 * var2 + d3 * var3,
            0.0 + t0 * third0 + t1 * third1 + t2 * third2 + t3 * third3,
            0.0 + f0 * fourth0 + f1 * fourth1 + f2 * fourth2 + f3 * fourth3,
        ),
    )


def composite_cumulants(state):
    """(k1, k2, k3, k4) of the composite C = 100 * sum w_k X_k, X_k ~ Beta independent (section 6).

    Cumulants of independent variables add, and the r-th cumulant of c*X is
    c^r times that of X.
    """
    return metric_moments(state["m"])[2]


_INV_SQRT_2PI = 0.3989422804014327


def edgeworth_probability(state, threshold, cumulants=None):
    """P(C >= threshold) by the fourth-order Edgeworth expansion of section 6, clipped to [0, 1].

    z = (T - k1)/sqrt(k2), g1 = k3/k2^1.5, g2 = k4/k2^2;
    F(z) = Phi(z) - phi(z) (g1/6 He2(z) + g2/24 He3(z) + g1^2/72 He5(z)).
    `cumulants`: the composite's (:func:`composite_cumulants`), when the caller has them.
    """
    k1, k2, k3, k4 = composite_cumulants(state) if cumulants is None else cumulants
    sd = math.sqrt(k2)
    z = (threshold - k1) / sd
    g1 = k3 / (k2 * sd)
    g2 = k4 / (k2 * k2)
    z2 = z * z
    he2 = z2 - 1.0
    he3 = z * (z2 - 3.0)
    he5 = z * (z2 * (z2 - 10.0) + 15.0)
    phi = _INV_SQRT_2PI * math.exp(-0.5 * z2)
    cdf = 0.5 * math.erfc(-z / math.sqrt(2.0)) - phi * (g1 / 6.0 * he2 + g2 / 24.0 * he3 + g1 * g1 / 72.0 * he5)
    return min(1.0, max(0.0, 1.0 - cdf))


def normal_probability(composite, composite_sd, threshold):
    """P(C >= threshold) by the plain normal approximation (MODEL.md v1's method)."""
    return 0.5 * math.erfc(-((composite - threshold) / composite_sd) / math.sqrt(2.0))


def boss_readiness(state, params, cumulants=None):
    """Section 6: P(C >= T_c) by the Edgeworth expansion, ready and the confidence label."""
    threshold = params.chapter(state["c"]).boss_threshold
    p = edgeworth_probability(state, threshold, cumulants)
    return {
        "threshold": threshold,
        "p_ready": p,
        "ready": p >= params.g["ready_probability"],
        "confidence": confidence_label(p),
    }


def fallback_reason(state, params, p_ready, observations=None, audit=None):
    """The first rule of section 7 that fires.

    observations=None skips no_signals (it needs a message), audit=None the
    audit (it needs a message's draw): then the rules are 1 and 3.
    `audit` is the message's uniform draw of purpose rng.AUDIT.
    """
    g = params.g
    if state["n"] < g["cold_start_messages"]:
        return "cold_start"
    if observations is not None and observations == 0:
        return "no_signals"
    margin = g["uncertain_margin"]
    if margin < p_ready < 1.0 - margin:
        return "uncertain"
    if audit is not None and audit < g["audit_rate"]:
        return "audit"
    return "bayesian_sufficient"


def refill_llm_budget(state, params):
    """Section 7: a message first adds B/W tokens to lb, capped at B.

    In whole micro-tokens, each rounded down, as the codec stores lb: the
    arithmetic is exact, and a budget is never rounded up.
    """
    cap, refill = _llm_refill(params)
    state["lb"] = min(cap, codec.micro_tokens(state["lb"]) + refill) / codec.MICRO


def _llm_refill(params):
    """(B, B/W rounded down) in micro-tokens, computed once per parameters."""
    values = params.derived.get("llm_refill")
    if values is None:
        g = params.g
        cap = codec.micro_tokens(g["llm_budget_tokens"])
        refill = math.floor(g["llm_budget_tokens"] * codec.MICRO / g["llm_budget_window"])
        values = params.derived["llm_refill"] = (cap, refill)
    return values


def message_fallback(state, params, p_ready, observations, user_id, session_seed):
    """Section 7 for one message, after its update: {needed, reason, budget_left}; may spend a token of lb.

    The budget is refilled first; cold_start is always granted and costs
    nothing; another rule is granted only with at least one token, and a
    grant takes one. bayesian_sufficient asks for nothing.
    """
    refill_llm_budget(state, params)
    reason = fallback_reason(state, params, p_ready, observations)
    # The audit is the last rule: its draw is made only when it is reached (fallback_reason with the draw).
    if reason == "bayesian_sufficient" and (
        rng.draw(user_id, state["n"], rng.AUDIT, session_seed).random() < params.g["audit_rate"]
    ):
        reason = "audit"
    needed = False
    if reason == "cold_start":
        needed = True
    elif reason != "bayesian_sufficient" and state["lb"] >= 1.0:
        needed = True
        state["lb"] = (codec.micro_tokens(state["lb"]) - codec.MICRO) / codec.MICRO
    return {"needed": needed, "reason": reason, "budget_left": state["lb"]}


def fallback_status(state, params, p_ready):
    """Section 7 without a message (bayes_fallback_check, and the LLM-scores and chapter results):
    rules 1 and 3, nothing consumed; needed says whether a request would be granted now."""
    reason = fallback_reason(state, params, p_ready)
    needed = reason == "cold_start" or (reason != "bayesian_sufficient" and state["lb"] >= 1.0)
    return {"needed": needed, "reason": reason, "budget_left": state["lb"]}


def mood_name(state):
    """The most probable mood (the first one on a tie)."""
    h = state["h"]
    return vocab.MOODS[h.index(max(h))]  # max returns the first of equal values, index finds the first


def top_vice(state):
    """The vice with the largest Dirichlet concentration (the first one on a tie)."""
    d = state["d"]
    return vocab.VICES[max(range(len(d)), key=lambda j: (d[j], -j))]


def summary(state, params, fallback=None, boss=None, moments=None):
    """The part of every writer's result that describes the state after the write.

    `fallback` is a message's decision (:func:`message_fallback`); without
    one, the result reports :func:`fallback_status`. `boss`: the state's
    :func:`boss_readiness`, and `moments` its :func:`metric_moments`, when
    the caller has them already.
    """
    if moments is None:
        moments = metric_moments(state["m"])
    metrics, composite, composite_sd = metric_summary(state, moments)
    if boss is None:
        boss = boss_readiness(state, params, moments[2])
    if fallback is None:
        fallback = fallback_status(state, params, boss["p_ready"])
    return {
        "n": state["n"],
        "chapter": state["c"],
        "composite": composite,
        "composite_sd": composite_sd,
        "composite_ci95": [
            max(0.0, composite - 1.959963984540054 * composite_sd),
            min(100.0, composite + 1.959963984540054 * composite_sd),
        ],
        "metrics": metrics,
        "fallback": fallback,
        "boss": boss,
    }


# --------------------------------------------------------------------------
# The writers: one message, LLM scores, an outcome, a chapter transition
# --------------------------------------------------------------------------


def day_position(state, now):
    """The message's number within its UTC day (updates dd); None for a message from an earlier day."""
    day = int(now // SECONDS_PER_DAY)
    last_day, count = state["dd"]
    if day == last_day:
        state["dd"] = [day, count + 1]
        return count + 1
    if day > last_day:
        state["dd"] = [day, 1]
        return 1
    return None


def check_sent_at(params, sent_at, received_at):
    """Section 4's time window: 22023 unless a message's send time lies within
    [received_at - max_message_age_h, received_at + clock_skew_s] (epoch seconds;
    received_at is the database clock). A time further ahead would move the
    player's clock into the future, where no later message or decay reaches it."""
    skew = params.g["clock_skew_s"]
    if sent_at > received_at + skew:
        raise BayesError(
            INVALID_PARAMETER,
            f"p_sent_at {_instant(sent_at)} is {_duration(sent_at - received_at)} ahead of the database clock"
            f" ({_instant(received_at)}); at most clock_skew_s = {skew:.10g} s ahead is accepted",
            "Pass the time the player sent the message; the allowed skew is the row clock_skew_s of bayes.params.",
        )
    age_h = params.g["max_message_age_h"]
    if sent_at < received_at - 3600.0 * age_h:
        raise BayesError(
            INVALID_PARAMETER,
            f"p_sent_at {_instant(sent_at)} is {_duration(received_at - sent_at)} before the database clock"
            f" ({_instant(received_at)}); messages older than max_message_age_h = {age_h:.10g} h are refused",
            "The oldest accepted send time is set by the row max_message_age_h of bayes.params.",
        )


def _instant(epoch_s):
    """An epoch second as UTC ISO 8601, for error messages (imports datetime only on that path)."""
    import datetime as dt

    try:
        return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat().replace("+00:00", "Z")
    except (OverflowError, ValueError, OSError):
        return f"epoch second {epoch_s:.0f}"


def _duration(seconds):
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:,.1f} h"
    return f"{seconds / 86400:,.1f} days"


class Message:
    """One player message as bayes_process_message received it (times are epoch seconds).

    ``text`` is None when a replay passes the stored observation instead. A
    plain class, not a dataclass: ``dataclasses`` imports ``inspect``, which a
    fresh backend's first call would pay for.
    """

    __slots__ = ("text", "sent_at", "reply_gap_s", "topic_changed", "seed")

    def __init__(self, text, sent_at, reply_gap_s=None, topic_changed=None, seed=None):
        self.text = text
        self.sent_at = sent_at
        self.reply_gap_s = reply_gap_s
        self.topic_changed = topic_changed
        self.seed = seed


class RowTimes:
    """The player row's clock before a write: its last message, and the instant decay was applied up to."""

    __slots__ = ("last_message_at", "decayed_at")

    def __init__(self, last_message_at=None, decayed_at=None):
        self.last_message_at = last_message_at
        self.decayed_at = decayed_at


def process_message(state, params, user_id, message, times, observation=None, schema=2):
    """Section 4 for one :class:`Message`; updates `state` and returns (result, observation).

    `times` (:class:`RowTimes`) says how long the player was away. `observation`
    replaces the encoding of the text (replay passes the stored one, and
    `schema` 1 for an event logged by v1: its decay was v1's). The
    result holds the keys of MODEL.md section 9 except user_id, message_id,
    duplicate and version, which bayes_engine.pg adds.
    """
    sent_at = message.sent_at
    decay_h = decay(state, params, times.last_message_at, times.decayed_at, sent_at, schema)
    cp = params.chapter(state["c"])
    position = day_position(state, sent_at)
    if observation is None:
        observation = encoder.encode_message(
            message.text,
            message.reply_gap_s,
            message.topic_changed,
            position,
            cp.fast_reply_s,
            cp.slow_reply_s,
            lexicon_of(params),
        )
    update_metrics(state, observation.plus, observation.minus, params, sent_at)
    update_vices(state, observation.vices)
    transition, emission = mood_matrices(state, params)
    state["h"] = mood_step(state["h"], transition, emission, observation.symbols)
    update_timing(state, message.reply_gap_s, params)
    state["n"] += 1
    state["nc"] += 1
    n = state["n"]
    skip, p_skip = decide_skip(state, params, user_id, n, message.seed)
    delay_s = reply_delay(state, params, user_id, n, message.seed)

    moments = metric_moments(state["m"])
    boss = boss_readiness(state, params, moments[2])
    fallback = message_fallback(state, params, boss["p_ready"], observation.observations, user_id, message.seed)
    result = summary(state, params, fallback, boss, moments)
    result["vices"] = vice_summary(state)
    result["mood"] = {"state": mood_name(state), "belief": dict(zip(vocab.MOODS, state["h"]))}
    result["skip"] = {"skip": skip, "p": p_skip}
    result["delay_s"] = delay_s
    result["observations"] = len(observation.features)
    result["features"] = observation.features
    result["decay_hours"] = decay_h
    return result, observation


def check_llm_deltas(deltas):
    """Validate {metric name: delta in [-10, 10]}.

    Returns the deltas as floats in METRIC_NAMES order (None = absent).
    """
    if not isinstance(deltas, dict) or not deltas:
        raise BayesError(INVALID_PARAMETER, "p_deltas must be a non-empty JSON object of metric deltas")
    out = [None, None, None, None]
    for name, value in deltas.items():
        if name not in vocab.METRIC_NAMES:
            raise BayesError(
                INVALID_PARAMETER,
                f"unknown metric {name!r} in p_deltas",
                "metrics are intimacy, passion, trust, secureness",
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BayesError(INVALID_PARAMETER, f"p_deltas.{name} must be a finite number, got {value!r}")
        if not -LLM_DELTA_LIMIT <= value <= LLM_DELTA_LIMIT:
            raise BayesError(INVALID_PARAMETER, f"p_deltas.{name} must be in [-10, 10], got {value!r}")
        out[vocab.METRIC_NAMES.index(name)] = float(value)
    return out


def check_llm_judgement(vices, mood):
    """Validate the LLM's optional vices ({vice name: weight in [0, 1]}) and mood (a mood name) of a message."""
    if vices is not None:
        if not isinstance(vices, dict):
            raise BayesError(INVALID_PARAMETER, "p_vices must be a JSON object of vice weights")
        for name, value in vices.items():
            if name not in vocab.VICES:
                raise BayesError(
                    INVALID_PARAMETER, f"unknown vice {name!r} in p_vices", "the vices are " + ", ".join(vocab.VICES)
                )
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise BayesError(INVALID_PARAMETER, f"p_vices.{name} must be a number in [0, 1], got {value!r}")
    if mood is not None and mood not in vocab.MOODS:
        raise BayesError(
            INVALID_PARAMETER, f"unknown mood {mood!r} in p_mood", "the moods are " + ", ".join(vocab.MOODS)
        )


def apply_llm_scores(state, params, deltas):
    """Section 7: alpha += delta/10 for delta > 0, beta += |delta|/10 for delta < 0 (not halved, not budgeted)."""
    values = check_llm_deltas(deltas)
    m = state["m"]
    for key, delta in zip(vocab.METRIC_KEYS, values):
        if delta is None or delta == 0.0:
            continue
        alpha, beta = m[key]
        if delta > 0.0:
            alpha += delta / LLM_DELTA_LIMIT
        else:
            beta += -delta / LLM_DELTA_LIMIT
        m[key] = [alpha, beta]
    return summary(state, params)


def record_outcome(state, params, decision, engaged):
    """Section 4.4: what the player did after a skip or a reply updates the skip Beta."""
    if decision not in DECISIONS:
        raise BayesError(INVALID_PARAMETER, f"unknown decision {decision!r}: expected 'skip' or 'reply'")
    a_skip, a_respond, run = state["k"]
    if (decision == "skip") == bool(engaged):
        a_skip += 1.0
    else:
        a_respond += 1.0
    state["k"] = [a_skip, a_respond, run]
    return {
        "chapter": state["c"],
        "skip": {"a_skip": a_skip, "a_respond": a_respond, "p_skip_mean": a_skip / (a_skip + a_respond)},
    }


def advance_chapter(state, params, chapter):
    """Section 8: move to a later chapter (the same chapter is a no-op; an earlier one is an error).

    m <- 0.7*m + 0.3*prior_c', mp <- prior_c', nc <- 0, skip Beta and timing
    reset to the chapter's priors; vices and mood kept. Returns whether the
    state changed.
    """
    cp = params.chapter(chapter)
    current = state["c"]
    if chapter < current:
        raise BayesError(
            INVALID_PARAMETER, f"cannot go back from chapter {current} to chapter {chapter}", "Chapters only advance."
        )
    if chapter == current:
        return False
    prior = params.metric_prior(chapter)
    m = state["m"]
    for key in vocab.METRIC_KEYS:
        alpha0, beta0 = prior[key]
        alpha, beta = m[key]
        m[key] = [0.7 * alpha + 0.3 * alpha0, 0.7 * beta + 0.3 * beta0]
    state["mp"] = {key: list(prior[key]) for key in vocab.METRIC_KEYS}
    state["c"] = chapter
    state["nc"] = 0
    state["k"] = [cp.skip_prior_skip, cp.skip_prior_respond, 0]
    state["g"] = [math.log(cp.reply_baseline_s), 1.0]
    return True
