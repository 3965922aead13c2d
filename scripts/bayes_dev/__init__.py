"""The project's test and demo helpers, installed into .venv by scripts/setup
(editable, declared in pyproject.toml next to bayes_engine), so that tests/ and
scripts/ import them by name, with no change to the import path.

- bayes_dev.support: paths, psql, the local bootstrap and migrations, players,
  JWTs, API roles and a supabase-py client of the local stack (the db and e2e
  tests, scripts/demo.py, scripts/bench.py).
- bayes_dev.players: large seeded populations of engine-made players (the
  bulk-decay and analytics tests, scripts/bench.py).
- bayes_dev.lifetime: the lifetime benchmark of the LLM fallback (issue 13):
  corpus, LLM stand-in, population, policies, and the check through the RPCs
  (scripts/bench_fallback.py, tests/unit/test_lifetime.py,
  tests/e2e/test_lifetime_bench.py).
- bayes_dev.states: decoded states, a hypothesis strategy and a scripted
  conversation for the unit tests.
"""
