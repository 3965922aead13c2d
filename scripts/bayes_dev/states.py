"""Shared material of the unit tests (tests/unit): decoded states, a hypothesis
strategy that draws them, and a scripted conversation run through the engine.

Instants are seconds since the epoch; T0 is a fixed one, HOUR an hour.
"""

import json

from bayes_engine import codec, events, model, vocab
from bayes_engine.params import DEFAULT_PARAMS as P
from hypothesis import strategies as hs

T0 = 1_795_000_000.0  # a Sunday in 2026, 10:26 UTC
HOUR = 3600.0
pos = hs.floats(0.05, 500, allow_nan=False)


def fresh(chapter=1):
    return codec.default_state(chapter, P)


def states(draw_n=True):
    """Hypothesis strategy: decoded states with arbitrary metrics, vices, mood, counters."""

    def build(c, m, d, h, n, lb):
        s = fresh(c)
        s["lb"] = lb
        s["m"] = {k: [a, b] for k, (a, b) in zip(vocab.METRIC_KEYS, m)}
        s["d"] = d
        total = sum(h)
        s["h"] = [x / total for x in h]
        s["n"] = s["nc"] = n
        return s

    return hs.builds(
        build,
        hs.integers(1, 5),
        hs.lists(hs.tuples(pos, pos), min_size=4, max_size=4),
        hs.lists(hs.floats(1, 100), min_size=8, max_size=8),
        hs.lists(hs.floats(0.01, 1), min_size=6, max_size=6),
        hs.integers(0, 5000) if draw_n else hs.just(0),
        hs.sampled_from([0.0, 0.5, 0.999999, 1.0, 2.03, 3.0]),
    )


CONVERSATION = [
    ("hi", None),
    ("I love you. What do you dream about?", 40.0),
    ("whatever, this is boring", 700.0),
    ("haha lol \U0001f602\U0001f602\U0001f602 let's do something crazy and wild tonight", 20.0),
    ("I feel like I can be honest with you. " * 6, 3000.0),
    ("ok", 200000.0),
]


def run_conversation(messages=200, seed=None):
    text = codec.encode(fresh(1))
    last = decayed_at = None
    log = []
    t = T0
    for i in range(messages):
        body, gap = CONVERSATION[i % len(CONVERSATION)]
        t += gap if gap else 30.0
        state = codec.decode(text)
        message = model.Message(body, t, gap, None, seed)
        result, event_input = events.apply_message(state, P, "player-1", message, model.RowTimes(last, decayed_at))
        log.append(("message", json.loads(json.dumps(event_input))))
        if i % 7 == 3:
            _, event_input = events.apply_llm_scores(state, P, {"intimacy": 3, "secureness": -1})
            log.append(("llm_scores", event_input))
        if i == 50:
            _, event_input = events.apply_chapter(state, P, 2)
            log.append(("chapter", event_input))
        text = codec.encode(state)
        last = decayed_at = t
    return text, log, result
