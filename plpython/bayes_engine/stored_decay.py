"""How a decay-only write stores its metrics: MODEL.md section 5's promises
kept by the stored (rounded) numbers.

The codec writes every float with 6 significant digits. A decay lowers a
mean (never raises it) and lowers a strength S = alpha + beta towards the
prior's (never narrows a posterior); rounding alpha and beta to 6 digits
each could undo either by a few 1e-6. So a write that only decays (the bulk
decay, one row of ``bayes.decay_state``, the decay that ends a replay)
stores each metric through :func:`settle_decayed_metric`, which checks the
stored numbers against the stored numbers before the decay.

Not on the per-message path (there the decay is followed by the message's
own update before anything is stored): imported by ``events.decayed_text``
and by ``bulk``, so a fresh backend's first message does not compile it.
"""

from . import codec, vocab
from .codec import MIN_CONCENTRATION, SIGNIFICANT_DIGITS


def stored_float(x: float) -> float:
    """The float that reads back from x written with 6 significant digits."""
    return float(format(x, ".6g"))


def decay_kept_promises(alpha, beta, before_alpha, before_beta, alpha0, beta0):
    """Whether a decayed metric (alpha, beta), as stored, keeps every promise of MODEL.md section 5.

    Against the metric before the decay (as stored) and its prior: the mean
    is not above the mean before; the strength S = alpha + beta is not above
    the strength before (never narrowed); and neither went below its
    prior's value (S0, mu0) where it was at or above it before (rounding does
    not take a strength or a mean past where decay can take it). Pure
    arithmetic: the bulk decay runs it on numpy arrays.
    """
    strength, before_strength, strength0 = alpha + beta, before_alpha + before_beta, alpha0 + beta0
    mean, before_mean, mean0 = alpha / strength, before_alpha / before_strength, alpha0 / strength0
    return model_promises_kept(mean, strength, before_mean, before_strength) & (
        ((strength >= strength0) | (before_strength < strength0)) & ((mean >= mean0) | (before_mean < mean0))
    )


def model_promises_kept(mean, strength, before_mean, before_strength):
    """The two promises MODEL.md section 5 states: the mean not raised, the posterior not narrowed."""
    return (mean <= before_mean) & (strength <= before_strength)


def settle_decayed_metric(pair, before, prior):
    """The (alpha, beta) to store for a metric decayed from `before` to `pair` (floats).

    1. The nearest 6-digit values, when they keep every promise of
       :func:`decay_kept_promises` (nearly always).
    2. Otherwise, among the four pairs of 6-digit values just below and just
       above alpha and beta, the one nearest to the exact decay that keeps
       every promise; or, when none does (a mean that sits on its prior's,
       where the grid has no point that is neither above the mean before nor
       below the prior mean), the nearest that keeps MODEL.md's two promises
       (:func:`model_promises_kept`): the mean may then land up to one
       rounding step below the prior mean, the strength below the prior's.
    3. Otherwise `before` itself: a decay smaller than the rounding step
       keeps the metric as it was.
    """
    alpha, beta = float(pair[0]), float(pair[1])
    before, prior = (float(before[0]), float(before[1])), (float(prior[0]), float(prior[1]))
    nearest = (stored_float(alpha), stored_float(beta))
    if decay_kept_promises(*nearest, *before, *prior):
        return nearest
    down, up = _directed()
    mean, strength = alpha / (alpha + beta), alpha + beta
    before_mean, before_strength = before[0] / (before[0] + before[1]), before[0] + before[1]
    every, model = None, None
    for a in (down(alpha), up(alpha)):
        for b in (down(beta), up(beta)):
            if a < MIN_CONCENTRATION or b < MIN_CONCENTRATION:
                continue
            distance = (abs(a / (a + b) - mean), abs(a + b - strength))
            if decay_kept_promises(a, b, *before, *prior):
                if every is None or distance < every[0]:
                    every = (distance, (a, b))
            elif model_promises_kept(a / (a + b), a + b, before_mean, before_strength):
                if model is None or distance < model[0]:
                    model = (distance, (a, b))
    best = every or model
    return tuple(before) if best is None else best[1]


_roundings = []


def _directed():
    """(down, up): x rounded to 6 significant digits towards -inf and towards +inf, as floats.

    decimal does it exactly; it is imported on first use (the rare path).
    """
    if not _roundings:
        import decimal

        for rounding in (decimal.ROUND_FLOOR, decimal.ROUND_CEILING):
            plus = decimal.Context(prec=SIGNIFICANT_DIGITS, rounding=rounding).plus
            _roundings.append(lambda x, plus=plus, exact=decimal.Decimal: float(plus(exact(x))))
    return _roundings


def encode_decayed(state: dict, before: dict) -> str:
    """Serialise a state that ``codec.decode`` returned and only ``model.decay`` changed.

    `before` is the metric object ``m`` as decoded, before the decay: each
    metric is rounded by :func:`settle_decayed_metric`. It skips
    ``codec.encode``'s second validation (decay keeps every value finite and
    positive, the belief summing to 1), which is a third of the Python work
    per row. Consumes `state`.
    """
    m, mp = state["m"], state["mp"]
    for key in vocab.METRIC_KEYS:
        m[key] = list(settle_decayed_metric(m[key], before[key], mp[key]))
    return codec.encode_normalised(state)
