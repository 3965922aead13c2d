"""bayes_engine.decay_due: the bulk decay's due time, against brute force.

The due time of a stored state is the first instant at which its exactly
decayed state is further than a tolerance from it: the composite by more
than decay_tolerance_composite (exact, closed form), or P_ready by more than
decay_tolerance_p_ready (a conservative bound: never after the first such
instant). Brute force here decays the state with bayes_engine.model.decay,
minute by minute, and evaluates the composite and the Edgeworth P_ready of
each minute's state, as the read RPCs would.
"""

from __future__ import annotations

import copy
import math
from types import MappingProxyType

import numpy as np
from bayes_dev.states import HOUR, T0
from bayes_engine import bulk, codec, decay_due, events, model, vocab
from bayes_engine.params import DEFAULT_PARAMS as P
from bayes_engine.params import Params
from hypothesis import event, given, settings
from hypothesis import strategies as hs

MINUTE = 60.0
TOL_C = P.g["decay_tolerance_composite"]
TOL_P = P.g["decay_tolerance_p_ready"]


def build(chapter, metrics):
    state = codec.default_state(chapter, P)
    state["m"] = {key: [mu * s, (1.0 - mu) * s] for key, (mu, s) in zip(vocab.METRIC_KEYS, metrics)}
    return state


# Metric posteriors as the engine leaves them: means anywhere inside (0, 1), strengths from below the
# priors' (after a chapter change) to far above them (hundreds of messages).
metric = hs.tuples(hs.floats(0.02, 0.98), hs.floats(2.0, 600.0))
decoded_states = hs.builds(build, hs.integers(1, 5), hs.lists(metric, min_size=4, max_size=4))


def composite(state):
    return model.metric_summary(state)[1]


def p_ready(state):
    return model.boss_readiness(state, P)["p_ready"]


def decayed(state, last, now, decayed_at=None):
    out = copy.deepcopy(state)
    model.decay(out, P, last, last if decayed_at is None else decayed_at, now)
    return out


def first_minute(state, last, start, measure, tolerance, limit_minutes, decayed_at=None):
    """The first whole minute after the window's start at which measure(decayed) is further than tolerance."""
    base = measure(state)
    for minute in range(1, limit_minutes + 1):
        t = start + minute * MINUTE
        if abs(measure(decayed(state, last, t, decayed_at)) - base) > tolerance:
            return t
    return None


@settings(max_examples=150, deadline=None)
@given(decoded_states, hs.floats(0.0, 30.0))
def test_the_composite_is_due_at_the_minute_it_crosses_its_tolerance(state, late_h):
    """Exact: with the P_ready tolerance out of the way, the due time is the instant the composite moves by tol."""
    params = with_tolerances(TOL_C, 1.0)
    last = T0
    decayed_at = T0 + late_h * HOUR  # a bulk run may have decayed it since, or not yet
    cp = params.chapter(state["c"])
    start = max(decayed_at, last + cp.decay_grace_h * HOUR)
    due = decay_due.due_at(params, state, last, decayed_at)
    base = composite(state)
    exact = copy.deepcopy(state)
    model.decay(exact, params, last, decayed_at, 1e12)
    if base - composite(exact) <= TOL_C:  # never further than tol, even fully decayed
        assert due is None
        event("never due")
        return
    assert due is not None and due >= start
    crossing = None
    if due - start < 40 * 86400:
        crossing = first_minute(state, last, start, composite, TOL_C, 60 * 24 * 41, decayed_at)
    if crossing is None:  # due more than 40 days out: check the minutes around it only
        before = decayed_at_time(state, params, last, decayed_at, due - MINUTE)
        after = decayed_at_time(state, params, last, decayed_at, due + MINUTE)
        assert base - composite(before) <= TOL_C < base - composite(after)
        return
    assert crossing - MINUTE < due <= crossing


def decayed_at_time(state, params, last, decayed_at, t):
    out = copy.deepcopy(state)
    model.decay(out, params, last, decayed_at, t)
    return out


def with_tolerances(composite_tol, p_ready_tol):
    """The default parameters with other tolerances."""
    g = dict(P.g, decay_tolerance_composite=composite_tol, decay_tolerance_p_ready=p_ready_tol)
    return Params(tuple(P.chapter(c) for c in vocab.CHAPTERS), MappingProxyType(g))


@settings(max_examples=80, deadline=None)
@given(decoded_states)
def test_p_ready_is_never_due_after_it_moves_by_its_tolerance(state):
    """Conservative: minute by minute, P_ready stays within tol of the stored one before the due time.

    Checked on the minutes of the first 3 days after the window opens, and on a fine grid of the whole
    decay path (u = 1 - f from 0 to 1), which also covers a due time of never.
    """
    last = T0
    cp = P.chapter(state["c"])
    start = last + cp.decay_grace_h * HOUR
    due = decay_due.due_at(P, state, last, last)
    base = p_ready(state)
    crossing = first_minute(state, last, start, p_ready, TOL_P, 3 * 24 * 60)
    if crossing is not None:
        assert due is not None and due <= crossing
        event(f"due / first crossing: {min(1.0, round((due - start) / (crossing - start), 1))}")
    # the whole path, in u: P_ready within tol wherever u is below the due u
    u_due = 1.0 if due is None else 1.0 - math.exp(-cp.decay_rate_per_h * (due - start) / HOUR)
    for u in np.linspace(0.0, 1.0, 801)[1:-1]:
        if u >= u_due:
            break
        hours = -math.log1p(-u) / cp.decay_rate_per_h
        assert abs(p_ready(decayed(state, last, start + hours * HOUR)) - base) <= TOL_P + 1e-12


def test_a_state_at_its_prior_is_never_due():
    """Fresh priors (and anything within the tolerances of where decay takes it) never need a bulk write."""
    for chapter in vocab.CHAPTERS:
        assert decay_due.due_at(P, codec.default_state(chapter, P), T0, T0) is None


def test_no_message_or_no_rate_is_never_due():
    state = build(3, [(0.9, 300.0)] * 4)
    assert decay_due.due_at(P, state, None, None) is None
    assert decay_due.due_at(P, state, T0, T0) is not None


def test_the_due_time_counts_from_the_decay_windows_start():
    """max(decayed_at, last message + grace): a later decayed_at moves the due time by the same amount."""
    state = build(2, [(0.8, 120.0)] * 4)
    grace = P.chapter(2).decay_grace_h * HOUR
    first = decay_due.due_at(P, state, T0, T0)
    assert decay_due.due_at(P, state, T0, T0 + grace / 2) == first
    assert decay_due.due_at(P, state, T0, T0 + grace + 5 * HOUR) == first + 5 * HOUR


@settings(max_examples=60, deadline=None)
@given(hs.lists(decoded_states, min_size=1, max_size=12), hs.floats(1.0, 500.0))
def test_the_bulk_batch_computes_the_same_due_times(states, absent_h):
    """bulk.decayed_texts (numpy over a batch) gives each decayed row decay_due.due_at of its decayed state."""
    texts = [jsonb_text(codec.encode(s)) for s in states]
    last = [T0] * len(texts)
    now = T0 + absent_h * HOUR
    out, errors, dues = bulk.decayed_texts(P, texts, last, last, now, with_due=True)
    for text, error, due in zip(out, errors, dues):
        assert error is None
        want = decay_due.due_at(P, codec.decode(text), T0, now)
        if want is None:
            assert due is None
        else:
            assert due is not None and abs(due - want) <= 1e-6 * max(1.0, abs(want - now))
    # and the same rows through the full path (one at a time) give the same states
    for text, new in zip(texts, out):
        assert codec.decode(new) == codec.decode(events.decayed_text(P, text, T0, T0, now))


def jsonb_text(text):
    """A state's JSON text laid out as PostgreSQL prints a jsonb (what the bulk decay reads)."""
    import json

    def order(value):
        if isinstance(value, dict):
            return {k: order(value[k]) for k in sorted(value, key=lambda k: (len(k), k.encode()))}
        if isinstance(value, list):
            return [order(x) for x in value]
        return value

    return json.dumps(order(json.loads(text)), separators=(", ", ": "))
