"""bayes_engine.rng: the SplitMix64 stream, its Beta draws and how draws are
keyed by player, message number, purpose and seed."""

from bayes_engine import rng
from scipy import stats


def test_splitmix64_matches_the_reference_sequence():
    # SplitMix64 from state 0 (Vigna's splitmix64.c): first outputs
    g = rng.SplitMix64(0)
    for want in (0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F):
        assert g.random() == (want >> 11) * 2.0**-53


def test_beta_draws_have_the_beta_distribution():
    draws = [rng.generator("u", n, rng.SKIP_THETA).betavariate(2.0, 8.0) for n in range(5000)]
    assert stats.kstest(draws, stats.beta(2.0, 8.0).cdf).pvalue > 1e-3


def test_draws_are_reproducible_and_separated_by_purpose_and_seed():
    a = rng.generator("u", 7, rng.SKIP_THETA).random()
    assert a == rng.generator("u", 7, rng.SKIP_THETA).random()
    assert a != rng.generator("u", 7, rng.SKIP_UNIFORM).random()
    assert a != rng.generator("u", 8, rng.SKIP_THETA).random()
    assert a != rng.generator("v", 7, rng.SKIP_THETA).random()
    assert a != rng.generator("u", 7, rng.SKIP_THETA, "42").random()
