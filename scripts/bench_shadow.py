"""Section "shadow" of scripts/bench.py: shadow cohorts, counterfactual replay and
calibration of the evidence on the LLM's own scores (issue 14).

- The population of the fallback section (--players x --messages, --seed;
  default 200 x 200, seed 13: chatterbot-corpus lines, log-normal reply gaps,
  new UTC days), every player in mode shadow (bayes.rollout.bayes_percent = 0;
  every writer's result must say mode "shadow", else the bench fails).
- Each message goes through the real RPCs on the bench's stack, as a game's
  backend in shadow mode would call them: bayes_process_message, then the
  LLM's judgement of the same message through bayes_apply_llm_scores (with
  its message id). The LLM is a STAND-IN, not a model of the real LLM:
  vaderSentiment's compound score c gives the deltas (as in the fallback
  section) and a mood (p_mood: c < -0.05 defensive, c > 0.05 playful, else
  content); p_vices is left null (the stand-in has no vice judgement).
  --shadow-connections connections, one player per connection at a time.
- bayes.calibrate_evidence(p_holdout => 0.3) fits the feature evidence on the
  training players (bayes.user_bucket(user_id, 'calibration') >= 3000, about
  70%); bayes.evaluate_policy on the held-out players (bucket < 3000) replays
  their logs with the current weights and with the proposal (as p_overrides),
  at LLM budgets of 2%, 3% (the default), 5% and 10% (B = 3; W = 150, 100, 60,
  30 as p_overrides): fidelity against the LLM's trajectory (boss-ready
  agreement, composite and P_ready mean |difference|) and the call rates.
  Target: at 2%, 5% and 10%, the proposal's composite difference lower and
  its boss-ready agreement not lower.
- bayes.shadow_report() over the population.
- The machinery is bayes_dev.shadow_bench; this module runs it and prints the report.
- Consistency (a failure makes the bench exit non-zero): calibrate_evidence's
  own evaluations equal evaluate_policy's at the default budget;
  evaluate_policy on a few held-out players equals the engine's Python
  (bayes_engine.shadow.evaluate) over the same logs read back, counts exactly
  and floats to 1e-12 relative; the logged replay of every player equals his
  stored state; the proposal equals a refit in Python of the same pairs.
"""

from __future__ import annotations

import statistics
import time

import psycopg
from bayes_dev import lifetime
from bayes_dev.shadow_bench import (
    BUDGET_TOKENS,
    BUDGET_WINDOWS,
    DEFAULT_WINDOW,
    HOLDOUT,
    REL_TOL,
    TARGET_WINDOWS,
    Measurement,
    Progress,
    db_snapshot,
    improves,
    judgements,
    measure,
)
from bayes_engine import params, vocab

Target = tuple[str, str, bool]


def add_arguments(parser) -> None:
    group = parser.add_argument_group(
        "section shadow (shadow cohorts, replay and calibration, issue 14; its population is the fallback"
        " section's: --players, --messages, --seed)"
    )
    group.add_argument(
        "--shadow-connections",
        type=int,
        default=lifetime.default_workers(),
        help="connections driving the RPCs and running the evaluations (one player per connection at a time)",
    )
    group.add_argument("--shadow-ridge", type=float, default=1.0, help="p_ridge of bayes.calibrate_evidence")
    group.add_argument(
        "--shadow-check-players",
        type=int,
        default=2,
        help="held-out players whose evaluate_policy is recomputed in Python from their logs",
    )


# --- the report ------------------------------------------------------------------------


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _fmt(x, fmt: str) -> str:
    return "-" if x is None else fmt.format(x)


def bucket_rate(rep: dict, label: str):
    for b in rep["buckets"]:
        if b["messages"] == label:
            return b["rate"]
    return None


def print_table(m: Measurement) -> None:
    fid = m.before[next(iter(m.before))]["fidelity"]
    print(
        "\n  held-out fidelity against the LLM's trajectory (the LLM: the vaderSentiment STAND-IN;"
        f" {len(m.held)} held-out players, {fid['compared']:,} player-messages after message {fid['after_message']}):"
    )
    print(
        f"  {'budget':>6} {'W':>4}  {'weights':<9} {'LLM calls':>10} {'lifetime':>9} {'51-100':>7} {'101-200':>8}"
        f" {'ready agr.':>11} {'|d comp.|':>10} {'|d P_ready|':>12}  improved"
    )
    for w in m.before:
        for weights, rep in (("current", m.before[w]), ("proposal", m.after[w])):
            fid = rep["fidelity"]
            first = weights == "current"
            verdict = ""
            if not first:
                verdict = ("yes" if improves(m.before[w], rep) else "NO") + (
                    "" if w in TARGET_WINDOWS else " (not a target)"
                )
            print(
                f"  {(f'{BUDGET_TOKENS / w:.0%}' if first else ''):>6} {(w if first else ''):>4}  {weights:<9}"
                f" {rep['llm_calls']:>10,} {_fmt(rep['lifetime_rate'], '{:.1%}'):>9}"
                f" {_fmt(bucket_rate(rep, '51-100'), '{:.1%}'):>7} {_fmt(bucket_rate(rep, '101-200'), '{:.1%}'):>8}"
                f" {_fmt(fid['boss_ready_agreement'], '{:.2%}'):>11} {_fmt(fid['composite_mad'], '{:.3f}'):>10}"
                f" {_fmt(fid['p_ready_mad'], '{:.4f}'):>12}  {verdict}"
            )


RULES = ("cold_start", "no_signals", "uncertain", "audit", "bayesian_sufficient")


def print_reasons(m: Measurement) -> None:
    """The rule that fired on each held-out message (MODEL.md section 7), per budget and weights."""
    print(
        "  the rule that fired on the held-out messages (each message's first rule; asked or not, as the budget said):"
    )
    widths = [max(11, len(r)) for r in RULES]
    print(f"  {'budget':>6} {'weights':<9} " + " ".join(f"{r:>{n}}" for r, n in zip(RULES, widths)))
    for w in m.before:
        for weights, rep in (("current", m.before[w]), ("proposal", m.after[w])):
            counts = rep["reasons"]
            cells = " ".join(f"{counts.get(r, 0):>{n},}" for r, n in zip(RULES, widths))
            other = sorted(set(counts) - set(RULES))
            print(
                f"  {(f'{BUDGET_TOKENS / w:.0%}' if weights == 'current' else ''):>6} {weights:<9} {cells}"
                + (f"  (other: {', '.join(other)})" if other else "")
            )


def print_proposal(m: Measurement, current: dict) -> None:
    cal = m.calibration
    print(
        f"\n  the proposal of bayes.calibrate_evidence (p_holdout {HOLDOUT:g}, p_ridge {cal['ridge']:g}):"
        f" fitted on {cal['training']['pairs']:,} LLM-scored messages of {cal['training']['players']} training players;"
        f" its own verdict at the stored budget: {cal['verdict']}"
    )
    print("  evidence per metric, current -> proposed (a feature's evidence is added to the metric when it fires;")
    print("  the intercept to every message):")
    print(f"  {'row':<26} " + " ".join(f"{name:>17}" for name in vocab.METRIC_NAMES))
    for key in params.EVIDENCE_KEYS:
        cur = current.get(key, {})
        cells = []
        for metric in vocab.METRIC_NAMES:
            a, b = float(cur.get(metric, 0.0)), cal["proposal"][key][metric]
            cells.append(f"{a:+.3f} -> {b:+.3f}" if a != b else f"{a:+.3f} (same)")
        print(f"  {key:<26} " + " ".join(f"{c:>17}" for c in cells))


def print_report(rows: list[dict]) -> None:
    print("\n  bayes.shadow_report() over the population's window (engine evidence against the LLM's delta / 10):")
    print(
        f"  {'sample':<7} {'item':<11} {'pairs':>8} {'corr.':>7} {'sign agr.':>10} {'mean |d|':>9} {'missed':>7}"
        f" {'agreement':>10}"
    )
    for r in rows:
        print(
            f"  {r['sample']:<7} {r['item']:<11} {r['pairs']:>8,} {_fmt(r['correlation'], '{:.3f}'):>7}"
            f" {_fmt(r['sign_agreement'], '{:.1%}'):>10} {_fmt(r['mean_abs_diff'], '{:.3f}'):>9}"
            f" {_fmt(r['missed_share'], '{:.1%}'):>7} {_fmt(r['agreement'], '{:.2%}'):>10}"
        )
    print("  (missed: the engine's net evidence 0 and the LLM's |delta| >= 3; vices: none reported by the stand-in;")
    print("  mood: the stand-in's mood, three of six moods from the sign of VADER's score)")


def run(dsn: str, args) -> tuple[list[Target], list[str]]:
    """The section: (the targets of issue 14 with their verdicts, problems that make the bench fail)."""
    started = time.perf_counter()
    progress = Progress()
    corpus = lifetime.corpus_messages()
    standin = lifetime.StandIn()
    judged = judgements(corpus, standin)
    neutral = sum(all(v == 0 for v in d.values()) for d, _ in judged)
    moods = {mood: sum(m == mood for _, m in judged) for mood in lifetime.STANDIN_MOODS}
    problems: list[str] = []
    defaults = params.Params.from_snapshot(params.DEFAULT_SNAPSHOT)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if not lifetime.same_params(lifetime.db_params(conn), defaults):
            problems.append("the bench's stack does not have the default parameters")
        now = lifetime.db_now(conn)
        # The section's players are the only ones: earlier sections' players (the fallback section's ran in
        # shadow mode too) would be counted by calibrate_evidence, which takes every shadow player of its window.
        # TRUNCATE fires no DELETE trigger, so the event log (whose rows a deleted state's trigger deletes) is
        # emptied too: else a player made again with the same id would find his message ids taken (duplicates).
        conn.execute("truncate auth.users cascade")
        conn.execute("truncate bayes.player_event, bayes.event_result")
        current = {k: v for k, v in db_snapshot(conn)["global"].items() if k in params.EVIDENCE_KEYS}
    players = lifetime.population(args.seed, args.players, args.messages, len(corpus))
    day0 = lifetime.day0_for(players, now, defaults.g["max_message_age_h"])

    print(
        f"\nshadow cohorts (issue 14): {args.players} players x {args.messages} messages, seed {args.seed}"
        " (the fallback section's population), every player in mode shadow (bayes.rollout.bayes_percent = 0)"
    )
    print(
        "  each message: bayes_process_message, then the LLM's judgement of it through bayes_apply_llm_scores"
        " (p_message_id, p_mood; p_vices null)"
    )
    print(
        "  the LLM: a STAND-IN, not a model of the real LLM: vaderSentiment's compound score c, deltas"
        f" round(10 x w x c) as in the fallback section ({neutral / len(judged):.0%} of the lines: four zeros);"
        f" mood: c < -{lifetime.STANDIN_MOOD_CUT:g} defensive, c > {lifetime.STANDIN_MOOD_CUT:g} playful, else content"
        f" ({', '.join(f'{k} {v / len(judged):.0%}' for k, v in moods.items())} of the lines); no vices"
    )
    print(
        f"  driven on {args.shadow_connections} connection(s), one player per connection at a time;"
        " progress on stderr ...",
        flush=True,
    )
    m = measure(
        dsn,
        players,
        day0,
        corpus,
        judged,
        args.shadow_connections,
        ridge=args.shadow_ridge,
        check_players=args.shadow_check_players,
        progress=progress,
    )
    targets, summary_problems = summarise(
        m, args.shadow_connections, args.shadow_check_players, current, time.perf_counter() - started
    )
    return targets, problems + summary_problems


def summarise(
    m: Measurement, connections: int, check_players: int, current: dict, elapsed: float | None = None
) -> tuple[list[Target], list[str]]:
    """Print the measurement; (the targets of issue 14 with their verdicts, problems that make the bench fail).

    `current`: the feature_* rows before the calibration ({name: {metric: evidence}})."""
    problems: list[str] = []
    d = m.drive
    print(
        f"  shadow run: {d.calls:,} RPC calls ({d.messages:,} messages x 2) in {d.seconds:.1f} s,"
        f" {d.calls / d.seconds:,.0f} calls/s on {connections} connection(s);"
        f" every result says mode: {', '.join(f'{k} {v:,}' for k, v in d.modes.items())}"
    )
    print(
        f"  per call (ms, with {connections} connection(s) at once): bayes_process_message p50"
        f" {statistics.median(d.process_ms):.3f}, p99 {pct(d.process_ms, 0.99):.3f};"
        f" bayes_apply_llm_scores p50 {statistics.median(d.llm_ms):.3f}, p99 {pct(d.llm_ms, 0.99):.3f}"
    )
    print(
        f"  boss-ready in the shadow players' own states (engine and LLM evidence together): {d.ready:,} of"
        f" {d.messages:,} messages"
    )
    print(
        f"  window: [{m.window[0].isoformat()}, {m.window[1].isoformat()}); held out: {len(m.held)} of"
        f" {len(m.players)} players (bayes.user_bucket(user_id, 'calibration') < {HOLDOUT * 10000:g})"
    )

    print_proposal(m, current)
    print_table(m)
    ready_share = m.before[DEFAULT_WINDOW]["fidelity"]["reference_ready_share"]
    ref_ready = round(ready_share * m.before[DEFAULT_WINDOW]["fidelity"]["compared"])
    agreements = {rep["fidelity"]["boss_ready_agreement"] for reps in (m.before, m.after) for rep in reps.values()}
    print(
        f"  the LLM's trajectory (the reference) is boss-ready on {ref_ready:,} of the held-out player-messages"
        f" (reference_ready_share {ready_share:.4f})"
        + (
            "; nobody is ever ready and every policy agrees on every message: boss-ready agreement is 100% trivially"
            " here, and the composite and P_ready differences are the informative figures"
            if ref_ready == 0 and agreements == {1.0}
            else ""
        )
    )
    print("  (a budget B / W: the long-run share of messages a player may send to the LLM after the cold start;")
    print("  the LLM calls and rates are those the replayed policy would make in mode bayes, cold start included)")
    print_reasons(m)

    print_report(m.report)
    print("\n  consistency: " + ("ok" if not m.problems else f"{len(m.problems)} PROBLEMS; the first ones:"))
    print(
        "    calibrate_evidence's evaluations = evaluate_policy's at the stored budget; held-out players ="
        " bayes.user_bucket's; evaluate_policy on"
        f" {min(check_players, len(m.held))} held-out players (the proposal, W ="
        f" {BUDGET_WINDOWS[len(BUDGET_WINDOWS) // 2]}) = bayes_engine.shadow.evaluate over their logs read back"
        f" (counts exactly, floats to {REL_TOL:g} relative); the logged replay of all {len(m.players)} players ="
        " their stored states; the proposal = a refit in Python"
    )
    for line in m.problems[:10]:
        print(f"    {line}")
    timing = "; ".join(f"{k} {v:.0f} s" for k, v in m.seconds.items())
    print(f"  {timing}" + ("" if elapsed is None else f"; section {elapsed:.0f} s"))

    targets: list[Target] = []
    for w in TARGET_WINDOWS:
        targets.append(
            (
                f"calibration improves held-out fidelity at {BUDGET_TOKENS / w:.0%} (W = {w})",
                f"{m.before[w]['fidelity']['composite_mad']:.3f} -> {m.after[w]['fidelity']['composite_mad']:.3f}",
                improves(m.before[w], m.after[w]),
            )
        )
    every = all(improves(m.before[w], m.after[w]) for w in TARGET_WINDOWS)
    targets.append(("calibration improves held-out fidelity at every budget", "yes" if every else "no", every))
    targets.append(("consistency checks", "ok" if not m.problems else "FAILED", not m.problems))
    if m.problems:
        problems.append(f"the shadow section's consistency checks failed ({len(m.problems)} problems)")
    return targets, problems
