"""Boss readiness (MODEL.md section 6) and the fallback check (section 7,
rules 1 and 3) of a stored state, for the read RPCs and the SQL functions
that analysts use.

Three methods give P_ready = Pr(C >= T_c), C = 100 * sum_j w_j * theta_j with
independent theta_j ~ Beta(alpha_j, beta_j):

- ``edgeworth`` (the default): the fourth-order Edgeworth expansion from the
  composite's exact cumulants, as every writer's result reports it
  (model.boss_readiness); within 0.005 of the exact probability on the
  grid of tests/unit/test_readiness.py;
- ``normal``: Phi((E[C] - T_c) / sd(C)), MODEL.md v1's method, kept for
  comparison (up to about 0.03 off the exact value);
- ``monte_carlo``: the fraction of 10,000 joint draws of the four Betas
  (numpy, imported on first use) whose composite reaches T_c. The draws are
  seeded by (user_id, n, "readiness") and the optional session seed, like
  every other draw of the engine, so a repeated call gives the same answer.
"""

from . import model, rng, vocab
from .errors import INVALID_PARAMETER, BayesError

METHODS = ("edgeworth", "normal", "monte_carlo")
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


def readiness(state, params, method="edgeworth", user_id="", session_seed=None):
    """Section 6 for a state: P_ready by `method`, ready, the confidence label and what they rest on."""
    if method not in METHODS:
        raise BayesError(
            INVALID_PARAMETER,
            f"unknown readiness method {method!r}",
            "methods are 'edgeworth' (the default), 'normal' and 'monte_carlo'",
        )
    _, composite, composite_sd = model.metric_summary(state)
    boss = model.boss_readiness(state, params)
    if method == "normal":
        p = model.normal_probability(composite, composite_sd, boss["threshold"])
        boss.update(p_ready=p, ready=p >= params.g["ready_probability"], confidence=model.confidence_label(p))
    elif method == "monte_carlo":
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
    """Section 7's rules 1 and 3 for a stored state, consuming nothing.

    no_signals and the audit need a message. `needed` says whether a
    request would be granted now (cold_start always; uncertain with at least
    one token of the LLM budget left); the numbers the rules read come with it.
    """
    _, composite, composite_sd = model.metric_summary(state)
    boss = model.boss_readiness(state, params)
    result = model.fallback_status(state, params, boss["p_ready"])
    margin = params.g["uncertain_margin"]
    result.update(
        {
            "chapter": state["c"],
            "n": state["n"],
            "cold_start_messages": params.g["cold_start_messages"],
            "composite": composite,
            "composite_sd": composite_sd,
            "threshold": boss["threshold"],
            "p_ready": boss["p_ready"],
            "uncertain_band": [margin, 1.0 - margin],
            "budget_tokens": params.g["llm_budget_tokens"],
        }
    )
    return result
