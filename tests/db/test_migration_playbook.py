"""docs/migration-playbook.md on a real cluster: every ```sql block of the page, in the page's order, run
by psql as the database owner (as a DBA pastes them), on players who sent real chat lines
(chatterbot-corpus) through bayes_process_message:

- shadow players, whose every message got the LLM's answer (a STAND-IN: vaderSentiment, as in the
  lifetime benchmark) through bayes_apply_llm_scores with its message id, deltas and a mood;
- bayes-mode players, answered only where fallback.needed, with the audit rate raised so that the
  audit sample of step 6 is not empty.

The page's statements move the rollout, save, apply and roll back the feature weights and create the
schema `ops`; the fixture puts everything back afterwards (other modules share the database).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import psycopg
import pytest
from bayes_dev import lifetime
from bayes_dev.support import ROOT, psql
from bayes_engine.params import DEFAULT_SNAPSHOT, EVIDENCE_KEYS
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.db

DOC = ROOT / "docs" / "migration-playbook.md"
FENCE = re.compile(r"^( *)```([^\n]*)\n(.*?)^ *```\s*$", re.S | re.M)
SEED = 1415
SHADOW_PLAYERS = 12
AUDIT_PLAYERS = 3
MESSAGES = 30
FEATURE_ROWS_SQL = "select name, value from bayes.params where name like 'feature\\_%'"


def sql_blocks() -> list[str]:
    """The text of every fenced block of the page whose info string is exactly `sql` (indented ones too)."""
    out = []
    for match in FENCE.finditer(DOC.read_text()):
        if match.group(2).strip() == "sql":
            indent = len(match.group(1))
            out.append("\n".join(line[indent:] for line in match.group(3).splitlines()))
    return out


BLOCKS = sql_blocks()


def standin_mood(compound: float) -> str:
    """The stand-in's mood (as the demo's): VADER's compound below -0.05 defensive, above 0.05 playful."""
    return "defensive" if compound < -0.05 else "playful" if compound > 0.05 else "content"


def send(conn, player, user_id, day0, lines, standin, shadow: bool) -> None:
    """A player's messages; the backend asks the stand-in on every message in mode shadow, else when needed."""
    for k, line in enumerate(player.lines):
        mid = lifetime.message_id(k)
        sent_at = datetime.fromtimestamp(player.sent_at(day0, k), UTC)
        (r,) = conn.execute(lifetime.PROCESS_SQL, (user_id, lines[line], sent_at, mid, player.gaps[k])).fetchone()
        assert r["mode"] == ("shadow" if shadow else "bayes")
        if shadow or r["fallback"]["needed"]:
            compound = standin.compound(lines[line])
            conn.execute(
                "select public.bayes_apply_llm_scores(%s, %s, %s, p_mood => %s)",
                (user_id, Jsonb(lifetime.standin_deltas(compound)), mid, standin_mood(compound)),
            )


@pytest.fixture(scope="module")
def playbook_db(dsn):
    lines = lifetime.corpus_messages()
    standin = lifetime.StandIn()
    population = lifetime.population(SEED, SHADOW_PLAYERS + AUDIT_PLAYERS, MESSAGES, len(lines))
    ids = [p.ids["reference"] for p in population]
    with psycopg.connect(dsn, autocommit=True) as conn:
        saved = dict(conn.execute(FEATURE_ROWS_SQL).fetchall())
        audit_rate = conn.execute("select value from bayes.params where name = 'audit_rate'").fetchone()[0]
        assert saved == {k: DEFAULT_SNAPSHOT["global"][k] for k in EVIDENCE_KEYS}
        try:
            lifetime.fresh_players(conn, ids)
            # the last message an hour ago: inside the page's windows (the last day, the last 14 days)
            day0 = lifetime.day0_for(population, lifetime.db_now(conn), 87600, end_before_s=3600)
            conn.execute("update bayes.rollout set bayes_percent = 0")
            for player in population[:SHADOW_PLAYERS]:
                send(conn, player, player.ids["reference"], day0, lines, standin, shadow=True)
            conn.execute("update bayes.rollout set bayes_percent = 100")
            conn.execute("update bayes.params set value = '1' where name = 'audit_rate'")
            for player in population[SHADOW_PLAYERS:]:
                send(conn, player, player.ids["reference"], day0, lines, standin, shadow=False)
            conn.execute("update bayes.params set value = %s where name = 'audit_rate'", (Jsonb(audit_rate),))
            conn.execute("update bayes.rollout set bayes_percent = 0")
            held_out = conn.execute(
                "select count(*) filter (where bayes.user_bucket(u, 'calibration') < 3000), count(*)"
                " from unnest(%s::uuid[]) as u",
                (ids[:SHADOW_PLAYERS],),
            ).fetchone()
            assert 0 < held_out[0] < held_out[1]  # calibrate_evidence has players to train on and to hold out
            yield dsn, ids
        finally:
            conn.execute("delete from auth.users where id = any(%s::uuid[])", (ids,))
            conn.execute("update bayes.rollout set bayes_percent = 0")
            conn.execute("update bayes.params set value = %s where name = 'audit_rate'", (Jsonb(audit_rate),))
            for name, value in saved.items():
                conn.execute("update bayes.params set value = %s where name = %s", (Jsonb(value), name))
            conn.execute("drop schema if exists ops cascade")


def test_the_page_has_the_statements_of_every_step_in_order():
    must = [
        "select bayes_percent from bayes.rollout;",
        "bayes.shadow_report(now() - interval '14 days', now())",
        "bayes.evaluate_policy('{}', null, now() - interval '14 days', now())",
        "insert into ops.feature_rows",
        "select bayes.calibrate_evidence(now() - interval '14 days', now());",
        "and c.result ->> 'verdict' = 'better'",
        "from ops.feature_rows as s",
        "update bayes.rollout set bayes_percent = 5;",
        "update bayes.rollout set bayes_percent = 0;",
        "where p.sample = 'audit'",
    ]
    text = "\n".join(BLOCKS)
    positions = [text.find(m) for m in must]
    assert all(p >= 0 for p in positions), [m for m, p in zip(must, positions) if p < 0]
    assert positions == sorted(positions)


def test_every_block_runs_in_order_as_the_owner(playbook_db, tmp_path):
    dsn, ids = playbook_db
    with psycopg.connect(dsn, autocommit=True) as conn:
        assert (
            conn.execute(
                "select count(*) from bayes.shadow_pairs(now() - interval '14 days', now()) where sample = 'audit'"
            ).fetchone()[0]
            > 0
        ), "no audit pair: step 6's queries would read nothing"
        for i, block in enumerate(BLOCKS):
            before = dict(conn.execute(FEATURE_ROWS_SQL).fetchall())
            path = tmp_path / f"block-{i:02d}.sql"
            path.write_text(block + "\n")
            psql(dsn, "-f", str(path))  # ON_ERROR_STOP: a failing statement fails the test
            after = dict(conn.execute(FEATURE_ROWS_SQL).fetchall())
            if "c.result ->> 'verdict' = 'better'" in block:  # the reviewed proposal, applied only if better
                result = conn.execute("select result from ops.calibration order by run_at desc limit 1").fetchone()[0]
                assert result["verdict"] in ("better", "worse", "mixed", "same", "not_evaluated")
                assert after == (result["proposal"] if result["verdict"] == "better" else before)
            elif "from ops.feature_rows as s" in block and block.lstrip().startswith("update"):  # the rollback
                assert after == {k: DEFAULT_SNAPSHOT["global"][k] for k in EVIDENCE_KEYS}
            elif "p_apply" not in block:  # nothing else writes the weights
                assert after == before, block
        # the page ends with everyone back in shadow, and the weights it found
        assert conn.execute("select bayes_percent::float8 from bayes.rollout").fetchone()[0] == 0
        assert dict(conn.execute(FEATURE_ROWS_SQL).fetchall()) == {
            k: DEFAULT_SNAPSHOT["global"][k] for k in EVIDENCE_KEYS
        }
        assert conn.execute("select count(*) from ops.feature_rows").fetchone()[0] == len(EVIDENCE_KEYS)
