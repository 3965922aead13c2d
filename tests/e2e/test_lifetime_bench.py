"""The lifetime benchmark's database check (scripts/bench --only fallback, issue 13),
on a tiny population: players through the real bayes_process_message and
bayes_apply_llm_scores take exactly the decisions of the engine's Python run,
and the check finds a decision that differs."""

from __future__ import annotations

import pytest
from bayes_dev import lifetime
from bayes_engine import codec, params

pytestmark = pytest.mark.e2e


@pytest.fixture
def no_bulk_decay(db):
    """The stack's pg_cron decay job paused (then as it was): the rows stay as the messages left them."""
    job = "select jobid, active from cron.job where jobname = 'bayes-run-decay'"
    jobs = db.execute(job).fetchall()
    for jobid, _ in jobs:
        db.execute("select cron.alter_job(%s, active => false)", (jobid,))
    try:
        yield
    finally:
        for jobid, active in jobs:
            db.execute("select cron.alter_job(%s, active => %s)", (jobid, active))


def test_database_takes_the_decisions_of_the_python_run(db, no_bulk_decay):
    corpus = lifetime.corpus_messages()
    standin = lifetime.StandIn()
    deltas = [standin.deltas(text) for text in corpus]
    prm = lifetime.db_params(db)
    players = lifetime.population(13, 2, 30, len(corpus))
    assert any(gap and gap > 6 * 3600 for p in players for gap in p.gaps)  # a new day: the absence decay runs
    day0 = lifetime.day0_for(players, lifetime.db_now(db), prm.g["max_message_age_h"], end_before_s=600)
    variants = {"reference": ("reference", params.DEFAULT_SNAPSHOT), "v2": ("v2", params.DEFAULT_SNAPSHOT)}
    keep = {p.index: ("reference", "v2") for p in players}
    traces = lifetime.run_population(players, variants, day0, corpus, deltas, workers=1, keep=keep)

    asked = 0
    for i, player in enumerate(players):
        lifetime.fresh_players(db, list(player.ids.values()))
        for role, name in (("reference", "reference"), ("policy", "v2")):
            decisions, state_text = lifetime.db_run(db, player, role, day0, corpus, deltas)
            python = traces[name][i]
            assert lifetime.compare(player, role, python, decisions, state_text, prm) == []
            assert [llm is not None for _, llm in decisions] == python.consulted
            asked += sum(python.consulted)
    assert 0 < asked < 4 * 30  # the reference asked on every message, the policy on fewer

    # The check can fail: a budget, a composite, a reason and a stored state that differ are all found.
    player, python = players[0], traces["v2"][0]
    decisions, state_text = lifetime.db_run(db, player, "policy", day0, corpus, deltas)  # duplicates: first results
    assert lifetime.compare(player, "policy", python, decisions, state_text, prm) == []
    changed = list(decisions)
    for k, index, value in (
        (12, 3, decisions[12][0][3] + 1e-6),
        (20, 6, decisions[20][0][6] * (1 + 1e-6)),
        (25, 2, "x"),
    ):
        message, llm = decisions[k]
        changed[k] = (message[:index] + (value,) + message[index + 1 :], llm)
    state = codec.decode(state_text, prm)
    state["m"]["i"][0] += 0.001
    problems = lifetime.compare(player, "policy", python, changed, codec.encode(state), prm)
    assert [p.split(":")[0] for p in problems] == [
        "player 0 (policy) message 13 message",
        "player 0 (policy) message 21 message",
        "player 0 (policy) message 26 message",
        "player 0 (policy)",
    ]
