"""bayes_engine.stats against scipy."""

import math

import pytest
import scipy.stats as st
from bayes_engine import stats
from bayes_engine.errors import BayesError
from hypothesis import given, settings
from hypothesis import strategies as hs

shape = hs.floats(min_value=0.1, max_value=500.0)
level = hs.floats(min_value=0.001, max_value=0.999)


@settings(max_examples=500, deadline=None)
@given(q=level, a=shape, b=shape)
def test_beta_ppf_matches_scipy(q, a, b):
    assert stats.beta_ppf(q, a, b) == pytest.approx(st.beta.ppf(q, a, b), rel=1e-7, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(x=hs.floats(min_value=0.0, max_value=1.0), a=shape, b=shape)
def test_beta_cdf_matches_scipy(x, a, b):
    assert stats.beta_cdf(x, a, b) == pytest.approx(st.beta.cdf(x, a, b), abs=1e-9)


@pytest.mark.parametrize("a, b", [(0.05, 0.05), (0.05, 1e4), (1e4, 0.05), (1e4, 1e4), (0.5, 0.5), (1, 1)])
@pytest.mark.parametrize("q", [1e-6, 0.001, 0.025, 0.5, 0.975, 0.999, 1 - 1e-6])
def test_beta_ppf_extreme_shapes(q, a, b):
    assert stats.beta_ppf(q, a, b) == pytest.approx(st.beta.ppf(q, a, b), rel=1e-7, abs=1e-10)


def test_beta_ppf_endpoints_and_errors():
    assert stats.beta_ppf(0.0, 2, 3) == 0.0
    assert stats.beta_ppf(1.0, 2, 3) == 1.0
    with pytest.raises(BayesError) as exc:
        stats.beta_ppf(1.5, 2, 3)
    assert exc.value.sqlstate == "22023"
    with pytest.raises(BayesError):
        stats.beta_ppf(0.5, 0.0, 3)
    with pytest.raises(BayesError):
        stats.beta_ppf(0.5, 2, math.nan)


@settings(max_examples=200, deadline=None)
@given(a=shape, b=shape)
def test_beta_interval_matches_scipy(a, b):
    lo, hi = stats.beta_interval(a, b)
    lo_ref, hi_ref = st.beta.interval(0.95, a, b)
    assert lo == pytest.approx(lo_ref, rel=1e-7, abs=1e-9)
    assert hi == pytest.approx(hi_ref, rel=1e-7, abs=1e-9)
    assert 0.0 <= lo < hi <= 1.0


@settings(max_examples=200, deadline=None)
@given(a=shape, b=shape)
def test_beta_mean_var_match_scipy(a, b):
    assert stats.beta_mean(a, b) == pytest.approx(st.beta.mean(a, b), rel=1e-12)
    assert stats.beta_var(a, b) == pytest.approx(st.beta.var(a, b), rel=1e-10)


@settings(max_examples=200, deadline=None)
@given(x=hs.floats(min_value=-30.0, max_value=30.0))
def test_normal_cdf_matches_scipy(x):
    assert stats.normal_cdf(x) == pytest.approx(st.norm.cdf(x), rel=1e-12, abs=1e-300)


@settings(max_examples=200, deadline=None)
@given(p=hs.lists(hs.floats(min_value=0.0, max_value=1000.0), min_size=1, max_size=14).filter(lambda p: sum(p) > 1e-9))
def test_entropy_bits_matches_scipy(p):
    assert stats.entropy_bits(p) == pytest.approx(st.entropy(p, base=2), rel=1e-9, abs=1e-12)


def test_entropy_bits_uniform_and_errors():
    assert stats.entropy_bits([1] * 8) == pytest.approx(3.0)
    assert stats.entropy_bits([0, 0, 1]) == 0.0
    with pytest.raises(BayesError):
        stats.entropy_bits([0, 0])
    with pytest.raises(BayesError):
        stats.entropy_bits([-1, 2])
