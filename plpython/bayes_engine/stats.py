"""Distribution helpers in pure Python (math module only).

The regularized incomplete beta function uses the modified Lentz continued
fraction (Numerical Recipes ``betacf``) with ``math.lgamma``; its inverse is a
Halley/Newton iteration safeguarded by a bracket, accurate to about 1e-10 for
a, b in [0.05, 1e4].
"""

from __future__ import annotations

import math

from .errors import INVALID_PARAMETER, BayesError

_TINY = 1e-300  # Lentz guard against division by zero
_CF_EPS = 1e-15  # continued-fraction convergence
_CF_MAX_ITER = 20000  # ample for a, b up to ~1e6 (needs O(sqrt(max(a, b))))
_PPF_MAX_ITER = 300


def _check_shape(a: float, b: float) -> None:
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        raise BayesError(INVALID_PARAMETER, f"beta shape parameters must be finite and > 0, got a={a!r}, b={b!r}")


def beta_mean(a: float, b: float) -> float:
    """Mean of Beta(a, b)."""
    _check_shape(a, b)
    return a / (a + b)


def beta_var(a: float, b: float) -> float:
    """Variance of Beta(a, b)."""
    _check_shape(a, b)
    s = a + b
    return a * b / (s * s * (s + 1.0))


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_cf(x: float, a: float, b: float) -> float:
    """Continued fraction of I_x(a, b) (modified Lentz); best for x < (a+1)/(a+b+2)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    if abs(d) < _TINY:
        d = _TINY
    d = 1.0 / d
    h = d
    for m in range(1, _CF_MAX_ITER + 1):
        m2 = 2 * m
        # even step
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        h *= d * c
        # odd step
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        if abs(d) < _TINY:
            d = _TINY
        c = 1.0 + aa / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            break
    return h


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta function I_x(a, b), the CDF of Beta(a, b)."""
    _check_shape(a, b)
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_cf(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_cf(1.0 - x, b, a) / b


def beta_pdf(x: float, a: float, b: float) -> float:
    """Density of Beta(a, b) at x in (0, 1)."""
    _check_shape(a, b)
    if x <= 0.0 or x >= 1.0:
        return 0.0
    return math.exp((a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - _log_beta(a, b))


def _ppf_guess(q: float, a: float, b: float) -> float:
    """Initial guess for the Beta quantile (Numerical Recipes ``invbetai``)."""
    if a >= 1.0 and b >= 1.0:
        pp = q if q < 0.5 else 1.0 - q
        t = math.sqrt(-2.0 * math.log(pp))
        z = (2.30753 + t * 0.27061) / (1.0 + t * (0.99229 + t * 0.04481)) - t
        if q < 0.5:
            z = -z
        al = (z * z - 3.0) / 6.0
        h = 2.0 / (1.0 / (2.0 * a - 1.0 + 1e-300) + 1.0 / (2.0 * b - 1.0 + 1e-300))
        w = z * math.sqrt(al + h) / h - (1.0 / (2.0 * b - 1.0 + 1e-300) - 1.0 / (2.0 * a - 1.0 + 1e-300)) * (
            al + 5.0 / 6.0 - 2.0 / (3.0 * h)
        )
        if 2.0 * w > 700.0:
            return a / (a + b) * 1e-6
        return a / (a + b * math.exp(2.0 * w))
    lna = math.log(a / (a + b))
    lnb = math.log(b / (a + b))
    t = math.exp(a * lna) / a
    u = math.exp(b * lnb) / b
    w = t + u
    if q < t / w:
        return (a * w * q) ** (1.0 / a)
    return 1.0 - (b * w * (1.0 - q)) ** (1.0 / b)


def beta_ppf(q: float, a: float, b: float) -> float:
    """Quantile of Beta(a, b): the x with I_x(a, b) = q.

    Halley steps from a good initial guess, kept inside a bracket [lo, hi]
    that always contains the root; a step leaving the bracket is replaced by
    halving the distance to the violated bracket end (which also reaches tiny
    quantiles of small shapes geometrically fast).
    """
    _check_shape(a, b)
    if not (0.0 <= q <= 1.0):
        raise BayesError(INVALID_PARAMETER, f"quantile level must be in [0, 1], got {q!r}")
    if q == 0.0:
        return 0.0
    if q == 1.0:
        return 1.0
    lo, hi = 0.0, 1.0
    x = min(max(_ppf_guess(q, a, b), 1e-300), 1.0 - 1e-16)
    log_b = _log_beta(a, b)
    for _ in range(_PPF_MAX_ITER):
        f = beta_cdf(x, a, b) - q
        if f == 0.0:
            return x
        if f < 0.0:
            lo = x
        else:
            hi = x
        log_pdf = (a - 1.0) * math.log(x) + (b - 1.0) * math.log1p(-x) - log_b
        pdf = math.exp(log_pdf) if log_pdf < 700.0 else math.inf
        candidate = math.nan
        if 0.0 < pdf < math.inf:
            u = f / pdf
            # Halley correction, limited so that it never more than doubles the step.
            curvature = u * ((a - 1.0) / x - (b - 1.0) / (1.0 - x))
            step = u / (1.0 - 0.5 * min(1.0, curvature))
            if abs(step) <= 1e-15 * x:
                return x
            candidate = x - step
        if not (lo < candidate < hi):
            candidate = 0.5 * (x + (lo if f > 0.0 else hi))
        if candidate == x or hi - lo <= 1e-15 * hi:
            return x
        x = candidate
    return x


def beta_interval(a: float, b: float, mass: float = 0.95) -> tuple[float, float]:
    """Equal-tailed credible interval of Beta(a, b) holding `mass`."""
    if not (0.0 < mass < 1.0):
        raise BayesError(INVALID_PARAMETER, f"interval mass must be in (0, 1), got {mass!r}")
    tail = (1.0 - mass) / 2.0
    return beta_ppf(tail, a, b), beta_ppf(1.0 - tail, a, b)


def normal_cdf(x: float) -> float:
    """Standard normal CDF Phi(x) (via erfc, accurate in both tails)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def entropy_bits(p: list[float]) -> float:
    """Shannon entropy in bits of a distribution; p is normalised by its sum."""
    total = math.fsum(p)
    if not total > 0 or any(x < 0 for x in p):
        raise BayesError(INVALID_PARAMETER, "entropy needs non-negative weights with a positive sum")
    h = 0.0
    for x in p:
        px = x / total
        if px > 0:
            h -= px * math.log2(px)
    return max(h, 0.0)
