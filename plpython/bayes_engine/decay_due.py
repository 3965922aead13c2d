"""When a stored state next needs the bulk decay: its due time, in closed form.

A stored state is decayed exactly on read (the read RPCs) and before every
message; the bulk decay (``bayes.run_decay``) only keeps the stored rows
close to the exact state for the analytics. It rewrites a player when the
exactly decayed state is further than a tolerance from the stored one: the
composite by more than ``decay_tolerance_composite`` points, or P_ready by
more than ``decay_tolerance_p_ready``. This module computes the earliest
instant at which that can happen, when the state is written, so that a run
reads only the rows whose instant has passed (an index on it).

Every metric of a chapter decays with one factor f = exp(-r_c * hours) over
the window that starts at max(decayed_at, last_message_at + grace_c)
(MODEL.md section 5). Write u = 1 - f, which grows from 0 to 1. With
a_k = max(mu_k - mu0_k, 0) and b_k = max(S_k - S0_k, 0), the decayed mean and
strength are mu_k - a_k u and S_k - b_k u: straight lines in u.

- **Composite.** C = 100 sum w_k mu_k moves by exactly D u, with
  D = 100 sum w_k a_k. It is further than tol from the stored composite when
  u > tol / D: f < 1 - tol/D, that is after -ln(1 - tol/D) / r_c hours; never
  when D <= tol. Exact.
- **P_ready.** The Edgeworth probability of MODEL.md section 6 has no
  closed-form inverse. :func:`p_ready_slope_bound` bounds |dP/du| over the
  stretch of path before the composite is due (u in [0, u_c]; the whole
  path when the composite is never due) by a number L computed from the
  state in closed form (interval bounds of the cumulants along that
  stretch, and of phi(z) times the Hermite polynomials over the range of z
  it can reach); then |P(u) - P(0)| <= L u there, and P_ready is due first
  when L u_c > tol, at u = tol / L: never later than the instant it really
  moves by tol (conservative: it may be earlier).

The due time is the earlier of the two (or None: never, until the player
writes again). Both are u* = tol / bound, turned into hours by the same
formula, so :func:`due_at` is a handful of arithmetic per metric, with no
evaluation of the readiness: cheap enough for every write.

The arithmetic is written once for a Python float and for numpy arrays
(``ops``): the per-message path uses :data:`SCALAR` (math only; this module
imports no numpy), the bulk decay numpy over a whole batch.
"""

import math

from . import vocab
from .model import SECONDS_PER_HOUR, decay_window_start

_INV_SQRT_2PI = 0.3989422804014327


class _ScalarOps:
    """The few functions the bounds need, for Python floats."""

    sqrt = staticmethod(math.sqrt)
    exp = staticmethod(math.exp)
    maximum = staticmethod(max)
    minimum = staticmethod(min)

    @staticmethod
    def where(condition, if_true, if_false):
        return if_true if condition else if_false


SCALAR = _ScalarOps()


def numpy_ops():
    """The same functions for numpy arrays (the bulk decay); numpy is imported here, on first use."""
    import numpy as np

    class _NumpyOps:
        sqrt = staticmethod(np.sqrt)
        exp = staticmethod(np.exp)
        maximum = staticmethod(np.maximum)
        minimum = staticmethod(np.minimum)
        where = staticmethod(np.where)

    return _NumpyOps()


def _phi_power_sup(ops, k, lo, hi):
    """sup of phi(t) t^k over t in [lo, hi] (0 <= lo <= hi): phi(t) t^k grows up to t = sqrt(k), then falls."""
    t = ops.minimum(ops.maximum(math.sqrt(k), lo), hi)
    return _INV_SQRT_2PI * ops.exp(-0.5 * t * t) * t**k


# |He_n(z)| <= sum c_j |z|^j (the absolute values of the coefficients of the
# probabilists' Hermite polynomials He_n), as {power: coefficient}.
_HERMITE_ABS = {
    0: {0: 1.0},
    2: {2: 1.0, 0: 1.0},
    3: {3: 1.0, 1: 3.0},
    4: {4: 1.0, 2: 6.0, 0: 3.0},
    5: {5: 1.0, 3: 10.0, 1: 15.0},
    6: {6: 1.0, 4: 15.0, 2: 45.0, 0: 15.0},
}


def _hermite_sup(ops, n, shift, sups):
    """A bound of sup phi(z) |z|^shift |He_n(z)| over the path's range of |z| (sups[j] = sup phi |z|^j)."""
    total = 0.0
    for power, coefficient in _HERMITE_ABS[n].items():
        total = total + coefficient * sups[power + shift]
    return total


def composite_distance(ops, alpha, beta, alpha0, beta0):
    """D = 100 sum w_k max(mu_k - mu0_k, 0): the decayed composite is the stored one minus D u, exactly."""
    dist = 0.0
    for j, w in enumerate(vocab.METRIC_WEIGHTS):
        dist = dist + 100.0 * w * ops.maximum(alpha[j] / (alpha[j] + beta[j]) - alpha0[j] / (alpha0[j] + beta0[j]), 0.0)
    return dist


def p_ready_slope_bound(ops, alpha, beta, alpha0, beta0, threshold, u_max):
    """L >= |dP_ready/du| along the decay path for u in [0, u_max] (u = 1 - f, u_max in (0, 1]).

    alpha, beta, alpha0, beta0: one item per metric in vocab.METRIC_KEYS
    order (floats, or numpy arrays of a batch). threshold: T_c. The shorter
    the stretch of path, the tighter the bound: :func:`due_hours` asks only
    about the stretch before the composite is due.

    P = clip(1 - F(z; g1, g2)) with F the Edgeworth distribution of section
    6 (clipping never makes it move more), so
    dP/du = -(dens(z) z_u + phi(z) (dQ/dg1 g1_u + dQ/dg2 g2_u)), where
    dens(z) = phi(z) (1 + g1/6 He3 + g2/24 He4 + g1^2/72 He6),
    z_u = D / sd - z k2_u / (2 k2), and Q = g1/6 He2 + g2/24 He3 + g1^2/72 He5.
    Each factor is bounded over the path: every Beta's mean lies in
    [mu - a u_max, mu] and its strength in [S - b u_max, S]; its cumulants (as
    functions of mu and S) and their derivatives are bounded on that box
    (each bound below is monotone in S, so it is taken at an end), and
    phi(z) |z|^j is bounded over the range of z that the bounds of k1 and
    k2 allow. Every bound is an upper bound, so L is one.
    """
    dist = 0.0  # D = 100 sum w a
    k1 = 0.0
    k2_lo = k2_hi = 0.0
    k3 = k4 = 0.0  # bounds of |k3|, |k4| on the path
    k2_u = k3_u = k4_u = 0.0  # bounds of |dk_j/du|
    for j, w in enumerate(vocab.METRIC_WEIGHTS):
        c = 100.0 * w
        s = alpha[j] + beta[j]
        s0 = alpha0[j] + beta0[j]
        mu = alpha[j] / s
        mu0 = alpha0[j] / s0
        a = ops.maximum(mu - mu0, 0.0)
        b = ops.maximum(s - s0, 0.0)
        s_lo = s - b * u_max  # the strength only falls (to S0 at most, at u = 1)
        mu_end = mu - a * u_max
        p_start = mu * (1.0 - mu)
        p_end = mu_end * (1.0 - mu_end)
        p_lo = ops.minimum(p_start, p_end)  # mu(1 - mu) is concave: its minimum is at an end
        p_hi = ops.where((mu_end <= 0.5) & (mu >= 0.5), 0.25, ops.maximum(p_start, p_end))
        q_hi = ops.maximum(abs(1.0 - 2.0 * mu), abs(1.0 - 2.0 * mu_end))  # |1 - 2 mu|, convex
        s1, s2, s3 = s_lo + 1.0, s_lo + 2.0, s_lo + 3.0
        den3 = s1 * s2
        den4 = s1 * s1 * s2 * s3
        c2 = c * c
        c3 = c2 * c
        c4 = c2 * c2
        dist = dist + c * a
        k1 = k1 + c * mu
        # Beta cumulants in (mu, S), p = mu (1 - mu):
        # k2 = p / (S + 1); k3 = 2 p (1 - 2 mu) / ((S + 1)(S + 2));
        # k4 = 6 (p (S + 1) - p^2 (5 S + 6)) / ((S + 1)^2 (S + 2)(S + 3)).
        k2_lo = k2_lo + c2 * p_lo / (s + 1.0)
        k2_hi = k2_hi + c2 * p_hi / s1
        k3 = k3 + c3 * 2.0 * p_hi * q_hi / den3
        k4_num = p_hi * s1 + p_hi * p_hi * (5.0 * s_lo + 6.0)
        k4 = k4 + c4 * 6.0 * k4_num / den4
        # d/du = -a d/dmu - b d/dS:
        # dk2/dmu = (1 - 2 mu)/(S + 1), dk2/dS = -p/(S + 1)^2;
        k2_u = k2_u + c2 * (q_hi * a / s1 + p_hi * b / (s1 * s1))
        # dk3/dmu = 2 (1 - 6 mu + 6 mu^2)/((S+1)(S+2)), |1 - 6 mu + 6 mu^2| <= 1;
        # dk3/dS = -k3 (2 S + 3)/((S + 1)(S + 2));
        k3_u = k3_u + c3 * (2.0 * a / den3 + 2.0 * p_hi * q_hi * b * (2.0 * s_lo + 3.0) / (den3 * den3))
        # dk4/dmu = 6 (S + 1 - 2 p (5 S + 6))(1 - 2 mu)/den4, |S + 1 - 2 p (5 S + 6)| <= (3 S + 4)/2 for p <= 1/4;
        # dk4/dS = 6 ((p - 5 p^2) - (numerator) (2/(S+1) + 1/(S+2) + 1/(S+3))) / den4.
        k4_u = (
            k4_u
            + c4
            * (
                3.0 * (3.0 * s_lo + 4.0) * q_hi * a
                + 6.0 * b * ((p_hi + 5.0 * p_hi * p_hi) + k4_num * (2.0 / s1 + 1.0 / s2 + 1.0 / s3))
            )
            / den4
        )
    sd_lo = ops.sqrt(k2_lo)
    sd_hi = ops.sqrt(k2_hi)
    g1 = k3 / (k2_lo * sd_lo)
    g2 = k4 / (k2_lo * k2_lo)
    g1_u = k3_u / (k2_lo * sd_lo) + 1.5 * k3 * k2_u / (k2_lo * k2_lo * sd_lo)
    g2_u = k4_u / (k2_lo * k2_lo) + 2.0 * k4 * k2_u / (k2_lo * k2_lo * k2_lo)
    # z = (T - k1(u)) / sd(u): k1(u) = k1 - D u, sd(u) in [sd_lo, sd_hi].
    num_lo = threshold - k1
    num_hi = num_lo + dist * u_max
    z_lo = ops.where(num_lo >= 0.0, num_lo / sd_hi, num_lo / sd_lo)
    z_hi = ops.where(num_hi >= 0.0, num_hi / sd_lo, num_hi / sd_hi)
    abs_lo = ops.where((z_lo <= 0.0) & (z_hi >= 0.0), 0.0, ops.minimum(abs(z_lo), abs(z_hi)))
    abs_hi = ops.maximum(abs(z_lo), abs(z_hi))
    sups = [_phi_power_sup(ops, k, abs_lo, abs_hi) for k in range(8)]
    dens = sups[0] + g1 / 6.0 * _hermite_sup(ops, 3, 0, sups)
    dens = dens + g2 / 24.0 * _hermite_sup(ops, 4, 0, sups) + g1 * g1 / 72.0 * _hermite_sup(ops, 6, 0, sups)
    dens_z = sups[1] + g1 / 6.0 * _hermite_sup(ops, 3, 1, sups)
    dens_z = dens_z + g2 / 24.0 * _hermite_sup(ops, 4, 1, sups) + g1 * g1 / 72.0 * _hermite_sup(ops, 6, 1, sups)
    slope = dist / sd_lo * dens + k2_u / (2.0 * k2_lo) * dens_z
    slope = slope + (_hermite_sup(ops, 2, 0, sups) / 6.0 + g1 / 36.0 * _hermite_sup(ops, 5, 0, sups)) * g1_u
    slope = slope + _hermite_sup(ops, 3, 0, sups) / 24.0 * g2_u
    return slope


def due_hours(ops, alpha, beta, alpha0, beta0, threshold, rate, tolerance_composite, tolerance_p_ready):
    """Hours of decay (from the window's start) until the state is due; NaN for never.

    u_c = tol_c / D is where the composite is due (never when D <= tol_c:
    then u_c = 1, the whole path). P_ready is bounded only on [0, u_c]: it
    is due first when L u_c > tol_p, at u_p = tol_p / L < u_c. The due u*
    is the earlier; hours = -ln(1 - u*) / r_c. Never when neither is due,
    or when the rate is 0.
    """
    dist = composite_distance(ops, alpha, beta, alpha0, beta0)
    composite_due = dist > tolerance_composite
    u_c = ops.where(composite_due, tolerance_composite / ops.maximum(dist, 1e-300), 1.0)
    slope = p_ready_slope_bound(ops, alpha, beta, alpha0, beta0, threshold, u_c)
    # (P_ready is a probability: it never moves by more than 1, however loose the bound)
    p_ready_due = (slope * u_c > tolerance_p_ready) & (tolerance_p_ready < 1.0)
    u_p = tolerance_p_ready / ops.maximum(slope, 1e-300)
    u = ops.where(p_ready_due, ops.minimum(u_p, u_c), u_c)
    never = ~(composite_due | p_ready_due) if ops is not SCALAR else not (composite_due or p_ready_due)
    never = never | (rate <= 0.0)
    u = ops.where(never, 0.0, ops.minimum(u, 1.0 - 1e-16))
    hours = -_log1p(ops, -u) / ops.maximum(rate, 1e-300)
    return ops.where(never, math.nan, hours)


def _log1p(ops, x):
    if ops is SCALAR:
        return math.log1p(x)
    import numpy as np

    return np.log1p(x)


def due_at(params, state, last_message_at, decayed_at):
    """Epoch seconds of the first instant the stored `state` is further than a tolerance from its exact decay.

    `state` is decoded (its ``m``, ``mp`` and ``c``); last_message_at and
    decayed_at the row's times after the write (epoch seconds or None).
    None: never (no message yet, no decay rate, or the state is within both
    tolerances of where decay can take it).
    """
    cp = params.chapter(state["c"])
    start = decay_window_start(last_message_at, decayed_at, cp.decay_grace_h)
    rate = cp.decay_rate_per_h
    if start is None or rate <= 0.0:
        return None
    m, mp = state["m"], state["mp"]
    keys = vocab.METRIC_KEYS
    hours = due_hours(
        SCALAR,
        [m[k][0] for k in keys],
        [m[k][1] for k in keys],
        [mp[k][0] for k in keys],
        [mp[k][1] for k in keys],
        cp.boss_threshold,
        rate,
        params.g["decay_tolerance_composite"],
        params.g["decay_tolerance_p_ready"],
    )
    if math.isnan(hours):
        return None
    return start + hours * SECONDS_PER_HOUR
