"""bayes_engine.bulk: the numpy batch decay (bayes.run_decay) against the
per-row decay of bayes_engine.events, and its batch rounding against the codec's."""

import json
import math

import numpy as np
import pytest
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
        batch = bulk.decayed_texts(P, texts, [T0] * len(rows), decayed_at, at)
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
    out = bulk.decayed_texts(P, [personal, plain], [T0, T0], [None, None], now)
    assert json.loads(out[0]) == json.loads(events.decayed_text(P, personal, T0, None, now))
    assert json.loads(out[0])["A"] == json.loads(personal)["A"]
    assert json.loads(out[1]) == json.loads(events.decayed_text(P, plain, T0, None, now))
    # Numbers a valid state cannot have: the full decode refuses them, as it would row by row.
    corrupt = plain.replace('"d": [1, ', '"d": [-1, ', 1)
    assert corrupt != plain
    with pytest.raises(BayesError) as raised:
        bulk.decayed_texts(P, [plain, corrupt], [T0, T0], [None, None], now)
    with pytest.raises(BayesError) as expected:
        events.decayed_text(P, corrupt, T0, None, now)
    assert (raised.value.sqlstate, raised.value.message) == (expected.value.sqlstate, expected.value.message)


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
