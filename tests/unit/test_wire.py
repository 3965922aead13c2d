"""bayes_engine.wire: the per-message result text against the result it writes."""

import json

import pytest
from bayes_dev.states import run_conversation
from bayes_engine import wire
from hypothesis import given, settings
from hypothesis import strategies as hs


@settings(max_examples=30)
@given(hs.integers(1, 40))
def test_wire_text_equals_the_result_to_six_digits(messages):
    _, _, result = run_conversation(messages)
    result.update(
        user_id="00000000-0000-4000-8000-000000000001",
        message_id='a "quoted" id',
        duplicate=False,
        version=messages + 1,
        mode="shadow" if messages % 2 else "bayes",
    )
    got = json.loads(wire.message_result(result))

    def same(a, b):
        if isinstance(b, float):
            assert a == pytest.approx(b, rel=5e-6, abs=1e-300)
        elif isinstance(b, dict):
            assert set(a) == set(b)
            for k in b:
                same(a[k], b[k])
        elif isinstance(b, list):
            assert len(a) == len(b)
            for x, y in zip(a, b):
                same(x, y)
        else:
            assert a == b

    same(got, result)
