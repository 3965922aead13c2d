"""The fallback of MODEL.md section 7 and its LLM budget, through the real
engine cycle: every message is codec.decode(text, params) ->
events.apply(..., "message", ...) -> codec.encode, as the database runs it
(events.replay's loop), with the LLM's deltas fed back as "llm_scores" when
the engine asks, and chapters advanced now and then.

The budget: tokens lb in [0, B]; every message first adds B/W (capped at
B); cold_start is always granted and costs nothing; no_signals, uncertain
and audit are granted only with lb >= 1 and a grant takes 1 token;
bayesian_sufficient asks for nothing. The codec keeps lb in whole
micro-tokens, rounded down, so the properties below allow 1e-6 below the
exact arithmetic and nothing above it.
"""

from __future__ import annotations

import json
import math

import pytest
from bayes_engine import codec, events, model, rng, vocab
from bayes_engine.params import DEFAULT_SNAPSHOT, Params
from hypothesis import event, given, settings
from hypothesis import strategies as hs

T0 = 1_795_000_000.0  # a Sunday in 2026, 10:26 UTC
MICRO = 1e-6
BUDGETED = ("no_signals", "uncertain", "audit")

# Varied messages. The two neutral ones (20-150 characters, no lexicon word)
# carry no metric evidence when the reply gap is unknown: no_signals.
NEUTRAL = (
    "The weather in the city was mostly cloudy again today.",
    "We talked about the train timetable and the new bus stop near the station.",
)
TEXTS = NEUTRAL + (
    "",
    "ok",
    "hi there",
    "I love you. What do you dream about?",
    "whatever, this is boring",
    "haha lol \U0001f602\U0001f602\U0001f602 let's do something crazy and wild tonight",
    "I feel like I can be honest with you. " * 6,
    "You are amazing and wonderful, thank you so much",
    "I hate this. It is stupid and annoying and awful.",
    "What do you think? Why? How?",
)


def params_of(budget=3, window=100, cold_start=10, audit=0.02, margin=0.1):
    """A Params snapshot: the defaults (DEFAULT_SNAPSHOT copied) with B, W, the cold start, q and eps changed."""
    snapshot = json.loads(json.dumps(DEFAULT_SNAPSHOT))
    snapshot["global"].update(
        llm_budget_tokens=budget,
        llm_budget_window=window,
        cold_start_messages=cold_start,
        audit_rate=audit,
        uncertain_margin=margin,
    )
    return Params.from_snapshot(snapshot)


DEFAULTS = params_of()
SETTINGS = {
    "defaults": DEFAULTS,
    "B1-W1": params_of(budget=1, window=1, audit=0.3),
    "B2-W5": params_of(budget=2, window=5, cold_start=3, audit=0.3, margin=0.3),
    "B0.5-W3": params_of(budget=0.5, window=3, cold_start=0, audit=0.5),
    "B4-W7": params_of(budget=4, window=7, cold_start=1, audit=0.1, margin=0.45),
    "B2.5-W13": params_of(budget=2.5, window=13, cold_start=5, audit=1.0, margin=0.0),
    "B3-W2": params_of(budget=3, window=2, cold_start=2, audit=0.05),
}


class Step:
    """One message of a sequence, and what the backend does after it."""

    def __init__(self, text, dt, gap_known, topic, deltas=None, advance=False):
        self.text, self.dt, self.gap_known, self.topic = text, dt, gap_known, topic
        self.deltas, self.advance = deltas, advance

    def __repr__(self):
        return f"Step({self.text!r}, {self.dt!r}, {self.gap_known}, {self.topic}, {self.deltas}, {self.advance})"


class Record:
    """What one message did: the budget before, the result's fallback, and the budget as stored."""

    def __init__(self, lb_before, result, stored_lb):
        self.lb_before, self.stored_lb = lb_before, stored_lb
        self.n, self.observations = result["n"], result["observations"]
        self.p_ready = result["boss"]["p_ready"]
        self.fallback = result["fallback"]
        self.reason, self.needed = self.fallback["reason"], self.fallback["needed"]

    def granted_after_cold_start(self):
        return self.needed and self.reason != "cold_start"


def run(params, steps, user="player-1", seed=None, state=None):
    """The steps through the engine cycle; returns (records, final text)."""
    text = codec.encode(state if state is not None else codec.default_state(1, params))
    t, last = T0, None
    records = []
    budget = params.g["llm_budget_tokens"]
    for step in steps:
        t += step.dt
        state = codec.decode(text, params)
        lb_before = state["lb"]
        data = {
            "text": step.text,
            "sent_at": t,
            "received_at": t,
            "reply_gap_s": step.dt if step.gap_known else None,
            "topic_changed": step.topic,
            "seed": seed,
        }
        result, _ = events.apply(state, params, user, "message", data, model.RowTimes(last, last))
        last = t
        text = codec.encode(state)
        stored = json.loads(text)["lb"]
        assert 0.0 <= stored <= budget and 0.0 <= result["fallback"]["budget_left"] <= budget
        assert codec.decode(text, params)["lb"] == result["fallback"]["budget_left"] == stored
        records.append(Record(lb_before, result, stored))
        for kind, data in (
            ("llm_scores", {"deltas": step.deltas} if step.deltas and result["fallback"]["needed"] else None),
            ("chapter", {"chapter": state["c"] + 1} if step.advance and state["c"] < 5 else None),
        ):
            if data is None:
                continue
            state = codec.decode(text, params)
            events.apply(state, params, user, kind, data)
            new_text = codec.encode(state)
            assert json.loads(new_text)["lb"] == stored  # only a message moves the budget
            text = new_text
    return records, text


deltas = hs.dictionaries(hs.sampled_from(vocab.METRIC_NAMES), hs.integers(-10, 10), min_size=1)
steps = hs.lists(
    hs.builds(
        Step,
        hs.sampled_from(TEXTS),
        hs.one_of(hs.floats(1, 600), hs.floats(600, 3 * 86400)),
        hs.booleans(),
        hs.sampled_from([None, True, False]),
        hs.one_of(hs.none(), deltas),
        hs.sampled_from([False] * 15 + [True]),
    ),
    min_size=1,
    max_size=60,
)


# --------------------------------------------------------------------------
# Properties over message sequences
# --------------------------------------------------------------------------


def check_budget(params, records):
    """Every property of section 7 that one run must have; returns the grants after the cold start."""
    g = params.g
    budget, refill = g["llm_budget_tokens"], g["llm_budget_tokens"] / g["llm_budget_window"]
    cold, margin, q = g["cold_start_messages"], g["uncertain_margin"], g["audit_rate"]
    for r in records:
        # 0 <= lb <= B, in the result and as stored (checked in run() too)
        assert 0.0 <= r.stored_lb <= budget
        # the cold start: always granted, never after it
        assert (r.n < cold) is (r.reason == "cold_start")
        if r.reason == "cold_start":
            assert r.needed is True
        # the budget: refilled first (capped), a grant of a budgeted rule takes one token
        refilled = min(budget, r.lb_before + refill)
        spent = 1.0 if (r.needed and r.reason in BUDGETED) else 0.0
        assert refilled - MICRO <= r.stored_lb + spent <= refilled + 1e-12, (r.lb_before, r.fallback)
        if r.reason in BUDGETED:
            assert r.needed is (r.stored_lb + spent >= 1.0)  # refused by an empty budget: needed false, reason said
        if r.reason == "bayesian_sufficient":
            assert r.needed is False and spent == 0.0  # never consumes
        # the rules in order
        if r.reason != "cold_start":
            if r.observations == 0:
                assert r.reason == "no_signals"
            elif margin < r.p_ready < 1.0 - margin:
                assert r.reason == "uncertain"
            else:
                assert r.reason in ("audit", "bayesian_sufficient")
        if q == 0.0:
            assert r.reason != "audit"
    # over any run of consecutive messages after the cold start: at most B + k B / W grants
    grants = [int(r.granted_after_cold_start()) for r in records if r.reason != "cold_start"]
    prefix = [0]
    for x in grants:
        prefix.append(prefix[-1] + x)
    for i in range(len(grants)):
        for j in range(i + 1, len(grants) + 1):
            assert prefix[j] - prefix[i] <= budget + (j - i) * refill + 1e-9, (i, j, prefix[j] - prefix[i])
    return prefix[-1]


@settings(max_examples=200, deadline=None)
@given(hs.sampled_from(sorted(SETTINGS)), steps, hs.sampled_from([None, "run-1"]))
def test_the_budget_over_any_message_sequence(setting, sequence, seed):
    params = SETTINGS[setting]
    records, _ = run(params, sequence, seed=seed)
    check_budget(params, records)
    for r in records:
        event(f"{r.reason}, {'granted' if r.needed else 'not granted'}")


@settings(max_examples=50, deadline=None)
@given(hs.sampled_from(sorted(SETTINGS)), steps, hs.sampled_from([None, "run-1", "run-2"]))
def test_the_same_seed_gives_the_same_decisions(setting, sequence, seed):
    params = SETTINGS[setting]
    first, text = run(params, sequence, user="player-7", seed=seed)
    again, again_text = run(params, sequence, user="player-7", seed=seed)
    assert [r.fallback for r in first] == [r.fallback for r in again]
    assert text == again_text


@pytest.mark.parametrize("setting", sorted(SETTINGS))
def test_a_long_life_keeps_the_bound(setting):
    """400 messages of every kind, the LLM fed back whenever it is granted: the bound over every window."""
    params = SETTINGS[setting]
    sequence = [
        Step(TEXTS[(7 * i) % len(TEXTS)], 30.0 + (i * 37) % 900 + (86400 if i % 50 == 49 else 0), i % 3 != 0, None)
        for i in range(400)
    ]
    for i, step in enumerate(sequence):
        step.deltas = {"intimacy": (i % 21) - 10, "trust": 10 - (i % 13)}
        step.advance = i % 97 == 96
    records, _ = run(params, sequence, user=f"long-{setting}")
    grants = check_budget(params, records)
    g = params.g
    after = sum(r.reason != "cold_start" for r in records)
    assert grants <= g["llm_budget_tokens"] + after * g["llm_budget_tokens"] / g["llm_budget_window"]


# --------------------------------------------------------------------------
# Fixed examples
# --------------------------------------------------------------------------


def neutral_steps(count, start=0):
    """Messages without metric evidence (neutral text, gap unknown): no_signals after the cold start."""
    return [Step(NEUTRAL[i % 2], 600.0, False, None) for i in range(start, start + count)]


def test_the_neutral_messages_carry_no_evidence():
    records, _ = run(DEFAULTS, neutral_steps(12))
    assert all(r.observations == 0 for r in records)


def test_cold_start_is_granted_then_an_empty_budget_refuses_and_still_says_why():
    """B = 3: after 9 free cold-start requests (n = 1..9), three no_signals are granted, then refused until a refill."""
    records, _ = run(DEFAULTS, neutral_steps(60))
    reasons = [r.reason for r in records]
    needed = [r.needed for r in records]
    assert reasons[:9] == ["cold_start"] * 9 and all(needed[:9])  # n = 1..9 after the increment
    assert reasons[9:] == ["no_signals"] * 51  # n = 10 is the first message after the cold start
    assert needed[9:12] == [True, True, True]
    # each message first adds B/W = 0.03: 3 (capped) - 1, 2.03 - 1, 1.06 - 1
    assert [r.stored_lb for r in records[8:12]] == [3.0, 2.0, 1.03, 0.06]
    # then refused, the reason still said, until 0.06 + 0.03 k >= 1: k = 32, the message at index 43
    first_grant = next(i for i in range(12, 60) if needed[i])
    assert first_grant == 43 and records[43].stored_lb == pytest.approx(0.02, abs=1e-9)
    refused = [i for i in range(12, 60) if not needed[i]]
    assert refused == [i for i in range(12, 60) if i != first_grant]
    for i in refused:
        assert records[i].reason == "no_signals" and records[i].fallback["budget_left"] < 1.0


@pytest.mark.parametrize("cold_start", [0, 1, 10, 17])
def test_the_cold_start_boundary_after_the_increment(cold_start):
    params = params_of(cold_start=cold_start, budget=0)  # no budget at all: only the cold start is ever granted
    records, _ = run(params, neutral_steps(cold_start + 5))
    for r in records:
        assert r.reason == ("cold_start" if r.n < cold_start else "no_signals")
        assert r.needed is (r.n < cold_start)
    assert [r.n for r in records if r.reason == "cold_start"] == list(range(1, cold_start))


def certain_no_steps(count):
    """Cold messages with evidence, gap unknown: chapter 1, the composite far below 55 (P_ready below 0.01)."""
    return [Step("whatever, this is boring", 45.0, False, None) for _ in range(count)]


def audit_run(params, count, user, seed=None):
    records, _ = run(params, certain_no_steps(count + params.g["cold_start_messages"]), user=user, seed=seed)
    after = [r for r in records if r.reason != "cold_start"]
    # only the audit could fire: every message has evidence and P_ready is far outside the band
    assert all(r.observations > 0 and r.p_ready < 0.01 for r in after)
    assert {r.reason for r in after} <= {"audit", "bayesian_sufficient"}
    return after


@pytest.mark.parametrize("q, messages", [(0.02, 2500), (0.25, 800)])
def test_the_audit_rate_is_q(q, messages):
    """A binomial count: within 4 sd of messages * q; each audit is exactly the engine's draw U < q."""
    params = params_of(audit=q)
    after = audit_run(params, messages, user=f"audited-{q}")
    audits, count = sum(r.reason == "audit" for r in after), len(after)
    sd = math.sqrt(count * q * (1 - q))
    assert abs(audits - count * q) <= 4 * sd, (audits, count * q)
    for r in after:
        u = rng.generator(f"audited-{q}", r.n, rng.AUDIT, None).random()
        assert (r.reason == "audit") is (u < q)


@pytest.mark.parametrize("q, reason", [(0.0, "bayesian_sufficient"), (1.0, "audit")])
def test_the_audit_rate_at_its_bounds(q, reason):
    after = audit_run(params_of(audit=q), 50, user="bounds")
    assert {r.reason for r in after} == {reason}


def test_audits_refused_by_the_budget_are_still_reported():
    """q = 0.25 with the default budget (3 tokens, 0.03 a message): most audits are refused, all reported."""
    after = audit_run(params_of(audit=0.25), 400, user="refused")
    audits = [r for r in after if r.reason == "audit"]
    granted = [r for r in audits if r.needed]
    assert len(granted) <= 3 + 400 * 0.03
    assert len(audits) - len(granted) > 50
    for r in audits:
        assert r.needed is (r.fallback["budget_left"] + r.needed >= 1.0)


def test_a_different_session_seed_moves_the_audits():
    """Same player, same messages: the audits follow (player, n, seed); another seed audits other messages."""
    params = params_of(audit=0.1)
    runs = {seed: audit_run(params, 300, user="seeded", seed=seed) for seed in (None, "run-1", "run-2")}
    positions = {seed: [r.n for r in after if r.reason == "audit"] for seed, after in runs.items()}
    assert positions[None] == [r.n for r in audit_run(params, 300, user="seeded", seed=None) if r.reason == "audit"]
    assert positions[None] != positions["run-1"] != positions["run-2"] != positions[None]
    for seed, found in positions.items():
        assert 10 <= len(found) <= 60
        want = [r.n for r in runs[seed] if rng.generator("seeded", r.n, rng.AUDIT, seed).random() < 0.1]
        assert found == want
    other_player = [r.n for r in audit_run(params, 300, user="another") if r.reason == "audit"]
    assert other_player != positions[None]


def test_llm_scores_and_chapters_do_not_touch_the_budget():
    params = DEFAULTS
    state = codec.default_state(1, params)
    state["lb"] = 1.5
    text = codec.encode(state)
    for kind, data in (("llm_scores", {"deltas": {"intimacy": 10, "trust": -10}}), ("chapter", {"chapter": 3})):
        state = codec.decode(text, params)
        result, _ = events.apply(state, params, "p", kind, data)
        assert result["fallback"]["budget_left"] == 1.5
        text = codec.encode(state)
        assert json.loads(text)["lb"] == 1.5


def test_a_v1_state_reads_with_a_full_budget():
    state = codec.default_state(2, DEFAULTS)
    del state["lb"]
    state["v"] = 1
    for params, budget in ((DEFAULTS, 3.0), (params_of(budget=2.5), 2.5)):
        assert codec.decode(json.dumps(state), params)["lb"] == budget
