"""Retention's fold (bayes_engine.events.fold): a checkpoint made from a prefix of a log,
then the rest of the log replayed from it, equals the replay of the whole log."""

import json

from bayes_dev.states import CONVERSATION, T0, fresh
from bayes_engine import codec, events, model, vocab
from bayes_engine.params import DEFAULT_PARAMS as P
from hypothesis import given, settings
from hypothesis import strategies as hs

TEXTS = [body for body, _ in CONVERSATION] + ["", "kiss kiss kiss " * 30]
EVENT = hs.one_of(
    hs.tuples(hs.just("message"), hs.sampled_from(TEXTS), hs.floats(0, 3e5), hs.sampled_from([None, True])),
    hs.tuples(
        hs.just("llm_scores"), hs.dictionaries(hs.sampled_from(vocab.METRIC_NAMES), hs.floats(-10, 10), min_size=1)
    ),
    hs.tuples(hs.just("outcome"), hs.sampled_from(model.DECISIONS), hs.booleans()),
    hs.tuples(hs.just("chapter"), hs.integers(1, 5)),
)


def logged(history, seed):
    """The log the RPCs would write for `history`: (event_id, kind, input, occurred_at), and the final state.

    A message occurs at its send time; any other event at the time of the
    message before it (as the RPCs stamp it with the database clock)."""
    text = codec.encode(fresh(1))
    last = decayed_at = None
    t = T0
    log = []
    for event in history:
        state = codec.decode(text)
        kind = event[0]
        if kind == "message":
            _, body, gap, topic = event
            t += gap
            message = model.Message(body, t, gap, topic, seed)
            data = events.apply_message(state, P, "p", message, model.RowTimes(last, decayed_at))[1]
            last = decayed_at = t
        elif kind == "llm_scores":
            data = events.apply_llm_scores(state, P, event[1])[1]
        elif kind == "outcome":
            data = events.apply_outcome(state, P, event[1], event[2])[1]
        else:
            if event[1] < state["c"]:
                continue
            data = events.apply_chapter(state, P, event[1])[1]
        log.append((10 * (len(log) + 1), kind, json.loads(json.dumps(data)), t))
        text = codec.encode(state)
    return log, text


def stored(checkpoint):
    """A checkpoint as bayes.player_checkpoint keeps it and pg.read_checkpoint reads it back (jsonb, float8)."""
    text = None if checkpoint.text is None else json.dumps(json.loads(checkpoint.text), separators=(",", ":"))
    return events.Checkpoint(text, checkpoint.last_message_at, checkpoint.decayed_at, checkpoint.events)


@settings(max_examples=60, deadline=None)
@given(
    hs.lists(EVENT, max_size=50),
    hs.one_of(hs.none(), hs.text(hs.characters(codec="utf-8"), max_size=6)),
    hs.lists(hs.floats(0, 1), min_size=1, max_size=3),
)
def test_folding_prefixes_then_replaying_the_rest_equals_replaying_all(history, seed, cuts):
    log, text = logged(history, seed)
    whole = events.replay(P, "p", [(k, d) for _, k, d, _ in log])
    assert whole == text
    end = log[-1][3] if log else T0
    start, after = None, 0
    for cut in sorted(cuts):  # successive runs, each with a later horizon
        horizon = T0 + cut * (end - T0 + 1)
        rest = [e for e in log if e[0] > after]
        checkpoint, last_id, n, kept_from = events.fold(P, "p", start, iter(rest), horizon)
        # the folded events are the longest prefix of the rest that occurred before the horizon
        expected = 0
        while expected < len(rest) and rest[expected][3] < horizon:
            expected += 1
        assert n == expected
        assert last_id == (rest[n - 1][0] if n else None)
        assert kept_from == (rest[n][3] if n < len(rest) else None)
        if n:
            start, after = stored(checkpoint), last_id
        assert start is None or start.events == sum(1 for e in log if e[0] <= after)
        # replay = checkpoint + the events after it, whatever was folded
        remaining = [(k, d) for i, k, d, _ in log if i > after]
        assert events.replay(P, "p", remaining, start=start) == whole


def test_a_checkpoint_with_no_state_replays_as_a_new_player():
    log, text = logged([("message", "hello there", 60.0, None), ("outcome", "skip", True)], None)
    empty = events.Checkpoint()
    assert events.replay(P, "p", [(k, d) for _, k, d, _ in log], start=empty) == text


def test_the_fold_reads_the_log_only_up_to_the_first_event_it_keeps():
    log, _ = logged([("message", "hi", 60.0 * k, None) for k in range(1, 30)], None)
    horizon = log[9][3] + 1  # the first ten are older
    consumed = []

    def stream():
        for e in log:
            consumed.append(e[0])
            yield e

    _, last_id, n, kept_from = events.fold(P, "p", None, stream(), horizon)
    assert (n, last_id, kept_from) == (10, log[9][0], log[10][3])
    assert consumed == [e[0] for e in log[:11]]
