"""The lifetime benchmark of the LLM fallback (issue 13; `scripts/bench --only fallback`).

How often does the engine ask for the LLM over a player's life, and how far
does the state it keeps drift from one that asked the LLM about every
message? The pieces, all seeded, each usable alone (tests/unit and tests/e2e
run them on tiny populations):

- :func:`corpus_messages`: real chat lines, the first line of each
  conversation of the English files of the ``chatterbot-corpus`` package;
- :class:`StandIn`: a STAND-IN for the LLM, not a model of it: the
  ``vaderSentiment`` package's compound score mapped to the four deltas
  (:func:`standin_deltas`), and a mood from the same score (:func:`standin_mood`,
  for the shadow benchmark). It shares nothing with the engine's lexicons;
- :func:`population`: players, each a script of messages drawn from the
  corpus with reply gaps and send times;
- :func:`simulate`: one player through the engine's Python, exactly as the
  database applies each message and each LLM answer (decode, apply, encode),
  under a policy: ``reference`` consults the stand-in on every message,
  ``v2`` when the engine's ``fallback.needed`` says so, ``v1`` when the v1
  rules (:func:`v1_reason`, kept here only as the seed's baseline) say so;
- :func:`bucket_rates`, :func:`fidelity`: the figures;
- :func:`db_run`: the same players through the real RPCs
  (``bayes_process_message``, ``bayes_apply_llm_scores``), for the check that
  the database takes exactly the decisions of the Python run.
"""

from __future__ import annotations

import copy
import json
import math
import os
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bayes_engine import codec, events, model, params, vocab, wire

SECONDS_PER_DAY = 86400

# --- the corpus -------------------------------------------------------------


def corpus_files(language: str = "english") -> list[Path]:
    """The corpus files of one language, sorted by name (the fixed order of the messages)."""
    from chatterbot_corpus.corpus import DATA_DIRECTORY  # the package is data only: a path constant

    return sorted((Path(DATA_DIRECTORY) / language).glob("*.yml"))


def corpus_messages(language: str = "english") -> list[str]:
    """The first line of each conversation, file by file (sorted by name), in the files' order.

    The YAML files are read with the project's own PyYAML (safe loader):
    chatterbot-corpus 1.3.3 is a data package whose runtime needs nothing (its
    PyYAML pin is for its own tests only), and nothing of ChatterBot is used.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    lines = []
    for path in corpus_files(language):
        with path.open(encoding="utf-8") as f:
            data = yaml.load(f, Loader=loader)  # noqa: S506 - a safe loader
        for conversation in data.get("conversations") or ():
            if conversation:
                lines.append(str(conversation[0]))
    return lines


# --- the stand-in for the LLM -----------------------------------------------

# The stand-in: delta_k = round(10 * w_k * compound), with VADER's compound
# score in [-1, 1] and these weights, so every delta is an integer in
# [-10, 10] (Python's round: halves to even). A message VADER finds neutral
# (compound 0: most corpus lines) gets four zeros. It is a stand-in, chosen
# only to be independent of the engine's lexicons: it is NOT a model of the
# real LLM analyser, whose scores are not available here.
STANDIN_WEIGHTS = {"intimacy": 0.6, "passion": 1.0, "trust": 0.4, "secureness": 0.3}


def standin_deltas(compound: float) -> dict[str, int]:
    """The four deltas of a VADER compound score (clipped to [-1, 1] first)."""
    c = min(1.0, max(-1.0, float(compound)))
    return {name: round(10.0 * STANDIN_WEIGHTS[name] * c) for name in vocab.METRIC_NAMES}


# The stand-in's mood (bayes_apply_llm_scores' p_mood, recorded for the shadow report): VADER's
# compound below -0.05 "defensive", above 0.05 "playful", else "content" (VADER's own cut between
# neutral and not). A STAND-IN as well: three of the six moods, from the sign of one score.
STANDIN_MOODS = ("defensive", "content", "playful")
STANDIN_MOOD_CUT = 0.05


def standin_mood(compound: float) -> str:
    """The stand-in's mood of a VADER compound score (one of STANDIN_MOODS)."""
    if compound < -STANDIN_MOOD_CUT:
        return STANDIN_MOODS[0]
    return STANDIN_MOODS[2] if compound > STANDIN_MOOD_CUT else STANDIN_MOODS[1]


class StandIn:
    """vaderSentiment's analyser, with the deltas of each text cached."""

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.analyzer = SentimentIntensityAnalyzer()
        self._cache: dict[str, dict[str, int]] = {}

    def compound(self, text: str) -> float:
        return self.analyzer.polarity_scores(text)["compound"]

    def deltas(self, text: str) -> dict[str, int]:
        d = self._cache.get(text)
        if d is None:
            d = self._cache[text] = standin_deltas(self.compound(text))
        return d

    def mood(self, text: str) -> str:
        return standin_mood(self.compound(text))


# --- the population ----------------------------------------------------------

GAP_MEDIAN_S = 90.0  # reply gaps: log-normal, median 90 s
GAP_SIGMA = 0.8  # sigma of the log gap (95% of the gaps between 19 s and 430 s)
NEW_DAY_SHARE = 0.04  # share of the messages sent the next UTC day instead
FIRST_AT_S = (8 * 3600, 4 * 3600)  # first message: 08:00 UTC of day 0 plus up to 4 h
NEW_DAY_AT_S = (7 * 3600, 5 * 3600)  # a new day's first message: 07:00 UTC plus up to 5 h
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "bayes-engine/bench/fallback")
ROLES = ("reference", "policy")


@dataclass(frozen=True)
class Player:
    """One player's script. Times are whole seconds after 00:00 UTC of the population's day 0."""

    index: int
    ids: dict  # role -> user id (str): the reference and the policy are different players of the database
    lines: tuple  # corpus indices, one per message
    offsets: tuple  # send times, whole seconds after day 0 began
    gaps: tuple  # reply gaps in seconds (float), None for the first message

    def sent_at(self, day0: int, k: int) -> int:
        return day0 + self.offsets[k]


def make_player(seed: int, index: int, messages: int, corpus_size: int) -> Player:
    """Player `index` of the population of `seed`; it does not depend on the population's size."""
    rnd = random.Random(f"lifetime/{seed}/{index}")
    ids = {role: str(uuid.uuid5(_ID_NAMESPACE, f"{seed}/{index}/{role}")) for role in ROLES}
    lines, offsets, gaps = [], [], []
    t = FIRST_AT_S[0] + rnd.randrange(FIRST_AT_S[1])
    gap = None
    for k in range(messages):
        if k:
            if rnd.random() < NEW_DAY_SHARE:
                t_next = (t // SECONDS_PER_DAY + 1) * SECONDS_PER_DAY + NEW_DAY_AT_S[0] + rnd.randrange(NEW_DAY_AT_S[1])
            else:
                t_next = t + max(1, round(rnd.lognormvariate(math.log(GAP_MEDIAN_S), GAP_SIGMA)))
            gap = float(t_next - t)  # the character answers at once: the gap is the time between messages
            t = t_next
        lines.append(rnd.randrange(corpus_size))
        offsets.append(t)
        gaps.append(gap)
    return Player(index, ids, tuple(lines), tuple(offsets), tuple(gaps))


def population(seed: int, players: int, messages: int, corpus_size: int) -> list[Player]:
    return [make_player(seed, i, messages, corpus_size) for i in range(players)]


def day0_for(players: list[Player], now: float, max_age_h: float, end_before_s: int = SECONDS_PER_DAY) -> int:
    """The epoch second of the population's day 0, a whole second, so that the last message of
    the population is at least `end_before_s` before `now` and the first one well inside the
    database's time window (max_message_age_h, a row of bayes.params: 22023 beyond it).

    With the default margin day 0 is also a UTC midnight, so every player's messages fall on
    the same UTC days (and hours) whatever the day of the run."""
    last = max(p.offsets[-1] for p in players)
    day0 = int(now) - end_before_s - last
    if end_before_s % SECONDS_PER_DAY == 0:
        day0 -= day0 % SECONDS_PER_DAY
    if now - day0 > 3600.0 * max_age_h - 3600.0:
        raise ValueError(
            f"the population spans {last / SECONDS_PER_DAY:.1f} days: more than max_message_age_h"
            f" = {max_age_h:g} h allows (fewer messages, or a larger max_message_age_h on the bench's stack)"
        )
    return day0


# --- the v1 rules (the seed's baseline, kept in the benchmark only) ----------

V1_COLD_START = 10
V1_VARIANCE_LIMITS = {"intimacy": 0.025, "passion": 0.025, "trust": 0.020, "secureness": 0.025}
V1_CRITICAL_ZONE = 5.0


def v1_reason(result: dict) -> str:
    """MODEL.md v1 section 7 on an engine result: the first rule that fires."""
    if result["n"] < V1_COLD_START:
        return "cold_start"
    metrics = result["metrics"]
    if any(metrics[name]["var"] > limit for name, limit in V1_VARIANCE_LIMITS.items()):
        return "high_variance"
    if result["observations"] == 0:
        return "no_signals"
    if abs(result["composite"] - result["boss"]["threshold"]) < V1_CRITICAL_ZONE:
        return "critical_zone"
    return "bayesian_sufficient"


# --- one player through the engine -----------------------------------------

POLICIES = ("reference", "v1", "v2")


def decision(result: dict) -> tuple:
    """What the database must decide exactly as the Python run: (n, fallback needed, reason,
    budget_left, boss p_ready, ready, composite)."""
    fallback, boss = result["fallback"], result["boss"]
    return (
        result["n"],
        fallback["needed"],
        fallback["reason"],
        fallback.get("budget_left"),
        boss["p_ready"],
        boss["ready"],
        result["composite"],
    )


def message_decision(result: dict, user_id: str, message_id: str) -> tuple:
    """decision() of a message result as bayes_process_message writes it (wire.message_result)."""
    full = dict(result, user_id=user_id, message_id=message_id, duplicate=False, version=0, mode="bayes")
    return decision(json.loads(wire.message_result(full)))


@dataclass
class Trace:
    """One player's life under one policy: per message, after the message and its LLM answer if any."""

    consulted: list = field(default_factory=list)  # the stand-in was asked
    reason: list = field(default_factory=list)  # the rule that fired (the v1 rules' under v1, else the engine's)
    composite: list = field(default_factory=list)  # the composite the backend holds afterwards
    ready: list = field(default_factory=list)  # boss ready afterwards
    p_ready: list = field(default_factory=list)  # boss P_ready afterwards
    decisions: list | None = None  # per message: (message decision, LLM-answer decision or None)
    state: str = ""  # the stored state at the end (codec.encode)


def message_id(k: int) -> str:
    return f"m{k + 1}"


def simulate(
    player: Player,
    policy: str,
    prm,
    day0: int,
    corpus: list[str],
    deltas: list[dict],
    keep_decisions: bool = False,
) -> Trace:
    """`player`'s messages through the engine's Python under `policy`, as the database applies them.

    Each message: the stored text decoded, ``events.apply(..., "message", ...)`` with the row's
    times (last message, decayed up to), encoded again; the LLM's answer likewise
    (``"llm_scores"``). `deltas[i]` is the stand-in's answer to `corpus[i]`.
    """
    if policy not in POLICIES:
        raise ValueError(policy)
    user_id = player.ids["reference" if policy == "reference" else "policy"]
    trace = Trace(decisions=[] if keep_decisions else None)
    text = codec.encode(codec.default_state(1, prm))
    last = None
    for k, line in enumerate(player.lines):
        sent_at = float(player.sent_at(day0, k))
        state = codec.decode(text, prm)
        data = {
            "text": corpus[line],
            "sent_at": sent_at,
            "reply_gap_s": player.gaps[k],
            "topic_changed": None,
            "seed": None,
        }
        result, _ = events.apply(state, prm, user_id, "message", data, model.RowTimes(last, last))
        text = codec.encode(state)
        last = sent_at if last is None else max(last, sent_at)
        reason = result["fallback"]["reason"]
        if policy == "reference":
            consult = True
        elif policy == "v2":
            consult = result["fallback"]["needed"]
        else:
            reason = v1_reason(result)
            consult = reason != "bayesian_sufficient"
        final = result
        if consult:
            state = codec.decode(text, prm)
            final, _ = events.apply(state, prm, user_id, "llm_scores", {"deltas": deltas[line]})
            text = codec.encode(state)
        trace.consulted.append(consult)
        trace.reason.append(reason)
        trace.composite.append(final["composite"])
        trace.ready.append(final["boss"]["ready"])
        trace.p_ready.append(final["boss"]["p_ready"])
        if keep_decisions:
            mid = message_id(k)
            trace.decisions.append((message_decision(result, user_id, mid), decision(final) if consult else None))
    trace.state = text
    return trace


# --- budgets -----------------------------------------------------------------

BUDGET_WINDOWS = (300, 100, 60, 30, 15)  # W for B = 3: 1%, 3%, 5%, 10%, 20% of the messages


def snapshot_with(**global_values) -> dict:
    """params.DEFAULT_SNAPSHOT with some global rows changed."""
    snapshot = copy.deepcopy(params.DEFAULT_SNAPSHOT)
    snapshot["global"].update(global_values)
    return snapshot


def budget_snapshot(window: int) -> dict:
    return snapshot_with(llm_budget_window=window)


# --- the figures ------------------------------------------------------------

BUCKETS = ((0, 10), (10, 20), (20, 50), (50, 100), (100, 200))  # message n in (lo, hi]
AFTER = 10  # fidelity counts the messages after this one


def bucket_rates(consulted: list[list[bool]], buckets=BUCKETS) -> list[tuple[int, int]]:
    """(calls, messages) per bucket of message numbers (n in (lo, hi], n from 1), summed over players;
    a bucket beyond the players' messages has 0 messages."""
    out = []
    for lo, hi in buckets:
        calls = messages = 0
        for row in consulted:
            part = row[lo:hi]
            calls += sum(part)
            messages += len(part)
        out.append((calls, messages))
    return out


def lifetime(consulted: list[list[bool]]) -> tuple[int, int]:
    return sum(sum(row) for row in consulted), sum(len(row) for row in consulted)


@dataclass(frozen=True)
class Fidelity:
    """A policy against the reference, over the messages after message `after` of every player."""

    agreement: float  # share of player-messages where boss ready is the same
    composite_mad: float  # mean |composite - the reference's composite|
    p_ready_mad: float  # mean |P_ready - the reference's P_ready|
    reference_ready: float  # share of player-messages where the reference is boss ready
    compared: int  # player-messages compared


def fidelity(policy: list[Trace], reference: list[Trace], after: int = AFTER) -> Fidelity:
    """Each player's trace against the same player's reference, message by message after message `after`."""
    agree = ready = compared = 0
    composite = p_ready = 0.0
    for p, r in zip(policy, reference):
        for k in range(after, len(p.composite)):
            agree += p.ready[k] == r.ready[k]
            ready += r.ready[k]
            composite += abs(p.composite[k] - r.composite[k])
            p_ready += abs(p.p_ready[k] - r.p_ready[k])
            compared += 1
    if not compared:
        return Fidelity(math.nan, math.nan, math.nan, math.nan, 0)
    return Fidelity(agree / compared, composite / compared, p_ready / compared, ready / compared, compared)


# --- the population through the engine's Python, in worker processes --------

_worker: dict = {}


def _init_worker(corpus: list[str], deltas: list[dict], variants: dict) -> None:
    _worker["corpus"] = corpus
    _worker["deltas"] = deltas
    _worker["variants"] = {
        name: (policy, params.Params.from_snapshot(snap)) for name, (policy, snap) in variants.items()
    }


def _run_player(args) -> tuple[int, dict]:
    player, day0, keep = args
    out = {}
    for name, (policy, prm) in _worker["variants"].items():
        out[name] = simulate(
            player, policy, prm, day0, _worker["corpus"], _worker["deltas"], keep_decisions=keep and name in keep
        )
    return player.index, out


def run_population(
    players: list[Player],
    variants: dict,
    day0: int,
    corpus: list[str],
    deltas: list[dict],
    workers: int = 1,
    keep: dict | None = None,
    progress=None,
) -> dict[str, list[Trace]]:
    """Every player under every variant ({name: (policy, parameter snapshot)}); {name: traces in player order}.

    `keep` ({player index: variant names}) keeps the decisions of those runs (for the database check).
    `progress(done, total)` is called as players finish. workers > 1 runs players in processes.
    """
    keep = keep or {}
    tasks = [(p, day0, keep.get(p.index, ())) for p in players]
    results: dict[int, dict] = {}
    if workers <= 1:
        _init_worker(corpus, deltas, variants)
        for task in tasks:
            index, out = _run_player(task)
            results[index] = out
            if progress:
                progress(len(results), len(tasks))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_init_worker,
            initargs=(corpus, deltas, variants),
        ) as pool:
            for index, out in pool.map(_run_player, tasks, chunksize=max(1, len(tasks) // (8 * workers))):
                results[index] = out
                if progress:
                    progress(len(results), len(tasks))
    return {name: [results[p.index][name] for p in players] for name in variants}


def default_workers() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


# --- the same players through the real RPCs -----------------------------------

PROCESS_SQL = "select public.bayes_process_message(%s, %s, p_sent_at => %s, p_message_id => %s, p_reply_gap_s => %s)"
LLM_SQL = "select public.bayes_apply_llm_scores(%s, %s::jsonb, %s)"


def db_params(conn):
    """The parameters of the database (bayes.params_snapshot())."""
    row = conn.execute("select bayes.params_snapshot()::text").fetchone()
    return params.Params.from_snapshot(json.loads(row[0]))


def same_params(a, b) -> bool:
    return dict(a.g) == dict(b.g) and all(a.chapter(c) == b.chapter(c) for c in vocab.CHAPTERS)


def db_now(conn) -> float:
    return conn.execute("select extract(epoch from now())::float8").fetchone()[0]


def fresh_players(conn, user_ids: list[str]) -> None:
    """These players signed up anew: any earlier row (and with it the state and events) deleted first."""
    conn.execute("delete from auth.users where id = any(%s::uuid[])", (user_ids,))
    for user_id in user_ids:
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@bench.local"))


def db_run(conn, player: Player, role: str, day0: int, corpus: list[str], deltas: list[dict]) -> tuple[list, str]:
    """`player` as `role` through the RPCs: ``reference`` asks the stand-in on every message,
    ``policy`` when the database's own result says fallback.needed. Returns the decisions
    (as :attr:`Trace.decisions`) and the stored state's text. The player must be fresh
    (:func:`fresh_players`)."""
    from psycopg.types.json import Jsonb

    user_id = player.ids[role]
    out = []
    for k, line in enumerate(player.lines):
        mid = message_id(k)
        sent_at = datetime.fromtimestamp(player.sent_at(day0, k), UTC)
        (result,) = conn.execute(PROCESS_SQL, (user_id, corpus[line], sent_at, mid, player.gaps[k])).fetchone()
        llm = None
        if role == "reference" or result["fallback"]["needed"]:
            (answer,) = conn.execute(LLM_SQL, (user_id, Jsonb(deltas[line]), mid)).fetchone()
            llm = decision(answer)
        out.append((decision(result), llm))
    (state_text,) = conn.execute(
        "select state::text from public.user_bayesian_state where user_id = %s", (user_id,)
    ).fetchone()
    return out, state_text


def compare(player: Player, role: str, python: Trace, db_decisions: list, db_state: str, prm) -> list[str]:
    """Where the database's decisions differ from the Python run's (empty: none); the stored states compared too."""
    problems = []
    for k, (mine, theirs) in enumerate(zip(python.decisions, db_decisions)):
        for what, a, b in (("message", mine[0], theirs[0]), ("LLM answer", mine[1], theirs[1])):
            if a != b:
                problems.append(f"player {player.index} ({role}) message {k + 1} {what}: python {a} != database {b}")
    if len(python.decisions) != len(db_decisions):
        problems.append(f"player {player.index} ({role}): {len(python.decisions)} vs {len(db_decisions)} messages")
    if codec.decode(python.state, prm) != codec.decode(db_state, prm):
        problems.append(f"player {player.index} ({role}): the stored states differ: {python.state} != {db_state}")
    return problems
