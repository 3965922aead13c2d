"""The promises of MODEL.md section 5, on the numbers as stored.

A decay, as events.decayed_text writes it (decode, model.decay, the
codec's rounding to 6 significant digits), per metric, with S = alpha + beta,
mu = alpha / S, and the prior's S0 and mu0 (the state's ``mp``):

- the stored mean after is not above the stored mean before (absence is never rewarded);
- the stored S after is not above the stored S before (a posterior is never narrowed);
- a metric with S <= S0 keeps its S (up to the rounding of alpha and beta, never above);
- neither crosses below its prior by more than the rounding: S >= S0 and mu >= mu0
  after, when they were before, up to one 6-digit step (a mean that sits on its
  prior's has no grid point that is neither above the mean before nor below mu0:
  stored_decay.settle_decayed_metric then keeps MODEL.md's two promises and lets the
  mean land up to one step below mu0).

The nearest 6-digit rounding breaks one of these now and then (a mean just
above mu0 and a tiny decay: the rounding alone can raise the mean);
stored_decay.settle_decayed_metric then picks other 6-digit neighbours. The tests
below find such states by search and check that they keep the promises, and
that the bulk decay (bulk.decayed_texts, numpy over a batch) writes what
events.decayed_text writes, row by row, these rows included.

Keeping the promises is not enough: what is stored must still be section
5's formula, each number within its 6-digit rounding. settle_decayed_metric
keeps a metric as it was only for "a decay too small to be stored"; a
metric whose mean sits at its prior's mean (or within about 1e-6 of it)
must still lose strength (test_a_metric_whose_mean_is_its_priors_still_widens).
"""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest
from bayes_dev.states import HOUR, T0, fresh, states
from bayes_engine import bulk, codec, events, model, stored_decay, vocab
from bayes_engine.params import DEFAULT_PARAMS as P
from hypothesis import event, given, settings
from hypothesis import strategies as hs

ROUNDING = 1e-5  # relative: two numbers of 6 significant digits, each within 5e-6 of what they round


def jsonb_layout(text):
    """A state's JSON text as PostgreSQL prints a jsonb: keys sorted by length then bytes, ", " and ": "."""

    def order(value):
        if isinstance(value, dict):
            return {k: order(value[k]) for k in sorted(value, key=lambda k: (len(k), k.encode()))}
        if isinstance(value, list):
            return [order(x) for x in value]
        return value

    return json.dumps(order(json.loads(text)), separators=(", ", ": "))


def summary(pair):
    a, b = pair
    return a + b, a / (a + b)


def check_promises(before_text, after_text):
    """Section 5's promises, metric by metric, on the two stored texts."""
    before, after = codec.decode(before_text, P), codec.decode(after_text, P)
    assert after["mp"] == before["mp"]
    for key in vocab.METRIC_KEYS:
        s, mu = summary(before["m"][key])
        s1, mu1 = summary(after["m"][key])
        s0, mu0 = summary(before["mp"][key])
        where = (key, before["m"][key], after["m"][key], before["mp"][key])
        assert mu1 <= mu, where
        assert s1 <= s, where
        if s <= s0:
            assert s * (1 - ROUNDING) <= s1, where  # keeps its S, up to the rounding, never above
        if s >= s0:
            assert s1 >= s0 * (1 - ROUNDING), where
        if mu >= mu0:
            assert mu1 >= mu0 * (1 - ROUNDING), where


def grace_hours(chapter):
    return P.chapter(chapter).decay_grace_h


@hs.composite
def decays(draw, state_strategy=None):
    """(state text, last message, decayed_at, now): a stored state and an absence, past the grace or not."""
    state = draw(states() if state_strategy is None else state_strategy)
    text = codec.encode(state)
    grace = grace_hours(state["c"])
    hours = draw(
        hs.one_of(
            hs.floats(0, 3000),  # anything
            hs.floats(0, 0.05).map(lambda x: grace + x),  # just past the grace: a tiny decay
            hs.floats(1e-9, 1e-3).map(lambda x: grace + x),
        )
    )
    since = draw(hs.one_of(hs.none(), hs.floats(0, 1).map(lambda x: x * hours)))
    decayed_at = None if since is None else T0 + since * HOUR
    return text, T0, decayed_at, T0 + hours * HOUR


@settings(max_examples=300, deadline=None)
@given(decays())
def test_a_stored_decay_keeps_section_5s_promises(case):
    text, last, decayed_at, now = case
    check_promises(text, events.decayed_text(P, text, last, decayed_at, now))


# States whose means sit just above their prior's, some of them with S below S0:
# where the rounding of a small decay is most likely to break a promise.
def near_prior_pair(key, chapter):
    a0, b0 = P.metric_prior(chapter)[key]
    s0, mu0 = a0 + b0, a0 / (a0 + b0)
    return hs.tuples(hs.floats(0.3, 4.0), hs.floats(1e-7, 1e-3)).map(
        lambda x: [mu0 * (1 + x[1]) * s0 * x[0], (1 - mu0 * (1 + x[1])) * s0 * x[0]]
    )


@hs.composite
def near_prior_states(draw):
    chapter = draw(hs.integers(1, 5))
    state = fresh(chapter)
    for key in vocab.METRIC_KEYS:
        state["m"][key] = draw(hs.one_of(near_prior_pair(key, chapter), hs.just(list(state["mp"][key]))))
    state["n"] = state["nc"] = draw(hs.integers(0, 500))
    return state


def takes_the_settle_path(text, last, decayed_at, now):
    """Whether the nearest 6-digit rounding of this decay breaks a promise (then settle_decayed_metric works)."""
    state = codec.decode(text, P)
    before = {key: list(pair) for key, pair in state["m"].items()}
    model.decay(state, P, last, decayed_at, now)
    for key in vocab.METRIC_KEYS:
        nearest = [stored_decay.stored_float(x) for x in state["m"][key]]
        if not stored_decay.decay_kept_promises(*nearest, *before[key], *state["mp"][key]):
            return True
    return False


@settings(max_examples=300, deadline=None)
@given(decays(near_prior_states()))
def test_near_the_prior_a_stored_decay_keeps_the_promises(case):
    text, last, decayed_at, now = case
    event("settle path" if takes_the_settle_path(*case) else "nearest rounding")
    check_promises(text, events.decayed_text(P, text, last, decayed_at, now))


@settings(max_examples=100, deadline=None)
@given(decays())
def test_within_the_grace_nothing_moves(case):
    text, last, _, _ = case
    state = codec.decode(text, P)
    now = last + grace_hours(state["c"]) * HOUR  # exactly at the boundary: not decayed
    assert events.decayed_text(P, text, last, None, now) == text


def section_5(pair, prior, f):
    """Section 5's step for one metric, written out here: (alpha, beta) after a decay by factor f."""
    (s, mu), (s0, mu0) = summary(pair), summary(prior)
    s1 = s0 + (s - s0) * f if s > s0 else s
    mu1 = mu0 + (mu - mu0) * f if mu > mu0 else mu
    return mu1 * s1, (1 - mu1) * s1


def metric_factor(chapter, last, decayed_at, now):
    """f = exp(-r_c hours) over [max(decayed_at, last + grace_c), now]; 1 when that window is empty."""
    cp = P.chapter(chapter)
    start = last + cp.decay_grace_h * HOUR
    if decayed_at is not None and decayed_at > start:
        start = decayed_at
    return math.exp(-cp.decay_rate_per_h * (now - start) / HOUR) if now > start else 1.0


@settings(max_examples=200, deadline=None)
@given(hs.one_of(decays(), decays(near_prior_states())))
def test_the_stored_decay_is_the_formula_up_to_the_rounding(case):
    """What is stored is section 5's formula (written out above), each number within its 6-digit rounding."""
    text, last, decayed_at, now = case
    before = codec.decode(text, P)
    after = codec.decode(events.decayed_text(P, text, last, decayed_at, now), P)
    f = metric_factor(before["c"], last, decayed_at, now)
    for key in vocab.METRIC_KEYS:
        want = section_5(before["m"][key], before["mp"][key], f)
        assert after["m"][key] == pytest.approx(want, rel=2 * ROUNDING), (key, f)
        if summary(before["m"][key])[0] <= summary(before["mp"][key])[0]:
            # S <= S0: the formula keeps S; the stored one is within the rounding of alpha and beta
            assert summary(after["m"][key])[0] == pytest.approx(summary(before["m"][key])[0], rel=ROUNDING)


@pytest.mark.parametrize(
    "chapter, key, pair, hours",
    [
        (4, "i", (34.0, 16.0), 50.0),  # mean .68, chapter 4's prior mean, strength 50 (S0 = 25)
        (5, "s", (40.0, 10.0), 100.0),  # mean .80 = mu0, strength 50 (S0 = 28)
        (1, "i", (3.0, 12.0), 100.0),  # mean .20 = mu0, strength 15 (S0 = 7.5)
        (1, "s", (4.00001, 6.00001), 100.0),  # mean 6e-7 above mu0 = .4, strength 10 (S0 = 5)
    ],
)
def test_a_metric_whose_mean_is_its_priors_still_widens(chapter, key, pair, hours):
    """Section 5: S <- S0 + (S - S0) f, the mean unchanged (it is not above mu0): a real decay, not a rounding."""
    state = fresh(chapter)
    state["m"][key] = list(pair)
    state["n"] = state["nc"] = 50
    text = codec.encode(state)
    now = T0 + (grace_hours(chapter) + hours) * HOUR
    stored = codec.decode(events.decayed_text(P, text, T0, None, now), P)["m"][key]
    want = section_5(pair, state["mp"][key], metric_factor(chapter, T0, None, now))
    assert summary(want)[0] < 0.95 * summary(pair)[0]  # S loses more than 5%: far more than any rounding
    check_promises(text, codec.encode(dict(state, m={**state["m"], key: list(stored)})))
    assert stored == pytest.approx(want, rel=2 * ROUNDING), (stored, want)


# --------------------------------------------------------------------------
# States found by search where the nearest rounding alone breaks a promise
# --------------------------------------------------------------------------


def nearest_breaks(pair, prior, hours_past_grace, chapter):
    """Which promises the nearest 6-digit rounding of this one-metric decay breaks (independent arithmetic)."""
    f = math.exp(-P.chapter(chapter).decay_rate_per_h * hours_past_grace)
    alpha, beta = model.decayed_metric(*pair, *prior, f)
    a1, b1 = float(f"{alpha:.6g}"), float(f"{beta:.6g}")
    s, mu = summary(pair)
    s1, mu1 = a1 + b1, a1 / (a1 + b1)
    s0, mu0 = summary(prior)
    broken = set()
    if mu1 > mu:
        broken.add("mean raised")
    if s1 > s:
        broken.add("narrowed")
    if s >= s0 and s1 < s0:
        broken.add("S below S0")
    if mu >= mu0 and mu1 < mu0:
        broken.add("mean below mu0")
    return broken


def search(chapter, key, pairs, absences, limit=5000):
    """{promise: (pair, hours past the grace)}: the first candidates whose nearest rounding breaks each promise.

    Stops when every promise has its example, or after `limit` pairs.
    """
    prior = tuple(P.metric_prior(chapter)[key])
    found = {}
    for pair in itertools.islice(pairs, limit):
        pair = [stored_decay.stored_float(x) for x in pair]  # a pair as stored
        for hours in absences:
            for promise in nearest_breaks(pair, prior, hours, chapter):
                found.setdefault(promise, (pair, hours))
        if len(found) == len(PROMISES):
            break
    return found


def six_digits(x):
    return float(f"{x:.6g}")


# Chapter 1, intimacy: prior (1.5, 6), mu0 = 0.2, S0 = 7.5. Candidates: S and mu just
# above S0 and mu0 (relative excess 1e-7 to 1e-2, or any mean above mu0), seeded; and
# absences from a ten-millionth of an hour past the grace to thousands of hours.
def candidates(seed=5):
    rnd = random.Random(seed)
    s0, mu0 = 7.5, 0.2
    while True:
        s = s0 * (1 + 10 ** rnd.uniform(-7, -2)) if rnd.random() < 0.8 else rnd.uniform(4.0, s0)
        mu = mu0 * (1 + 10 ** rnd.uniform(-7, -2)) if rnd.random() < 0.7 else rnd.uniform(mu0, 0.99)
        yield [mu * s, (1 - mu) * s]


ABSENCES = [10.0**-e for e in range(1, 8)] + [x * 1e-3 for x in range(1, 20)] + [50.0, 300.0, 1000.0, 3000.0]
PROMISES = ("mean raised", "narrowed", "S below S0", "mean below mu0")


@pytest.fixture(scope="module")
def breaking_cases():
    return search(1, "i", candidates(), ABSENCES)


def test_the_search_finds_roundings_that_would_break_each_promise(breaking_cases):
    assert set(breaking_cases) == set(PROMISES), breaking_cases


def row_with(pair, chapter=1, key="i"):
    state = fresh(chapter)
    state["m"][key] = list(pair)
    state["n"] = state["nc"] = 30
    return codec.encode(state)


@pytest.mark.parametrize("promise", PROMISES)
def test_a_state_where_the_rounding_alone_would_break_a_promise_keeps_it(breaking_cases, promise):
    pair, hours = breaking_cases[promise]
    text = row_with(pair)
    now = T0 + (grace_hours(1) + hours) * HOUR
    assert takes_the_settle_path(text, T0, None, now)
    out = events.decayed_text(P, text, T0, None, now)
    check_promises(text, out)
    stored = codec.decode(out, P)["m"]["i"]
    s, mu = summary(pair)
    s1, mu1 = summary(stored)
    assert mu1 <= mu and s1 <= s  # the stored mean does not go up, the stored S does not narrow
    bulk_out, errors = bulk.decayed_texts(P, [jsonb_layout(text)], [T0], [None], now)
    assert errors == [None] and json.loads(bulk_out[0]) == json.loads(out)


def test_the_mean_raising_example_by_hand(breaking_cases):
    """The first state found where the nearest rounding would raise the stored mean, spelled out."""
    pair, hours = breaking_cases["mean raised"]
    f = math.exp(-0.008 * hours)
    alpha, beta = model.decayed_metric(*pair, 1.5, 6.0, f)
    nearest = six_digits(alpha), six_digits(beta)
    assert summary(nearest)[1] > summary(pair)[1]  # what a plain rounding would store
    text = row_with(pair)
    stored = codec.decode(events.decayed_text(P, text, T0, None, T0 + (8 + hours) * HOUR), P)["m"]["i"]
    assert summary(stored)[1] <= summary(pair)[1]
    assert summary(stored)[1] >= 0.2  # and not below the prior's mean either


# --------------------------------------------------------------------------
# The bulk decay writes what the per-row decay writes
# --------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.one_of(decays(), decays(near_prior_states())), min_size=1, max_size=10), hs.floats(0, 3000))
def test_the_bulk_decay_equals_the_per_row_decay(rows, hours):
    """bulk.decayed_texts over a batch (one `now`, as bayes.run_decay calls it) is events.decayed_text, row by row."""
    now = T0 + hours * HOUR
    texts = [jsonb_layout(text) for text, _, _, _ in rows]
    decayed_at = [d if d is None or d <= now else now for _, _, d, _ in rows]
    last = [t for _, t, _, _ in rows]
    out, errors = bulk.decayed_texts(P, texts, last, decayed_at, now)
    assert errors == [None] * len(rows)
    for text, lm, d, got in zip(texts, last, decayed_at, out):
        want = events.decayed_text(P, text, lm, d, now)
        assert json.loads(got) == json.loads(want)
        check_promises(text, got)
        if takes_the_settle_path(text, lm, d, now):
            event("a row took the settle path")


@pytest.mark.parametrize("hours", [0.0, 1e-6, 1e-3, 0.5, 100.0, 3000.0])
def test_a_batch_mixing_settle_rows_and_plain_rows(breaking_cases, hours):
    """The rows found by the search, between ordinary rows, at one `now` per batch."""
    plain = [fresh(c) for c in vocab.CHAPTERS]
    plain[2]["m"]["i"] = [12.5, 3.25]
    plain[4]["m"]["t"] = [3.0, 40.0]
    texts = [codec.encode(s) for s in plain]
    lasts = [T0] * len(texts)
    for pair, past in breaking_cases.values():
        texts.append(row_with(pair))
        lasts.append(T0 + (hours - past) * HOUR)  # this row is `past` hours beyond its grace at `now`
    now = T0 + (grace_hours(1) + hours) * HOUR
    layouts = [jsonb_layout(t) for t in texts]
    assert all(bulk._LAYOUT.match(t) for t in layouts)  # all take the batch path first
    settle = [takes_the_settle_path(t, lm, None, now) for t, lm in zip(layouts, lasts)]
    out, errors = bulk.decayed_texts(P, layouts, lasts, [None] * len(layouts), now)
    assert errors == [None] * len(layouts)
    for text, lm, got in zip(layouts, lasts, out):
        assert json.loads(got) == json.loads(events.decayed_text(P, text, lm, None, now))
        check_promises(text, got)
    assert any(settle[len(plain) :])
