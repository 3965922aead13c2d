"""The project's test and demo helpers, installed into .venv by scripts/setup
(editable, next to bayes_engine) so that tests/ and scripts/ import them by name.

- bayes_dev.states: decoded states, a hypothesis strategy and a scripted
  conversation for the unit tests.
"""
