"""The shadow benchmark (scripts/bench --only shadow, issue 14) on a tiny population
against the test stack: real chat lines through bayes_process_message and the
STAND-IN's judgement (vaderSentiment, not a model of the real LLM) through
bayes_apply_llm_scores, every player in mode shadow; then calibrate_evidence,
evaluate_policy at the bench's budgets and shadow_report. The figures must be
sane and consistent with each other, and the bench's checks must find a
report, a stored state or a proposal that differs."""

from __future__ import annotations

import copy
import hashlib
import importlib.util

import psycopg
import pytest
from bayes_dev import lifetime
from bayes_dev import shadow_bench as bench
from bayes_dev.support import ROOT
from bayes_engine import codec, params, vocab

pytestmark = pytest.mark.e2e

SEED = 1400  # 8 players, 3 of them held out (buckets 850, 1091, 2958; another at 3022 is not)
PLAYERS = 8
MESSAGES = 40
# The population ends 25 days before the database clock: no other test of the stack sends messages
# in its window, so calibrate_evidence (which takes every shadow player of its window) sees only it.
END_BEFORE_S = 25 * 86400


@pytest.fixture(scope="module")
def quiet_stack(stack):
    """The pg_cron decay job paused (a bulk decay logs no event: the stored states would leave their
    logged replay) and, afterwards, the job and the rollout as they were."""
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        jobs = conn.execute("select jobid, active from cron.job where jobname = 'bayes-run-decay'").fetchall()
        (percent,) = conn.execute("select bayes_percent from bayes.rollout").fetchone()
        for jobid, _ in jobs:
            conn.execute("select cron.alter_job(%s, active => false)", (jobid,))
        try:
            yield
        finally:
            for jobid, active in jobs:
                conn.execute("select cron.alter_job(%s, active => %s)", (jobid, active))
            conn.execute("update bayes.rollout set bayes_percent = %s", (percent,))


def section():
    """scripts/bench_shadow.py, the section that prints the measurement (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_shadow", ROOT / "scripts" / "bench_shadow.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def calibration_bucket(user_id: str) -> int:
    """bayes.user_bucket(user_id, 'calibration'), computed here independently."""
    return int(hashlib.md5(f"calibration:{user_id}".encode()).hexdigest()[:8], 16) % 10000  # noqa: S324


@pytest.fixture(scope="module")
def measured(stack, quiet_stack):
    """The bench's measurement on the tiny population (bench.measure), and the feature rows before it."""
    corpus = lifetime.corpus_messages()
    judged = bench.judgements(corpus, lifetime.StandIn())
    players = lifetime.population(SEED, PLAYERS, MESSAGES, len(corpus))
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        prm = lifetime.db_params(conn)
        day0 = lifetime.day0_for(players, lifetime.db_now(conn), prm.g["max_message_age_h"], end_before_s=END_BEFORE_S)
        current = {k: v for k, v in bench.db_snapshot(conn)["global"].items() if k in params.EVIDENCE_KEYS}
    m = bench.measure(stack["DB_URL"], players, day0, corpus, judged, connections=2, check_players=2)
    return m, corpus, judged, current


def test_shadow_bench_figures_are_sane_and_consistent(stack, db, measured, capsys):
    m, _, judged, current = measured
    dsn = stack["DB_URL"]
    assert m.problems == []
    total = PLAYERS * MESSAGES

    # every message and its judgement went through the RPCs, every result in mode shadow
    assert (m.drive.messages, m.drive.calls) == (total, 2 * total)
    assert m.drive.modes == {"shadow": 2 * total}
    assert len(m.drive.process_ms) == len(m.drive.llm_ms) == total
    pairs = db.execute(
        "select count(*), count(*) filter (where llm_mood is not null) from bayes.shadow_pairs(%s, %s)", m.window
    ).fetchone()
    assert pairs == (total, total)

    # the held-out players are those whose calibration bucket is below 3000
    held = sorted(p.ids["reference"] for p in m.players if calibration_bucket(p.ids["reference"]) < 3000)
    assert m.held == held and len(held) == 3
    cal = m.calibration
    assert cal["held_out"]["players"] == len(held)
    assert cal["training"] == {"players": PLAYERS - len(held), "pairs": (PLAYERS - len(held)) * MESSAGES}
    assert set(cal["proposal"]) == set(params.EVIDENCE_KEYS)
    assert all(set(row) == set(vocab.METRIC_NAMES) for row in cal["proposal"].values())

    cold = int(lifetime.db_params(db).g["cold_start_messages"])
    for w in bench.BUDGET_WINDOWS:
        for rep in (m.before[w], m.after[w]):
            assert (rep["players"], rep["messages"]) == (len(held), len(held) * MESSAGES)
            assert sum(b["count"] for b in rep["buckets"]) == rep["messages"]
            assert sum(b["llm_calls"] for b in rep["buckets"]) == rep["llm_calls"]
            assert rep["lifetime_rate"] == pytest.approx(rep["llm_calls"] / rep["messages"])
            assert sum(rep["reasons"].values()) == rep["messages"] and rep["unanswered"] == 0
            # the cold start always asks; after it the budget bounds the calls: 3 tokens, then 3 / W a message
            assert rep["buckets"][0]["llm_calls"] >= (cold - 1) * len(held)
            assert rep["llm_calls"] <= len(held) * (cold - 1 + 3 + MESSAGES * 3 / w)
            fid = rep["fidelity"]
            assert fid["compared"] == len(held) * (MESSAGES - cold)
            assert 0 <= fid["boss_ready_agreement"] <= 1 and 0 <= fid["reference_ready_share"] <= 1
            assert fid["composite_mad"] >= 0 and 0 <= fid["p_ready_mad"] <= 1
        # the reference (the LLM's trajectory) does not depend on the candidate
        assert m.before[w]["fidelity"]["reference_ready_share"] == m.after[w]["fidelity"]["reference_ready_share"]
    # the proposal's evaluation at the stored budget is calibrate_evidence's own
    assert m.after[bench.DEFAULT_WINDOW]["fidelity"] == cal["after"]["fidelity"]

    # the whole held-out evaluation at one budget, recomputed in Python from the logs (the bench: 2 players)
    overrides = {**cal["proposal"], **bench.budget_overrides(30)}
    with psycopg.connect(dsn, autocommit=True) as conn:
        python = bench.python_evaluate(conn, overrides, m.held, m.window)
    sql = {k: v for k, v in m.after[30].items() if k != "overrides"}
    assert bench.same_report(sql, python) == []

    # the shadow report counts this population's pairs; the boss-ready row compares after the cold start
    rows = {(r["sample"], r["item"]): r for r in m.report}
    for name in vocab.METRIC_NAMES:
        assert rows[("shadow", name)]["pairs"] == total
    assert rows[("shadow", "mood")]["pairs"] == total and ("shadow", "vices") not in rows
    assert rows[("shadow", "boss_ready")]["pairs"] == PLAYERS * (MESSAGES - cold)
    # ... and replays the logs once (the evaluation's last progress notice says all players, once)
    with psycopg.connect(dsn, autocommit=True) as conn:
        notices = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        conn.execute("select * from bayes.shadow_report(%s, %s)", m.window).fetchall()
    assert [n.split(",")[0] for n in notices if "players" in n][-1:] == [
        f"evaluate_policy: {PLAYERS}/{PLAYERS} players"
    ]
    assert sum(f"{PLAYERS}/{PLAYERS} players" in n for n in notices) == 1
    moods = db.execute(
        "select avg((engine_mood = llm_mood)::int::float8) from bayes.shadow_pairs(%s, %s)", m.window
    ).fetchone()[0]
    assert rows[("shadow", "mood")]["agreement"] == pytest.approx(moods)
    assert {j[1] for j in judged} <= set(vocab.MOODS)

    # the printed section: the table, the proposal, the report, a verdict for each target budget
    targets, problems = section().summarise(m, 2, 2, current)
    out = capsys.readouterr().out
    assert problems == []
    for w in bench.BUDGET_WINDOWS:
        assert f"{3 / w:.0%}" in out
    assert "feature_intercept" in out and "boss_ready" in out and "consistency: ok" in out
    assert "the rule that fired" in out and "the vaderSentiment STAND-IN" in out
    assert [t[0] for t in targets][-2:] == [
        "calibration improves held-out fidelity at every budget",
        "consistency checks",
    ]
    every = all(bench.improves(m.before[w], m.after[w]) for w in bench.TARGET_WINDOWS)
    assert targets[-2][2] is every and targets[-1][2] is True


def test_the_shadow_bench_checks_can_fail(stack, db, measured):
    m, _, _, _ = measured
    dsn = stack["DB_URL"]
    # a report that differs in a count, in a float beyond 1e-12, or in a key
    sql = copy.deepcopy(m.after[60])
    sql.pop("overrides")
    assert bench.same_report(sql, copy.deepcopy(sql)) == []
    changed = copy.deepcopy(sql)
    changed["llm_calls"] += 1
    changed["fidelity"]["composite_mad"] *= 1 + 1e-9
    changed["buckets"][0]["rate"] = None
    del changed["unanswered"]
    problems = bench.same_report(changed, sql)
    assert [p.split(":")[0] for p in problems] == [
        "report",
        "report.buckets[0].rate",
        "report.fidelity.composite_mad",
        "report.llm_calls",
    ]
    assert bench.same_report({"x": True}, {"x": 1}) != []  # a flag is not a number
    assert bench.same_report({"x": 3}, {"x": 4}) != []  # counts exactly
    assert bench.same_report({"x": 0.1}, {"x": 0.1 * (1 + 1e-13)}) == []  # floats to 1e-12 relative

    # a proposal that differs from the refit
    proposal = copy.deepcopy(m.calibration["proposal"])
    assert bench.check_proposal(dsn, m.window, proposal, 1.0) == []
    proposal["feature_warm_one"]["passion"] += 0.01
    assert [p.split(":")[0] for p in bench.check_proposal(dsn, m.window, proposal, 1.0)] == [
        "proposal feature_warm_one.passion"
    ]

    # a stored state that is not its logged replay (an operator's edit of one metric)
    user_id = m.user_ids[0]
    assert bench.check_stored_states(dsn, m.user_ids) == []
    prm = lifetime.db_params(db)
    (text,) = db.execute("select state::text from public.user_bayesian_state where user_id = %s", (user_id,)).fetchone()
    state = codec.decode(text, prm)
    state["m"]["i"][0] += 0.5
    db.execute(
        "update public.user_bayesian_state set state = %s::jsonb where user_id = %s", (codec.encode(state), user_id)
    )
    problems = bench.check_stored_states(dsn, m.user_ids)
    assert len(problems) == 1 and problems[0].startswith(f"player {user_id}: the logged replay")
