"""scripts/bench --only absence (issue 15): bulk decay writes over 30 days of absence.

A population of players whose states come from real messages
(bayes_dev.players: the engine's own result of 1 to 60 chat lines each), each
with a last message 0 to 24 h before the first run, then a bulk run (the DO
block of bayes.run_decay_command, what pg_cron runs) every 15 simulated
minutes for 30 days: 2,880 runs, pg_cron's default cadence. Before issue 15
every run rewrote every absent player past his grace: 2,880 writes each.
Now a run rewrites a player only when his exactly decayed state has moved
by a tolerance (decay_due_at). Reported: the writes per player (the change
of his row's version), their distribution, and how they depend on D, the
distance of his composite to where decay takes it (100 sum w_k max(mu_k -
mu0_k, 0)). With an absolute tolerance of tol points the composite alone
needs about D / tol writes to follow the decay all the way (D = 20 points:
about 200 at 0.1), so the section also replays the same absence in Python
(bayes_engine's decay and due times, no database) at larger tolerances, and
checks that the Python replay at the database's tolerance gives the
database's counts.
"""

from __future__ import annotations

import json
import statistics
import time
from types import MappingProxyType

import psycopg
from bayes_dev import players as population
from bayes_engine import codec, decay_due, events, vocab
from bayes_engine.params import Params

DAY = 86400.0
STEP_S = 900.0  # pg_cron's default cadence: every 15 minutes
D_BUCKETS = ((0.0, 1.0), (1.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 100.0))
TOLERANCES = ((0.1, 0.005), (0.2, 0.01), (0.5, 0.025), (1.0, 0.05), (2.0, 0.1))

RUN_STATS_SQL = """
select count(*), count(*) filter (where players = 0),
       percentile_cont(0.5) within group (order by extract(epoch from finished_at - started_at)),
       max(extract(epoch from finished_at - started_at))
from bayes.decay_run where status = 'done'
"""
ROWS_SQL = (
    "select user_id, state::text, version, extract(epoch from last_message_at)::float8"
    " from public.user_bayesian_state where last_message_at is not null"
)


def add_arguments(parser) -> None:
    parser.add_argument("--absence-players", type=int, default=5000, help="players of the absence section")
    parser.add_argument("--absence-days", type=float, default=30.0, help="simulated days of absence")


def distance(state) -> float:
    """D: how far decay moves the composite, all the way to the prior (points)."""
    m, mp = state["m"], state["mp"]
    keys = vocab.METRIC_KEYS
    return decay_due.composite_distance(
        decay_due.SCALAR,
        [m[k][0] for k in keys],
        [m[k][1] for k in keys],
        [mp[k][0] for k in keys],
        [mp[k][1] for k in keys],
    )


def simulated_writes(params, text: str, last: float, first_run: float, runs: int) -> int:
    """The bulk writes of one player over `runs` runs every STEP_S from first_run, replayed in Python.

    As bayes.decay_batch: a run at p_now rewrites the row when its due time
    is before p_now, with the state decayed exactly to p_now and the due
    time of that state.
    """
    writes, decayed_at = 0, last
    state = codec.decode(text, params)
    end = first_run + (runs - 1) * STEP_S
    while True:
        due = decay_due.due_at(params, state, last, decayed_at)
        if due is None or due >= end:
            return writes
        k = max(0, int((due - first_run) // STEP_S) + 1)  # the first run strictly after the due time
        p_now = first_run + k * STEP_S
        text = events.decayed_text(params, text, last, decayed_at, p_now)
        state, decayed_at = codec.decode(text, params), p_now
        writes += 1


def with_tolerances(params: Params, composite_tol: float, p_ready_tol: float) -> Params:
    g = dict(params.g, decay_tolerance_composite=composite_tol, decay_tolerance_p_ready=p_ready_tol)
    return Params(tuple(params.chapter(c) for c in vocab.CHAPTERS), MappingProxyType(g))


def quantiles(values: list[int]) -> tuple[float, float, int]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], ordered[-1]


def run(dsn: str, args) -> list[tuple[str, str, bool]]:
    count, days = args.absence_players, args.absence_days
    runs = int(round(days * DAY / STEP_S))
    print(f"\nabsence: {count:,} players, a bulk run every 15 min for {days:g} days ({runs:,} runs) ...", flush=True)
    now = time.time()
    first_run = float(int(now - days * DAY - 60))
    with psycopg.connect(dsn, autocommit=True, options="-c bayes.state_writer=engine") as conn:
        conn.execute("truncate auth.users cascade")
        population.populate(conn, count, first_run, max_absent_h=24.0, seed=15, tag="absence")
        params = Params.from_snapshot(json.loads(conn.execute("select bayes.params_snapshot()::text").fetchone()[0]))
        before = {r[0]: r[1:] for r in conn.execute(ROWS_SQL).fetchall()}
        conn.execute("vacuum analyze public.user_bayesian_state")
        started = time.perf_counter()
        busy = 0.0
        for k in range(runs):
            p_now = first_run + k * STEP_S
            command = conn.execute("select bayes.run_decay_command(to_timestamp(%s), 5000)", (p_now,)).fetchone()[0]
            t = time.perf_counter()
            conn.execute(command)
            busy += time.perf_counter() - t
            if k % 288 == 287:
                written = conn.execute("select coalesce(sum(players), 0) from bayes.decay_run").fetchone()[0]
                print(f"    day {(k + 1) / 96:4.0f}: {written:,} rows written so far, {busy:.0f} s in runs", flush=True)
        wall = time.perf_counter() - started
        after = {r[0]: r[1:] for r in conn.execute(ROWS_SQL).fetchall()}
        run_stats = conn.execute(RUN_STATS_SQL).fetchone()

    writes = {u: after[u][1] - v for u, (_, v, _) in before.items()}
    dist = {u: distance(codec.decode(text, params)) for u, (text, _, _) in before.items()}
    median, p90, worst = quantiles(list(writes.values()))
    done, empty, run_p50, run_max = run_stats
    print(
        f"  {done:,} runs done in {wall:.0f} s ({busy:.0f} s inside them): median run {run_p50 * 1000:.0f} ms,"
        f" longest {run_max:.2f} s; {empty:,} runs wrote nothing"
    )
    print(f"  bulk writes per player over {days:g} days: median {median:g}, p90 {p90}, max {worst} (before: {runs:,})")
    print(f"\n  {'D (composite points)':<22} {'players':>8} {'median':>7} {'p90':>5} {'max':>5} {'max / D':>8}")
    for lo, hi in D_BUCKETS:
        group = [writes[u] for u in writes if lo <= dist[u] < hi]
        if not group:
            continue
        g_median, g_p90, g_max = quantiles(group)
        ratio = max(writes[u] / dist[u] for u in writes if lo <= dist[u] < hi and dist[u] > 0) if hi > 1 else 0.0
        print(f"  [{lo:g}, {hi:g}){'':<14} {len(group):8,} {g_median:7g} {g_p90:5} {g_max:5} {ratio:8.1f}")

    # The same absence in Python, on a sample of the players, at the database's tolerance (a check) and at
    # larger ones.
    sample = sorted(before)[: min(600, len(before))]
    print(f"\n  the same {days:g} days replayed in Python (bayes_engine, no database), {len(sample)} of the players:")
    print(f"  {'tolerance (composite, P_ready)':<32} {'median':>7} {'p90':>5} {'max':>5}")
    mismatched = 0
    meets = None
    for composite_tol, p_ready_tol in TOLERANCES:
        tuned = with_tolerances(params, composite_tol, p_ready_tol)
        counts = {u: simulated_writes(tuned, before[u][0], before[u][2], first_run, runs) for u in sample}
        if (composite_tol, p_ready_tol) == (
            params.g["decay_tolerance_composite"],
            params.g["decay_tolerance_p_ready"],
        ):
            mismatched = sum(counts[u] != writes[u] for u in sample)
        s_median, s_p90, s_max = quantiles(list(counts.values()))
        print(
            f"  ({composite_tol:g}, {p_ready_tol:g}){'':<{24 - len(f'{composite_tol:g}{p_ready_tol:g}')}}"
            f" {s_median:7g} {s_p90:5} {s_max:5}"
        )
        if meets is None and s_max <= 30:
            meets = (composite_tol, p_ready_tol)
    print(
        f"  the Python replay at the database's tolerances: {len(sample) - mismatched} of {len(sample)} players"
        f" with the database's count; smallest tolerance with at most 30 writes for every player: {meets}"
    )
    return [
        (f"bulk writes per absent player over {days:g} days: median", f"{median:g}", median <= 30),
        (f"bulk writes per absent player over {days:g} days: max", f"{worst}", worst <= 30),
        ("Python replay = database counts", f"{len(sample) - mismatched}/{len(sample)}", mismatched == 0),
    ]
