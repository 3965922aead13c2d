"""Independent references for the tests: MODEL.md formulas written out with
scipy, sharing no code with bayes_engine."""

import math

from bayes_engine import vocab
from scipy import stats


def edgeworth(state, threshold):
    """P(composite >= threshold) by MODEL.md section 6's Edgeworth expansion, from scipy's Beta moments."""
    k = [0.0, 0.0, 0.0, 0.0]
    for key, w in zip(vocab.METRIC_KEYS, vocab.METRIC_WEIGHTS):
        a, b = state["m"][key]
        mean, var, skew, kurt = (float(x) for x in stats.beta.stats(a, b, moments="mvsk"))
        c = 100 * w
        k[0] += c * mean
        k[1] += c**2 * var
        k[2] += c**3 * skew * var**1.5
        k[3] += c**4 * kurt * var**2
    z = (threshold - k[0]) / math.sqrt(k[1])
    g1, g2 = k[2] / k[1] ** 1.5, k[3] / k[1] ** 2
    correction = g1 / 6 * (z**2 - 1) + g2 / 24 * (z**3 - 3 * z) + g1**2 / 72 * (z**5 - 10 * z**3 + 15 * z)
    return min(1.0, max(0.0, 1 - (stats.norm.cdf(z) - stats.norm.pdf(z) * correction)))
