"""Switching a live game over (issue 14): counterfactual replay of the fallback
policy over shadow players' event logs, and evidence calibrated on the LLM's
own scores.

A player in mode ``shadow`` has the LLM consulted on every message: his log
holds, for each message, the encoder's observation (the features that fired,
never the text) and the LLM's answer (a ``llm_scores`` event with the same
message id). Everything here works on such logs; nothing is written.

Three trajectories of a player, each replayed exactly as the database applies
events (decode, apply, encode, per event):

- ``logged``: every logged event as it was (the engine's logged evidence and
  every LLM answer): the stored state of a shadow player;
- ``llm``: the LLM's own trajectory, the reference of every fidelity figure:
  each message updates everything as logged except the metrics' evidence,
  which is the LLM's delta/10 alone (the engine's evidence of the message is
  zero). It is what the game's state would be if the LLM alone scored every
  message, as before the engine;
- ``candidate``: a policy under candidate parameters: the engine's evidence
  is the candidate's feature evidence applied to the logged features, and a
  logged LLM answer is applied only when the candidate's fallback asks for it
  (``fallback.needed`` of the replayed message).

Fidelity compares the candidate with the LLM's trajectory at the end of each
message's turn (after its LLM answer, if applied), for messages after the
cold start, as the lifetime benchmark (``scripts/bench --only fallback``)
does: boss-ready agreement, and the mean absolute composite difference.

The calibration fits, per metric, the evidence of each feature and an
intercept that best predict the LLM's delta/10 (least squares with a ridge
penalty that pulls each weight towards its current value, so a feature the
training messages never showed keeps its weight), on training players, and
the proposal is evaluated on held-out players against the current weights.
"""

from __future__ import annotations

import copy
import math
import time

from . import codec, encoder, events, model, vocab
from .errors import INVALID_PARAMETER, BayesError
from .params import EVIDENCE_FEATURES, EVIDENCE_KEYS, GLOBAL_KEYS, LEXICON_KEYS, Params, lexicon_of

TRAJECTORIES = ("logged", "llm", "candidate")
BUCKETS = ((0, 10), (10, 20), (20, 50), (50, 100), (100, 200), (200, None))  # n in (lo, hi]
LLM_DELTA_SCALE = 10.0
MISSED_DELTA = 3.0  # the shadow report's "engine saw nothing, the LLM moved a metric by 3 or more"


class LoggedEvent:
    """One row of bayes.player_event as the replay needs it (times in epoch seconds)."""

    __slots__ = ("kind", "message_id", "input", "mode", "occurred_at")

    def __init__(self, kind, message_id, input, mode=None, occurred_at=None):
        self.kind = kind
        self.message_id = message_id
        self.input = input
        self.mode = mode
        self.occurred_at = occurred_at


# --------------------------------------------------------------------------
# Candidate parameters
# --------------------------------------------------------------------------


def candidate_params(snapshot: dict, overrides) -> Params:
    """The stored parameters with `overrides` ({bayes.params name: value}) applied, validated.

    22023 for an override that is not an object, names no row of bayes.params,
    or changes a lexicon (the event log keeps the features the encoder found,
    not the texts, so a lexicon change cannot be replayed), and for a value
    the parameter rules refuse.
    """
    if overrides is None:
        overrides = {}
    if not isinstance(overrides, dict):
        raise BayesError(
            INVALID_PARAMETER,
            "p_overrides must be a JSON object of bayes.params names and values",
            'for example {"llm_budget_window": 50, "feature_warm": {"passion": 0.3}}',
        )
    for name in overrides:
        if name in LEXICON_KEYS:
            raise BayesError(
                INVALID_PARAMETER,
                f"p_overrides.{name}: a lexicon change cannot be replayed",
                "the event log keeps the features the encoder found, not the texts; evaluate evidence weights instead",
            )
        if name not in GLOBAL_KEYS:
            raise BayesError(
                INVALID_PARAMETER,
                f"p_overrides names {name!r}, which is not a parameter of bayes.params",
                "the names are those of bayes.params (select name from bayes.params)",
            )
    changed = copy.deepcopy(snapshot)
    changed["global"].update(overrides)
    try:
        return Params.from_snapshot(changed)
    except BayesError as err:
        raise BayesError(err.sqlstate, err.message.replace("invalid parameter snapshot:", "p_overrides:")) from None


# --------------------------------------------------------------------------
# Replay of one player's log
# --------------------------------------------------------------------------


class Turn:
    """One message of a trajectory: its n, the fallback's reason and whether the LLM's answer
    was applied, and the state at the end of its turn (after the answer)."""

    __slots__ = (
        "message_id",
        "mode",
        "occurred_at",
        "n",
        "reason",
        "consulted",
        "answered",
        "composite",
        "p_ready",
        "ready",
    )

    def __init__(self, message_id, mode, occurred_at, n, reason, consulted):
        self.message_id = message_id
        self.mode = mode
        self.occurred_at = occurred_at
        self.n = n
        self.reason = reason
        self.consulted = consulted
        self.answered = False
        self.composite = self.p_ready = self.ready = None


def _close(turn, state, prm):
    if turn is not None:
        _, composite, _ = model.metric_summary(state)
        boss = model.boss_readiness(state, prm)
        turn.composite, turn.p_ready, turn.ready = composite, boss["p_ready"], boss["ready"]


def replay(prm: Params, user_id: str, log, trajectory: str, start_chapter: int = 1, start=None):
    """Replay `log` (LoggedEvent in log order) as `trajectory`; returns (turns, final state text).

    The replay goes through decode/apply/encode per event as the database
    does (:class:`events.LogReplay`, as :func:`events.replay`), so
    ``logged`` rebuilds the stored state of a player whose log holds every
    event since his state was made, or since his checkpoint `start`
    (:class:`events.Checkpoint`: what retention folded and deleted). Every
    trajectory starts from the checkpoint: the state the engine had after
    the folded events (under the parameters of the retention run), since
    the events before it are gone.
    """
    if trajectory not in TRAJECTORIES:
        raise ValueError(trajectory)
    if trajectory == "llm":
        zero = ([0.0] * 4, [0.0] * 4)

        def evidence(observation):
            return zero

    elif trajectory == "candidate":
        lexicon = lexicon_of(prm)

        def evidence(observation):
            return encoder.evidence_of(observation["features"], lexicon)

    else:
        evidence = None
    replayer = events.LogReplay(prm, user_id, start_chapter, start)
    turns = []
    by_id = {}
    turn = None
    for ev in log:
        if ev.kind == "message":
            _close(turn, codec.decode(replayer.text, prm), prm)
            result, state = replayer.apply("message", ev.input, evidence)
            consult = result["fallback"]["needed"] if trajectory == "candidate" else True
            turn = Turn(ev.message_id, ev.mode, ev.occurred_at, state["n"], result["fallback"]["reason"], consult)
            turns.append(turn)
            if ev.message_id is not None:
                by_id[ev.message_id] = turn
        elif ev.kind == "llm_scores" and ev.message_id in by_id:
            asked = by_id[ev.message_id]
            replayer.apply("llm_scores", ev.input, skip=asked.answered or not asked.consulted)
            asked.answered = True
        else:  # an answer to no logged message is history, in every trajectory
            replayer.apply(ev.kind, ev.input)
    if log:
        _close(turn, codec.decode(replayer.text, prm), prm)
    return turns, replayer.text


def shadow_span(log, since=None, until=None):
    """The part of a log that the counterfactual replay may use, and which messages it counts.

    Returns (events up to the turn of the last shadow message, the ids of
    the counted messages: shadow messages sent in [since, until)). A message
    after the player left shadow has no LLM answer to consult unless his
    fallback asked, so the replay stops before it.
    """
    last = None
    counted = set()
    for position, ev in enumerate(log):
        if ev.kind == "message" and ev.mode == "shadow":
            last = position
            if (since is None or ev.occurred_at >= since) and (until is None or ev.occurred_at < until):
                counted.add(position)
    if last is None:
        return [], set()
    end = last + 1
    while end < len(log) and log[end].kind != "message":
        end += 1
    return log[:end], counted


# --------------------------------------------------------------------------
# Evaluating a policy over players
# --------------------------------------------------------------------------


class Tally:
    """The figures of evaluate_policy, accumulated player by player."""

    def __init__(self, after: int):
        self.after = after
        self.players = 0
        self.messages = 0
        self.calls = 0
        self.unanswered = 0
        self.reasons = {}
        self.buckets = [[0, 0] for _ in BUCKETS]  # [calls, messages]
        self.compared = 0
        self.agree = 0
        self.reference_ready = 0
        self.composite = 0.0
        self.p_ready = 0.0

    def add(self, candidate_turns, reference_turns, counted_positions):
        self.players += 1
        for k in counted_positions:
            c, r = candidate_turns[k], reference_turns[k]
            self.messages += 1
            self.calls += c.consulted
            if c.consulted and not c.answered:
                self.unanswered += 1
            self.reasons[c.reason] = self.reasons.get(c.reason, 0) + 1
            for j, (lo, hi) in enumerate(BUCKETS):
                if c.n > lo and (hi is None or c.n <= hi):
                    self.buckets[j][0] += c.consulted
                    self.buckets[j][1] += 1
                    break
            if c.n > self.after:
                self.compared += 1
                self.agree += c.ready == r.ready
                self.reference_ready += r.ready
                self.composite += abs(c.composite - r.composite)
                self.p_ready += abs(c.p_ready - r.p_ready)

    def report(self) -> dict:
        def share(a, b):
            return a / b if b else None

        return {
            "players": self.players,
            "messages": self.messages,
            "llm_calls": self.calls,
            "lifetime_rate": share(self.calls, self.messages),
            "buckets": [
                {
                    "messages": f"{lo + 1}-{'' if hi is None else hi}",
                    "count": messages,
                    "llm_calls": calls,
                    "rate": share(calls, messages),
                }
                for (lo, hi), (calls, messages) in zip(BUCKETS, self.buckets)
            ],
            "reasons": dict(sorted(self.reasons.items())),
            "unanswered": self.unanswered,
            "fidelity": {
                "compared": self.compared,
                "after_message": self.after,
                "boss_ready_agreement": share(self.agree, self.compared),
                "composite_mad": share(self.composite, self.compared),
                "p_ready_mad": share(self.p_ready, self.compared),
                "reference_ready_share": share(self.reference_ready, self.compared),
            },
        }


def evaluate(stored: Params, candidate: Params, players, since=None, until=None, progress=None) -> dict:
    """The candidate policy against the LLM's trajectory over `players` ((user_id, log) pairs, or
    (user_id, log, checkpoint) when the log starts at a checkpoint: :func:`replay`'s `start`).

    Counted: the shadow messages sent in [since, until). The LLM's trajectory
    is replayed under the stored parameters, the candidate under its own.
    `progress(done)` is called after each player.
    """
    return evaluate_all(stored, [candidate], players, since, until, progress)[0]


def evaluate_all(stored: Params, candidates, players, since=None, until=None, progress=None) -> list:
    """:func:`evaluate` of several candidates in one pass: each log read once, and the LLM's
    trajectory (the same for every candidate) replayed once. One report per candidate."""
    tallies = [Tally(int(stored.g["cold_start_messages"])) for _ in candidates]
    for done, (user_id, log, *checkpoint) in enumerate(players, 1):
        start = checkpoint[0] if checkpoint else None
        span, counted = shadow_span(log, since, until)
        if counted:
            reference, _ = replay(stored, user_id, span, "llm", start=start)
            message_positions = [k for k, ev in enumerate(span) if ev.kind == "message"]
            index = {position: j for j, position in enumerate(message_positions)}
            turns = [index[p] for p in sorted(counted)]
            for tally, candidate in zip(tallies, candidates):
                candidate_turns, _ = replay(candidate, user_id, span, "candidate", start=start)
                tally.add(candidate_turns, reference, turns)
        if progress is not None:
            progress(done)
    return [tally.report() for tally in tallies]


# --------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------

FEATURE_NAMES = tuple(encoder.FEATURES)


def design_row(features) -> list:
    """The indicator row of a message's features (FEATURE_NAMES order)."""
    fired = set(features)
    return [1.0 if name in fired else 0.0 for name in FEATURE_NAMES]


def llm_evidence(deltas: dict) -> list:
    """The LLM's delta/10 per metric (METRIC_NAMES order; a metric it did not score: 0)."""
    return [float(deltas.get(name, 0.0)) / LLM_DELTA_SCALE for name in vocab.METRIC_NAMES]


def fit_evidence(rows, targets, current: Params, ridge: float) -> dict:
    """Per metric, the intercept and feature evidence minimising
    sum (y - b - x.w)^2 + ridge * |w - w_current|^2 (the intercept not penalised),
    clipped to [-1, 1]. Returns {bayes.params name: {metric: evidence}}.

    rows: feature indicator rows (design_row); targets: LLM delta/10 rows (llm_evidence).
    """
    import numpy as np

    if not math.isfinite(ridge) or ridge < 0:
        raise BayesError(INVALID_PARAMETER, f"p_ridge must be a finite number >= 0, got {ridge!r}")
    x = np.asarray(rows, dtype=float).reshape(-1, len(FEATURE_NAMES))
    y = np.asarray(targets, dtype=float).reshape(-1, len(vocab.METRIC_NAMES))
    design = np.hstack([np.ones((x.shape[0], 1)), x])
    penalty = np.diag([0.0] + [ridge] * len(FEATURE_NAMES))
    lhs = design.T @ design + penalty
    proposal = {key: {} for key in EVIDENCE_KEYS}
    for m, metric in enumerate(vocab.METRIC_NAMES):
        w0 = np.array([0.0] + [current.g[f"feature_{f}"][m] for f in FEATURE_NAMES])
        rhs = design.T @ y[:, m] + penalty @ w0
        # lstsq: a feature that never fired with ridge 0 leaves lhs singular; the minimum-norm solution is defined
        w = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
        for j, name in enumerate(("intercept", *FEATURE_NAMES)):
            proposal[f"feature_{name}"][metric] = round(float(np.clip(w[j], -1.0, 1.0)), 4)
    return proposal


def verdict(before: dict, after: dict) -> str:
    """better: the composite difference smaller and the boss-ready agreement not lower;
    worse: neither better; mixed: one better, the other worse; same: nothing changed."""
    b, a = before["fidelity"], after["fidelity"]
    if b["compared"] == 0 or a["compared"] == 0:
        return "not_evaluated"
    composite = (a["composite_mad"] > b["composite_mad"]) - (a["composite_mad"] < b["composite_mad"])
    agreement = (a["boss_ready_agreement"] < b["boss_ready_agreement"]) - (
        a["boss_ready_agreement"] > b["boss_ready_agreement"]
    )
    if composite <= 0 and agreement <= 0:
        return "same" if composite == agreement == 0 else "better"
    if composite >= 0 and agreement >= 0:
        return "worse"
    return "mixed"


class Progress:
    """A progress callback that notices at most every `every` seconds, and at the end."""

    def __init__(self, emit, label: str, total: int, every: float = 5.0):
        self.emit, self.label, self.total, self.every = emit, label, total, every
        self.start = self.last = time.monotonic()

    def __call__(self, done: int) -> None:
        now = time.monotonic()
        if done == self.total or now - self.last >= self.every:
            self.last = now
            self.emit(f"{self.label}: {done}/{self.total} players, {now - self.start:.0f} s")


__all__ = [
    "BUCKETS",
    "EVIDENCE_FEATURES",
    "FEATURE_NAMES",
    "LoggedEvent",
    "Progress",
    "Tally",
    "Turn",
    "candidate_params",
    "design_row",
    "evaluate",
    "evaluate_all",
    "fit_evidence",
    "llm_evidence",
    "replay",
    "shadow_span",
    "verdict",
]
