"""The shadow benchmark of issue 14 (`scripts/bench --only shadow`, scripts/bench_shadow.py): its machinery.

The lifetime benchmark's population (bayes_dev.lifetime) as SHADOW players through
the real RPCs on a stack, the LLM's judgement of every message given by the
lifetime benchmark's STAND-IN (vaderSentiment: deltas and a mood; not a model of
the real LLM); then bayes.calibrate_evidence, bayes.evaluate_policy on the
held-out players before and after the calibration at several LLM budgets, and
bayes.shadow_report; and the checks that the database's figures are what the
engine's Python (bayes_engine.shadow) computes from the same logs. Each piece is
usable alone (tests/e2e/test_shadow_bench.py runs them on a tiny population).
"""

from __future__ import annotations

import json
import math
import queue
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg
from bayes_engine import codec, params, shadow, vocab
from psycopg.types.json import Jsonb

from bayes_dev import lifetime

HOLDOUT = 0.3  # p_holdout: players with bayes.user_bucket(user_id, 'calibration') < 3000 are held out
BUDGET_TOKENS = 3  # B; the budgets below are B / W
BUDGET_WINDOWS = (150, 100, 60, 30)  # W: 2%, 3% (the default), 5%, 10% of the messages in the long run
TARGET_WINDOWS = (150, 60, 30)  # the budgets of the target
DEFAULT_WINDOW = 100
REL_TOL = 1e-12  # SQL against Python: floats to this relative tolerance, counts exactly
PROGRESS_S = 10.0

SHADOW_LLM_SQL = "select public.bayes_apply_llm_scores(%s, %s::jsonb, %s, p_mood => %s)"
HELD_OUT_SQL = (
    "select u::text from unnest(%s::uuid[]) as u where bayes.user_bucket(u, 'calibration') < %s * 10000 order by 1"
)
STATE_SQL = "select user_id::text, state::text from public.user_bayesian_state where user_id = any(%s::uuid[])"
LOG_SQL = (
    "select kind::text, message_id, bayes.event_input(kind, input), player_mode::text,"
    " extract(epoch from occurred_at)::float8"
    " from bayes.player_event where user_id = %s order by event_id"
)
PAIRS_SQL = (
    "select p.features, p.llm_evidence from bayes.shadow_pairs(%s, %s) as p"
    " where bayes.user_bucket(p.user_id, 'calibration') >= %s * 10000"
)


class Progress:
    """Lines to stderr, at most one every `every` s (and always the last one), from any thread."""

    def __init__(self, every: float = PROGRESS_S):
        self.every = every
        self.start = self.last = time.perf_counter()
        self.lock = threading.Lock()

    def __call__(self, text: str, final: bool = False) -> None:
        with self.lock:
            now = time.perf_counter()
            if final or now - self.last >= self.every:
                self.last = now
                print(f"  {text} ({now - self.start:.0f} s)", file=sys.stderr, flush=True)


# --- the population in shadow mode through the RPCs ---------------------------


@dataclass
class Drive:
    """The population through bayes_process_message and bayes_apply_llm_scores."""

    players: int = 0
    messages: int = 0
    calls: int = 0
    seconds: float = 0.0
    modes: dict = field(default_factory=dict)  # mode -> results saying it (both RPCs)
    ready: int = 0  # message results boss-ready (the shadow player's own state: engine and LLM evidence)
    process_ms: list = field(default_factory=list)
    llm_ms: list = field(default_factory=list)


def judgements(corpus: list[str], standin: lifetime.StandIn) -> list[tuple[dict, str]]:
    """The stand-in's judgement of each corpus line: (deltas, mood)."""
    return [(standin.deltas(text), standin.mood(text)) for text in corpus]


def drive(
    dsn: str,
    players: list,
    day0: int,
    corpus: list[str],
    judged: list[tuple[dict, str]],
    connections: int,
    progress: Progress | None = None,
) -> Drive:
    """Every player's messages as a shadow player: each message, then the stand-in's judgement of it.

    The players must be fresh (lifetime.fresh_players). `connections` threads, each with its own
    connection, take one player at a time."""
    work: queue.Queue = queue.Queue()
    for player in players:
        work.put(player)
    out = Drive(players=len(players))
    lock = threading.Lock()
    errors: list[BaseException] = []
    done = [0]

    def worker() -> None:
        try:
            with psycopg.connect(dsn, autocommit=True, prepare_threshold=0) as conn:
                while True:
                    try:
                        player = work.get_nowait()
                    except queue.Empty:
                        return
                    modes: dict[str, int] = {}
                    ready = 0
                    p_ms, l_ms = [], []
                    user_id = player.ids["reference"]
                    for k, line in enumerate(player.lines):
                        mid = lifetime.message_id(k)
                        sent_at = datetime.fromtimestamp(player.sent_at(day0, k), UTC)
                        deltas, mood = judged[line]
                        t0 = time.perf_counter_ns()
                        (result,) = conn.execute(
                            lifetime.PROCESS_SQL, (user_id, corpus[line], sent_at, mid, player.gaps[k])
                        ).fetchone()
                        t1 = time.perf_counter_ns()
                        (answer,) = conn.execute(SHADOW_LLM_SQL, (user_id, Jsonb(deltas), mid, mood)).fetchone()
                        t2 = time.perf_counter_ns()
                        p_ms.append((t1 - t0) / 1e6)
                        l_ms.append((t2 - t1) / 1e6)
                        for r in (result, answer):
                            mode = r.get("mode")
                            modes[mode] = modes.get(mode, 0) + 1
                        ready += bool(answer["boss"]["ready"])
                    with lock:
                        out.messages += len(player.lines)
                        out.calls += 2 * len(player.lines)
                        for mode, n in modes.items():
                            out.modes[mode] = out.modes.get(mode, 0) + n
                        out.ready += ready
                        out.process_ms += p_ms
                        out.llm_ms += l_ms
                        done[0] += 1
                        finished, calls = done[0], out.calls
                    if progress:
                        progress(
                            f"shadow run: {finished}/{len(players)} players, {calls:,} calls",
                            final=finished == len(players),
                        )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            with lock:
                errors.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(max(1, min(connections, len(players))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.seconds = time.perf_counter() - start
    if errors:
        raise errors[0]
    return out


# --- calibration and evaluation ------------------------------------------------


def window_of(players: list, day0: int) -> tuple[datetime, datetime]:
    """[p_from, p_to): from the population's first message to one second after its last."""
    first = min(p.sent_at(day0, 0) for p in players)
    last = max(p.sent_at(day0, len(p.offsets) - 1) for p in players)
    return datetime.fromtimestamp(first, UTC), datetime.fromtimestamp(last + 1, UTC)


def held_out(conn, user_ids: list[str], holdout: float = HOLDOUT) -> list[str]:
    """The players bayes.calibrate_evidence holds out: bayes.user_bucket(user_id, 'calibration') < holdout * 10000."""
    return [row[0] for row in conn.execute(HELD_OUT_SQL, (user_ids, holdout))]


def budget_overrides(window: int) -> dict:
    return {"llm_budget_window": window}


def _notices(progress: Progress | None, label: str):
    """The function's progress NOTICEs, as progress lines that say which call they come from."""
    function = label.split(" ")[0]

    def handler(diag: psycopg.errors.Diagnostic) -> None:
        message = diag.message_primary
        if progress and message:
            progress(label + message[len(function) :] if message.startswith(function) else f"{label}: {message}")

    return handler


def call_json(dsn: str, sql: str, args: tuple, label: str, progress: Progress | None = None):
    """One statement returning one jsonb, on a connection of its own (its NOTICEs as progress)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.add_notice_handler(_notices(progress, label))
        t = time.perf_counter()
        (value,) = conn.execute(sql, args).fetchone()
        return value, time.perf_counter() - t


def calibrate(dsn, window, ridge: float, progress=None):
    return call_json(
        dsn,
        "select bayes.calibrate_evidence(%s, %s, p_holdout => %s, p_ridge => %s)",
        (*window, HOLDOUT, ridge),
        "calibrate_evidence",
        progress,
    )


def evaluate(dsn, overrides: dict, users: list[str], window, label: str, progress=None):
    return call_json(
        dsn,
        "select bayes.evaluate_policy(%s, %s::uuid[], %s, %s)",
        (Jsonb(overrides), users, *window),
        label,
        progress,
    )


def shadow_report(dsn, window, progress=None):
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.add_notice_handler(_notices(progress, "shadow_report"))
        t = time.perf_counter()
        cur = conn.execute("select * from bayes.shadow_report(%s, %s)", window)
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row)) for row in cur.fetchall()]
        return rows, time.perf_counter() - t


# --- consistency -----------------------------------------------------------------


def same_report(sql: object, python: object, where: str = "report", rel: float = REL_TOL) -> list[str]:
    """Where two reports differ: numbers that are not both integers compared to `rel` relative,
    everything else exactly (a bool is not a number here)."""
    if isinstance(sql, dict) and isinstance(python, dict):
        problems = [f"{where}: keys {sorted(set(sql) ^ set(python))} in one only"] if set(sql) != set(python) else []
        for key in sorted(set(sql) & set(python)):
            problems += same_report(sql[key], python[key], f"{where}.{key}", rel)
        return problems
    if isinstance(sql, list) and isinstance(python, list):
        if len(sql) != len(python):
            return [f"{where}: {len(sql)} vs {len(python)} items"]
        return [p for k, (a, b) in enumerate(zip(sql, python)) for p in same_report(a, b, f"{where}[{k}]", rel)]
    numbers = (int, float)
    if (
        isinstance(sql, numbers)
        and isinstance(python, numbers)
        and not isinstance(sql, bool)
        and not isinstance(python, bool)
        and not (isinstance(sql, int) and isinstance(python, int))
    ):
        if math.isclose(sql, python, rel_tol=rel, abs_tol=0.0):
            return []
        return [f"{where}: database {sql!r} != python {python!r}"]
    return [] if sql == python and type(sql) is type(python) else [f"{where}: database {sql!r} != python {python!r}"]


def logs_of(conn, user_ids: list[str]) -> list[tuple[str, list]]:
    """Each player's event log as bayes.evaluate_policy reads it."""
    return [
        (user_id, [shadow.LoggedEvent(*row) for row in conn.execute(LOG_SQL, (user_id,)).fetchall()])
        for user_id in user_ids
    ]


def db_snapshot(conn) -> dict:
    return conn.execute("select bayes.params_snapshot()").fetchone()[0]


def python_evaluate(conn, overrides: dict, user_ids: list[str], window) -> dict:
    """bayes_engine.shadow.evaluate over the players' logs read back, with the database's parameters."""
    snapshot = db_snapshot(conn)
    stored = params.Params.from_snapshot(snapshot)
    candidate = shadow.candidate_params(snapshot, overrides)
    since, until = (w.timestamp() for w in window)
    report = shadow.evaluate(stored, candidate, logs_of(conn, user_ids), since, until)
    return json.loads(json.dumps(report))


def check_evaluate(dsn, overrides: dict, user_ids: list[str], window) -> list[str]:
    """bayes.evaluate_policy on `user_ids` against bayes_engine.shadow.evaluate over the same logs."""
    sql, _ = evaluate(dsn, overrides, user_ids, window, "check")
    sql = dict(sql)
    problems = [] if sql.pop("overrides", None) == overrides else ["evaluate_policy: the overrides it reports differ"]
    with psycopg.connect(dsn, autocommit=True) as conn:
        python = python_evaluate(conn, overrides, user_ids, window)
    return problems + same_report(sql, python, "evaluate_policy")


def check_stored_states(dsn, user_ids: list[str]) -> list[str]:
    """The logged replay (bayes_engine.shadow.replay, every logged event as it was) of each player
    against his stored state."""
    problems = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        prm = params.Params.from_snapshot(db_snapshot(conn))
        stored = dict(conn.execute(STATE_SQL, (user_ids,)).fetchall())
        for user_id, log in logs_of(conn, user_ids):
            if user_id not in stored:
                problems.append(f"player {user_id}: no stored state")
                continue
            _, text = shadow.replay(prm, user_id, log, "logged")
            if codec.decode(text, prm) != codec.decode(stored[user_id], prm):
                problems.append(f"player {user_id}: the logged replay {text} != the stored state {stored[user_id]}")
    return problems


def check_proposal(dsn, window, proposal: dict, ridge: float) -> list[str]:
    """The proposal against a refit in Python (bayes_engine.shadow.fit_evidence) of the training pairs;
    the fit rounds to 4 decimals, so a difference of one unit in the last decimal is allowed."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        prm = params.Params.from_snapshot(db_snapshot(conn))
        pairs = conn.execute(PAIRS_SQL, (*window, HOLDOUT)).fetchall()
    refit = shadow.fit_evidence([shadow.design_row(f) for f, _ in pairs], [y for _, y in pairs], prm, ridge)
    problems = []
    for key in params.EVIDENCE_KEYS:
        for metric in vocab.METRIC_NAMES:
            a, b = proposal.get(key, {}).get(metric), refit[key][metric]
            if a is None or abs(a - b) > 1.5e-4:
                problems.append(f"proposal {key}.{metric}: database {a!r}, python refit {b!r}")
    return problems


# --- the measurement -----------------------------------------------------------------


@dataclass
class Measurement:
    players: list
    user_ids: list
    held: list  # the held-out players (user ids)
    window: tuple
    drive: Drive
    calibration: dict
    before: dict  # W -> evaluate_policy report, current weights
    after: dict  # W -> evaluate_policy report, the proposal
    report: list  # bayes.shadow_report rows
    problems: list
    seconds: dict  # phase -> seconds


def measure(
    dsn: str,
    players: list,
    day0: int,
    corpus: list[str],
    judged: list,
    connections: int,
    ridge: float = 1.0,
    check_players: int = 2,
    windows: tuple = BUDGET_WINDOWS,
    progress: Progress | None = None,
) -> Measurement:
    """The section's measurement on the stack at `dsn`: the players (fresh, as shadow players)
    through the RPCs, the calibration, the evaluations, the report and the consistency checks.

    Every figure is over the population's own time window, so other players of the database
    count only if they sent shadow messages inside it."""
    problems: list[str] = []
    seconds: dict[str, float] = {}
    user_ids = [p.ids["reference"] for p in players]
    window = window_of(players, day0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("update bayes.rollout set bayes_percent = 0")
        lifetime.fresh_players(conn, user_ids)
        held = held_out(conn, user_ids)
    run = drive(dsn, players, day0, corpus, judged, connections, progress)
    seconds["shadow run"] = run.seconds
    if set(run.modes) != {"shadow"}:
        problems.append(f"not every writer's result says mode shadow: {run.modes}")

    def timed(label, fn, *args):
        value, s = fn(*args)
        seconds[label] = s
        if progress:
            progress(f"{label}: done in {s:.0f} s")
        return value

    def evaluation(weights: str, w: int, overrides: dict):
        return timed(
            f"evaluate_policy, {weights} weights, W = {w}",
            evaluate,
            dsn,
            overrides,
            held,
            window,
            f"evaluate_policy ({weights} weights, W = {w})",
            progress,
        )

    t = time.perf_counter()
    before: dict[int, dict] = {}
    after: dict[int, dict] = {}
    with ThreadPoolExecutor(max(1, connections)) as pool:
        fut_cal = pool.submit(timed, "calibrate_evidence", calibrate, dsn, window, ridge, progress)
        fut_report = pool.submit(timed, "shadow_report", shadow_report, dsn, window, progress)
        fut_before = {w: pool.submit(evaluation, "current", w, budget_overrides(w)) for w in windows}
        calibration = fut_cal.result()
        proposal = calibration["proposal"]
        fut_after = {w: pool.submit(evaluation, "proposed", w, {**proposal, **budget_overrides(w)}) for w in windows}
        check_overrides = {**proposal, **budget_overrides(windows[len(windows) // 2])}
        fut_checks = [
            pool.submit(check_evaluate, dsn, check_overrides, held[:check_players], window),
            pool.submit(check_stored_states, dsn, user_ids),
            pool.submit(check_proposal, dsn, window, proposal, ridge),
        ]
        before = {w: f.result() for w, f in fut_before.items()}
        after = {w: f.result() for w, f in fut_after.items()}
        report = fut_report.result()
        for f in fut_checks:
            problems += f.result()
    seconds["calibration, evaluations, report and checks"] = time.perf_counter() - t

    # calibrate_evidence's own evaluations (held-out players, the stored budget) are evaluate_policy's
    if DEFAULT_WINDOW in windows:
        for which, mine in (("before", before[DEFAULT_WINDOW]), ("after", after[DEFAULT_WINDOW])):
            theirs = dict(calibration[which])
            theirs.pop("overrides", None)
            mine = {k: v for k, v in mine.items() if k != "overrides"}
            problems += same_report(theirs, mine, f"calibrate_evidence.{which} against evaluate_policy", rel=0.0)
    held_players, training = calibration["held_out"]["players"], calibration["training"]["players"]
    if held_players != len(held):
        problems.append(f"calibrate_evidence held out {held_players} players, bayes.user_bucket says {len(held)}")
    if training != len(players) - len(held):
        problems.append(f"calibrate_evidence trained on {training} players, expected {len(players) - len(held)}")
    held_messages = sum(len(p.lines) for p in players if p.ids["reference"] in held)
    for w in windows:
        for which, rep in (("current", before[w]), ("proposed", after[w])):
            if rep["players"] != len(held) or rep["messages"] != held_messages:
                problems.append(
                    f"evaluate_policy ({which}, W = {w}) counted {rep['players']} players, {rep['messages']} messages"
                )
    return Measurement(players, user_ids, held, window, run, calibration, before, after, report, problems, seconds)


def improves(before: dict, after: dict) -> bool:
    """The issue's target at one budget: the composite difference lower, boss-ready agreement not lower."""
    b, a = before["fidelity"], after["fidelity"]
    return a["composite_mad"] < b["composite_mad"] and a["boss_ready_agreement"] >= b["boss_ready_agreement"]
