"""Boss readiness (MODEL.md section 6) and the fallback check (section 7,
rules 1, 2 and 4) of a stored state, for the read RPCs and the SQL functions
that analysts use.

Two methods give P_ready = Pr(C >= T_c), C = 100 * sum_j w_j * theta_j with
independent theta_j ~ Beta(alpha_j, beta_j):

- ``normal`` (the default): Phi((E[C] - T_c) / sd(C)), as every writer's
  result reports it (model.boss_readiness);
- ``monte_carlo``: the fraction of 10,000 joint draws of the four Betas
  (numpy, imported on first use) whose composite reaches T_c. The draws are
  seeded by (user_id, n, "readiness") and the optional session seed, like
  every other draw of the engine, so a repeated call gives the same answer.
"""

from . import model, rng, vocab
from .errors import INVALID_PARAMETER, BayesError

METHODS = ("normal", "monte_carlo")
MONTE_CARLO_DRAWS = 10_000
READINESS = "readiness"  # the purpose of the Monte Carlo draws' seed


def monte_carlo_probability(state, threshold, draws=MONTE_CARLO_DRAWS, seed=0):
    """Pr(C >= threshold) estimated from `draws` joint draws of the metric Betas."""
    import numpy as np  # about 50 ms the first time in a backend: only this method pays it

    generator = np.random.Generator(np.random.PCG64(seed))
    composite = np.zeros(draws)
    for key, weight in zip(vocab.METRIC_KEYS, vocab.METRIC_WEIGHTS):
        alpha, beta = state["m"][key]
        composite += weight * generator.beta(alpha, beta, draws)
    return float(np.count_nonzero(100.0 * composite >= threshold)) / draws


def readiness(state, params, method="normal", user_id="", session_seed=None):
    """Section 6 for a state: P_ready by `method`, ready, the confidence label and what they rest on."""
    if method not in METHODS:
        raise BayesError(
            INVALID_PARAMETER,
            f"unknown readiness method {method!r}",
            "methods are 'normal' (the default) and 'monte_carlo'",
        )
    _, composite, composite_sd = model.metric_summary(state)
    boss = model.boss_readiness(state, params, composite, composite_sd)
    if method == "monte_carlo":
        seed = rng.seed_of(user_id, state["n"], READINESS, session_seed)
        p = monte_carlo_probability(state, boss["threshold"], MONTE_CARLO_DRAWS, seed)
        boss.update(
            p_ready=p,
            ready=p >= params.g["ready_probability"],
            confidence=model.confidence_label(p),
            draws=MONTE_CARLO_DRAWS,
        )
    boss.update(method=method, chapter=state["c"], n=state["n"], composite=composite, composite_sd=composite_sd)
    return boss


def fallback_check(state, params):
    """Section 7's rules 1, 2 and 4 for a stored state (no_signals needs a message)."""
    metrics, composite, composite_sd = model.metric_summary(state)
    reason = model.fallback_reason(state, params, metrics, composite)
    threshold = params.chapter(state["c"]).boss_threshold
    return {
        "needed": reason != "bayesian_sufficient",
        "reason": reason,
        "chapter": state["c"],
        "n": state["n"],
        "composite": composite,
        "composite_sd": composite_sd,
        "threshold": threshold,
        "variances": {name: metrics[name]["var"] for name in vocab.METRIC_NAMES},
    }
