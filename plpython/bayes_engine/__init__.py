"""Bayesian player-state engine: the Python of the PL/Python functions.

In the database, bayes.py_load puts the package into a backend on its first
call of an engine function, and every SQL function of the engine calls one
entry point of :mod:`bayes_engine.pg`; outside it, plain Python (the tests,
the benchmarks) imports the same modules.

Imports. Only the standard library, and numpy in two places off the
per-message path: :mod:`bulk` imports it at the top (in the database only
the bulk decay, ``pg.decay_states``, imports bulk) and
``readiness.monte_carlo_probability`` inside the function. ``pg`` imports
``describe``, ``bulk``, ``readiness`` and ``stats`` on first use, not when
it is loaded. Some imports are chosen for a fresh backend's first call: ``rng`` takes BLAKE2b from ``_blake2``
rather than ``hashlib``, and ``params`` recognises a ``decimal.Decimal``
without importing ``decimal``. No module imports ``plpy``: ``pg`` receives
it as an argument, runs the SQL (its only I/O) and turns a
:class:`errors.BayesError` into ``plpy.error`` with its SQLSTATE.

Caches, all per process (per backend in the database):
    pg        prepared plans by SQL text, and the :class:`params.Params` of
              the last ``bayes.params_revision`` it saw (parsed again when
              the revision moves).
    params    ``Params.derived``: values computed from the parameters and
              kept with them (the per-chapter mood transition matrices and
              the LLM budget's refill of ``model``, the encoder's lexicon,
              which keeps the evidence of each set of features it saw);
              ``DEFAULT_PARAMS``, parsed from ``DEFAULT_SNAPSHOT`` on first
              access (a backend never needs it).
    cohort    the rollout bucket of up to 10,000 user ids.
    rng       one generator that :func:`rng.draw` reseeds for each draw.
Otherwise module globals are constants built at import (the wire's and
codec's text templates, compiled patterns).

Modules:
    errors     BayesError and the SQLSTATE constants.
    vocab      fixed vocabularies (metrics, vices, moods, HMM symbols, chapters).
    params     the model parameters (snapshot of the ``bayes`` parameter tables).
    stats      Beta / Normal helpers (incomplete beta, quantiles, entropy).
    codec      the compact stored state: defaults, validation, upgrade, JSON.
    encoder    a message's text and timing as an Observation (MODEL.md 3).
    rng        the seeded SplitMix64 draws (MODEL.md 4.4).
    model      every update of MODEL.md 4 to 8 on a decoded state.
    events     each writer's input as an event, and the replay of an event log.
    wire       the JSON text of the per-message result.
    describe   the human/API view of a state (``bayes_get_state``).
    readiness  boss readiness and the fallback check of a stored state.
    stored_decay  how a decay-only write rounds its metrics (MODEL.md 5's promises).
    bulk       the bulk decay of a batch of stored texts (numpy).
    pg         the PL/Python entry points: the one module that talks to PostgreSQL.
"""

SCHEMA_VERSION = 2
