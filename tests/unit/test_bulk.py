"""bayes_engine.bulk: the numpy batch decay (bayes.run_decay) against the
per-row decay of bayes_engine.events, and its batch rounding against the codec's."""

import json
import math

import numpy as np
from bayes_dev import corrupt as corrupt_kinds
from bayes_dev.states import HOUR, T0, fresh, states
from bayes_engine import bulk, codec, events
from bayes_engine.errors import BayesError
from bayes_engine.params import DEFAULT_PARAMS as P
from hypothesis import given, settings
from hypothesis import strategies as hs


def jsonb_layout(text):
    """A state's JSON text laid out as PostgreSQL prints a jsonb (what bayes.run_decay reads).

    Keys sorted by length then bytes, ", " and ": " between items; the
    numbers as Python prints them (the bulk path parses any JSON number).
    """

    def order(value):
        if isinstance(value, dict):
            return {k: order(value[k]) for k in sorted(value, key=lambda k: (len(k), k.encode()))}
        if isinstance(value, list):
            return [order(x) for x in value]
        return value

    return json.dumps(order(json.loads(text)), separators=(", ", ": "))


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.tuples(states(), hs.floats(0, 400), hs.floats(0, 400)), min_size=1, max_size=8))
def test_bulk_decay_of_a_batch_equals_the_decay_of_each_state(rows):
    """bulk.decayed_texts (numpy over the batch) gives the floats events.decayed_text gives, row by row."""
    texts = [jsonb_layout(codec.encode(s)) for s, _, _ in rows]
    assert all(bulk._LAYOUT.match(text) for text in texts)  # the batch path, not the per-row fallback
    decayed_at = [None if since_decay < 1 else T0 + since_decay * HOUR for _, _, since_decay in rows]
    now = [T0 + absent * HOUR for _, absent, _ in rows]
    for at in set(now):
        batch, errors = bulk.decayed_texts(P, texts, [T0] * len(rows), decayed_at, at)
        assert errors == [None] * len(rows)
        for text, since, out in zip(texts, decayed_at, batch):
            assert json.loads(out) == json.loads(events.decayed_text(P, text, T0, since, at))


def test_bulk_decay_sends_other_layouts_through_the_full_decode():
    s = fresh(3)
    s["m"]["i"] = [12.0, 3.0]
    s["A"] = [[0.5, 0.1, 0.1, 0.1, 0.1, 0.1] for _ in range(6)]  # a personalised mood transition matrix
    plain = jsonb_layout(codec.encode(fresh(2)))
    personal = jsonb_layout(codec.encode(s))
    assert bulk._LAYOUT.match(personal) is None
    now = T0 + 300 * HOUR
    out, errors = bulk.decayed_texts(P, [personal, plain], [T0, T0], [None, None], now)
    assert errors == [None, None]
    assert json.loads(out[0]) == json.loads(events.decayed_text(P, personal, T0, None, now))
    assert json.loads(out[0])["A"] == json.loads(personal)["A"]
    assert json.loads(out[1]) == json.loads(events.decayed_text(P, plain, T0, None, now))


def states_example():
    """A valid state with evidence everywhere (not the priors): vices, mood, metrics, counters."""
    s = fresh(3)
    s["m"] = {"i": [12.5, 3.25], "p": [4.0, 9.5], "t": [7.75, 7.0], "s": [3.5, 2.0]}
    s["d"] = [1.5, 2.25, 1.0, 3.0, 1.125, 1.0, 4.5, 1.75]
    s["h"] = [0.3, 0.2, 0.15, 0.15, 0.1, 0.1]
    s["n"], s["nc"], s["k"], s["dd"] = 40, 12, [1.5, 8.5, 1], [20550, 7]
    return s


def per_row(text, now):
    """What the lazy path makes of one row: its decayed text, or the codec's (sqlstate, message)."""
    try:
        return events.decayed_text(P, text, T0, None, now), None
    except BayesError as err:
        return None, (err.sqlstate, err.message)


def test_a_corrupt_row_gets_its_error_and_the_others_are_decayed():
    """Numbers a valid state cannot have: the row's error, as the lazy path would raise it; the batch goes on."""
    plain = jsonb_layout(codec.encode(fresh(2)))
    corrupt = plain.replace('"d": [1, ', '"d": [-1, ', 1)
    assert corrupt != plain
    now = T0 + 300 * HOUR
    out, errors = bulk.decayed_texts(P, [plain, corrupt, plain], [T0] * 3, [None] * 3, now)
    assert out[1] is None and errors[1] == per_row(corrupt, now)[1] == (
        "XX001",
        "stored state is corrupt: d[0] must be >= 1e-12, got -1.0",
    )
    assert out[0] == out[2] and json.loads(out[0]) == json.loads(per_row(plain, now)[0])
    assert errors[0] is errors[2] is None


def test_every_kind_of_corrupt_row_gets_what_the_lazy_path_makes_of_it():
    """bayes_dev.corrupt's kinds, as jsonb prints them, in one batch with valid rows between them.

    The batch path must never take a row the codec refuses (it would write a
    corrupt state decayed): each row gets exactly what events.decayed_text
    makes of it.
    """
    base = codec.decode(codec.encode(states_example()))
    texts = []
    for _, text in corrupt_kinds.corruptions(base):
        try:
            texts.append(jsonb_layout(text))
        except (ValueError, RecursionError):  # what Python's json cannot read back: as it is
            texts.append(text)
        texts.append(jsonb_layout(codec.encode(base)))
    now = T0 + 300 * HOUR
    out, errors = bulk.decayed_texts(P, texts, [T0] * len(texts), [None] * len(texts), now)
    for text, got, error in zip(texts, out, errors):
        want, want_error = per_row(text, now)
        assert error == want_error, text[:300]
        assert (got is None) == (want is None) and (got is None or json.loads(got) == json.loads(want))
    assert sum(e is not None for e in errors) == len(texts) // 2


def test_an_unexpected_exception_in_one_row_is_its_error(monkeypatch):
    plain = jsonb_layout(codec.encode(fresh(2)))
    odd = plain.replace('"d": [1, ', '"d": [-1, ', 1)  # takes the full path
    real = events.decayed_text

    def decayed_text(params, text, *args):
        if text == odd:
            raise ZeroDivisionError("float division by zero")
        return real(params, text, *args)

    monkeypatch.setattr(events, "decayed_text", decayed_text)
    out, errors = bulk.decayed_texts(P, [odd, plain], [T0] * 2, [None] * 2, T0 + 300 * HOUR)
    assert errors == [("XX000", "ZeroDivisionError: float division by zero"), None]
    assert out[0] is None and out[1] is not None


@given(
    hs.lists(
        hs.lists(hs.sampled_from([0.0, 1e-7, 0.1, 1 / 3, 0.25, 0.5]) | hs.floats(0, 1), min_size=6, max_size=6).filter(
            lambda row: math.fsum(row) > 0
        ),
        min_size=1,
        max_size=20,
    )
)
def test_bulk_quantisation_equals_the_codecs(rows):
    """The batch rounding of the mood belief: the codec's largest-remainder rounding, float for float."""
    batch = bulk.quantized_probabilities(np.array(rows, dtype=float)).tolist()
    assert batch == [codec.quantize_probabilities(row) for row in rows]


@settings(max_examples=1000, deadline=None)
@given(corrupt_kinds.mutated_states())
def test_the_batch_path_takes_only_what_the_codec_accepts(state):
    """Mutated states (many corrupt) as jsonb prints them, each between two valid rows: the lazy path's result.

    Up to the rounding of the numbers that decay does not touch: a mutation
    may write one with more than 6 significant digits, which the batch path
    keeps as it is and the lazy path (which encodes the whole state) rounds.
    """
    try:
        text = jsonb_layout(json.dumps(state))
    except (ValueError, RecursionError):
        return
    plain = jsonb_layout(codec.encode(fresh(4)))
    now = T0 + 300 * HOUR
    out, errors = bulk.decayed_texts(P, [plain, text, plain], [T0] * 3, [None] * 3, now)
    want, want_error = per_row(text, now)
    assert errors[1] == want_error
    assert (out[1] is None) == (want is None)
    assert want is None or codec.encode(codec.decode(out[1])) == codec.encode(codec.decode(want))
    assert errors[0] is errors[2] is None
