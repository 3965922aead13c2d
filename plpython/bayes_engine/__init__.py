"""Bayesian player-state engine (pure Python core of the PL/Python functions).

The package is embedded into PL/Python functions running inside PostgreSQL, so
it uses only the standard library, performs no I/O, keeps no mutable global
state and never imports ``plpy``. The SQL wrappers translate
:class:`bayes_engine.errors.BayesError` into ``plpy.error(..., sqlstate=...)``.

Modules:
    errors    BayesError and the SQLSTATE constants.
    vocab     fixed vocabularies (metrics, vices, moods, HMM symbols, chapters).
    params    the model parameters (snapshot of the ``bayes`` parameter tables).
    stats     Beta / Normal helpers (incomplete beta, quantiles, entropy).
    codec     the compact stored state: defaults, validation, upgrade, JSON.
    describe  the human/API view of a state (``bayes_get_state``).
"""

SCHEMA_VERSION = 1
