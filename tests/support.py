"""Transitional: the helpers moved to bayes_dev.support (scripts/bayes_dev/).

Only tests/test_build.py still imports `support` (pytest puts tests/ on the
import path for the test modules in it); remove this file once it imports
bayes_dev.support instead."""

from bayes_dev.support import ROOT

__all__ = ["ROOT"]
