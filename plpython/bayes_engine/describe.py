"""The human/API view of a state, as returned by the RPC ``bayes_get_state``."""

from __future__ import annotations

import math

from . import SCHEMA_VERSION, stats, vocab
from .codec import validate
from .params import Params


def describe_state(state: dict, params: Params) -> dict[str, object]:
    """Means, variances, 95% intervals, composite, mood, vices, skip and timing of a state.

    The result holds only plain Python numbers, strings, lists and dicts, so it
    is JSON-serialisable as is.
    """
    s = validate(state)
    chapter = s["c"]
    weights = params.weights

    metrics: dict[str, object] = {}
    composite = 0.0
    composite_var = 0.0
    for key, name, w in zip(vocab.METRIC_KEYS, vocab.METRIC_NAMES, weights):
        alpha, beta = s["m"][key]
        mean = stats.beta_mean(alpha, beta)
        var = stats.beta_var(alpha, beta)
        lo, hi = stats.beta_interval(alpha, beta, 0.95)
        metrics[name] = {"alpha": alpha, "beta": beta, "mean": mean, "var": var, "ci95": [lo, hi]}
        composite += w * mean
        composite_var += w * w * var

    h = s["h"]
    mood_index = max(range(len(h)), key=lambda j: (h[j], -j))  # first argmax

    d = s["d"]
    d_total = math.fsum(d)
    mixture = [x / d_total for x in d]
    order = sorted(range(len(mixture)), key=lambda j: (-mixture[j], j))

    a_skip, a_respond, consecutive = s["k"]
    mu, tau = s["g"]
    return {
        "schema_version": SCHEMA_VERSION,
        "chapter": chapter,
        "n": s["n"],
        "nc": s["nc"],
        "metrics": metrics,
        "composite": 100.0 * composite,
        "composite_sd": 100.0 * math.sqrt(composite_var),
        "mood": {
            "state": vocab.MOODS[mood_index],
            "belief": dict(zip(vocab.MOODS, h)),
        },
        "vices": {
            "mixture": dict(zip(vocab.VICES, mixture)),
            "top": [[vocab.VICES[j], mixture[j]] for j in order[:3]],
            "entropy_bits": stats.entropy_bits(mixture),
        },
        "skip": {
            "a_skip": a_skip,
            "a_respond": a_respond,
            "consecutive_skips": consecutive,
            "p_skip_mean": a_skip / (a_skip + a_respond),
        },
        "timing": {"mu_log_s": mu, "tau": tau, "typical_gap_s": math.exp(min(mu, 700.0))},
        "llm_budget": {
            "tokens_left": s["lb"],
            "tokens": params.g["llm_budget_tokens"],
            "window_messages": params.g["llm_budget_window"],
        },
        "boss": {"threshold": params.chapter(chapter).boss_threshold},
    }
