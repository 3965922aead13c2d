"""Shadow cohorts in the database (issue 14): the pairs, the report, the counterfactual replay
and the calibration, on players who sent real chat lines (chatterbot-corpus) through
bayes_process_message and whose LLM answers (a STAND-IN: vaderSentiment, as in the
lifetime benchmark) came back through bayes_apply_llm_scores."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from bayes_dev import lifetime
from bayes_engine import codec, params, shadow
from psycopg import errors
from psycopg.types.json import Jsonb

PLAYERS = 10
MESSAGES = 40


@pytest.fixture(scope="module")
def shadow_db(dsn):
    """PLAYERS shadow players (the migrations' rollout: everyone shadow) with MESSAGES messages each,
    every one answered by the stand-in with its deltas, mood and (for the even players) vices."""
    lines = lifetime.corpus_messages()
    standin = lifetime.StandIn()
    population = lifetime.population(1414, PLAYERS, MESSAGES, len(lines))
    with psycopg.connect(dsn, autocommit=True) as conn:
        lifetime.fresh_players(conn, [p.ids["reference"] for p in population])
        day0 = lifetime.day0_for(population, lifetime.db_now(conn), 87600)
        for player in population:
            user_id = player.ids["reference"]
            for k, line in enumerate(player.lines):
                mid = lifetime.message_id(k)
                sent_at = datetime.fromtimestamp(player.sent_at(day0, k), UTC)
                (result,) = conn.execute(
                    lifetime.PROCESS_SQL, (user_id, lines[line], sent_at, mid, player.gaps[k])
                ).fetchone()
                assert result["mode"] == "shadow"
                compound = standin.compound(lines[line])
                vices = {"dark_humor": 1.0} if player.index % 2 == 0 and compound < 0 else {}
                conn.execute(
                    "select public.bayes_apply_llm_scores(%s, %s, %s, p_vices => %s, p_mood => %s)",
                    (
                        user_id,
                        Jsonb(lifetime.standin_deltas(compound)),
                        mid,
                        Jsonb(vices) if player.index % 2 == 0 else None,
                        lifetime.standin_mood(compound),
                    ),
                )
    return dsn, population, lines


def logs_of(conn, user_ids):
    out = []
    for user_id in user_ids:
        rows = conn.execute(
            "select kind::text, message_id, bayes.event_input(kind, input), player_mode::text,"
            " extract(epoch from occurred_at)::float8"
            " from bayes.player_event where user_id = %s order by event_id",
            (user_id,),
        ).fetchall()
        out.append((user_id, [shadow.LoggedEvent(*row) for row in rows]))
    return out


def db_params(conn):
    return params.Params.from_snapshot(conn.execute("select bayes.params_snapshot()").fetchone()[0])


def test_the_logged_replay_equals_every_stored_state(shadow_db):
    dsn, population, _ = shadow_db
    with psycopg.connect(dsn) as conn:
        prm = db_params(conn)
        for user_id, log in logs_of(conn, [p.ids["reference"] for p in population]):
            _, text = shadow.replay(prm, user_id, log, "logged")
            (stored,) = conn.execute(
                "select state::text from public.user_bayesian_state where user_id = %s", (user_id,)
            ).fetchone()
            assert codec.decode(text, prm) == codec.decode(stored, prm)


def test_the_pairs_join_each_message_with_its_llm_answer(shadow_db):
    dsn, population, _ = shadow_db
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "select user_id::text, message_id, sample, n, engine_evidence, llm_evidence, llm_vices, llm_mood"
            " from bayes.shadow_pairs() where user_id = any(%s::uuid[])",
            ([p.ids["reference"] for p in population],),
        ).fetchall()
        assert len(rows) == PLAYERS * MESSAGES
        assert {r[2] for r in rows} == {"shadow"}
        for user_id, mid, _, n, engine, llm, vices, mood in rows:
            (event,) = conn.execute(
                "select bayes.event_input(kind, input) from bayes.player_event"
                " where user_id = %s and kind = 'message' and message_id = %s",
                (user_id, mid),
            ).fetchone()
            observation = event["observation"]
            assert engine == [p - m for p, m in zip(observation["plus"], observation["minus"])]
            (answer,) = conn.execute(
                "select bayes.event_input(kind, input) from bayes.player_event"
                " where user_id = %s and kind = 'llm_scores' and message_id = %s",
                (user_id, mid),
            ).fetchone()
            assert llm == shadow.llm_evidence(answer["deltas"])
            assert mood in lifetime.STANDIN_MOODS and n == int(mid[1:])
            assert vices is None or set(vices) <= {"dark_humor"}


def test_evaluate_policy_in_sql_equals_the_python_replay(shadow_db):
    dsn, population, _ = shadow_db
    ids = [p.ids["reference"] for p in population]
    overrides = {"llm_budget_window": 30}
    with psycopg.connect(dsn) as conn:
        (report,) = conn.execute("select bayes.evaluate_policy(%s, %s::uuid[])", (Jsonb(overrides), ids)).fetchone()
        prm = db_params(conn)
        snapshot = conn.execute("select bayes.params_snapshot()").fetchone()[0]
        want = shadow.evaluate(prm, shadow.candidate_params(snapshot, overrides), logs_of(conn, ids))
    assert report.pop("overrides") == overrides
    want = json.loads(json.dumps(want))
    # the database's Python and this one may differ in the last bits of a libm function (erfc)
    assert report.pop("fidelity") == pytest.approx(want.pop("fidelity"), rel=1e-12)
    assert report == want
    assert report["players"] == PLAYERS and report["messages"] == PLAYERS * MESSAGES


def test_evaluate_policy_reports_progress_and_writes_nothing(shadow_db):
    dsn, population, _ = shadow_db
    notices = []
    with psycopg.connect(dsn) as conn:
        conn.add_notice_handler(lambda d: notices.append(d.message_primary))
        before = conn.execute("select sum(version), count(*) from public.user_bayesian_state").fetchone()
        conn.execute('select bayes.evaluate_policy(\'{"feature_warm": {"passion": 0.2}}\')')
        after = conn.execute("select sum(version), count(*) from public.user_bayesian_state").fetchone()
        assert before == after
        assert conn.execute("select value from bayes.params where name = 'feature_warm'").fetchone()[0] == {
            "passion": 0.49
        }
    assert notices and notices[-1].startswith("evaluate_policy: ") and "players" in notices[-1]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ("[1]", "JSON object"),
        ('{"nope": 1}', "not a parameter"),
        ('{"lexicon_negative": []}', "cannot be replayed"),
        ('{"audit_rate": 2}', "audit_rate"),
    ],
)
def test_evaluate_policy_refuses_bad_overrides(shadow_db, overrides, match):
    dsn, _, _ = shadow_db
    with psycopg.connect(dsn) as conn, pytest.raises(errors.InvalidParameterValue, match=match):
        conn.execute("select bayes.evaluate_policy(%s::jsonb)", (overrides,))


def test_the_shadow_report(shadow_db):
    dsn, population, _ = shadow_db
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("select * from bayes.shadow_report()").fetchall()
        pairs = conn.execute(
            "select engine_evidence, llm_evidence, engine_vices, llm_vices, engine_mood, llm_mood"
            " from bayes.shadow_pairs()"
        ).fetchall()
    by_item = {(r[0], r[1]): r for r in rows}
    assert [r[1] for r in rows] == ["intimacy", "passion", "trust", "secureness", "vices", "mood", "boss_ready"]
    # each metric's figures, recomputed from the pairs with numpy
    import numpy as np

    for m, name in enumerate(("intimacy", "passion", "trust", "secureness")):
        e = np.array([p[0][m] for p in pairs])
        llm = np.array([p[1][m] for p in pairs])
        _, _, n, corr, sign, mad, missed, agreement = by_item[("shadow", name)]
        assert n == len(pairs)
        if e.std() > 0 and llm.std() > 0:
            assert corr == pytest.approx(np.corrcoef(e, llm)[0, 1], abs=1e-9)
        else:
            assert corr is None
        assert sign == pytest.approx(np.mean(np.sign(e) == np.sign(llm)))
        assert mad == pytest.approx(np.mean(np.abs(e - llm)))
        assert missed == pytest.approx(np.mean((e == 0) & (np.abs(llm) >= 0.3)))
        assert agreement is None
    with_vices = [p for p in pairs if p[3] is not None]
    assert by_item[("shadow", "vices")][2] == 8 * len(with_vices) > 0
    same = [(p[2][j] > 0) == (p[3].get(v, 0) > 0) for p in with_vices for j, v in enumerate(lifetime.vocab.VICES)]
    assert by_item[("shadow", "vices")][7] == pytest.approx(np.mean(same))
    assert by_item[("shadow", "mood")][7] == pytest.approx(np.mean([p[4] == p[5] for p in pairs]))
    assert 0 <= by_item[("shadow", "boss_ready")][7] <= 1


def test_calibrate_evidence_proposes_evaluates_and_applies_only_when_asked(shadow_db):
    dsn, _, _ = shadow_db
    with psycopg.connect(dsn) as conn:
        (result,) = conn.execute("select bayes.calibrate_evidence(p_holdout => 0.3)").fetchone()
        assert set(result["proposal"]) == set(params.EVIDENCE_KEYS)
        assert result["training"]["pairs"] > 0 and result["held_out"]["players"] > 0
        assert result["verdict"] in ("better", "worse", "mixed", "same")
        assert result["applied"] is False
        assert conn.execute("select value from bayes.params where name = 'feature_warm'").fetchone()[0] == {
            "passion": 0.49
        }
        (applied,) = conn.execute("select bayes.calibrate_evidence(p_holdout => 0.3, p_apply => true)").fetchone()
        assert applied["proposal"] == result["proposal"] and applied["verdict"] == result["verdict"]
        rows = dict(conn.execute("select name, value from bayes.params where name like 'feature%'").fetchall())
        if applied["verdict"] == "better":
            assert applied["applied"] is True
            assert rows == applied["proposal"]
        else:
            assert applied["applied"] is False
            assert rows == {k: params.DEFAULT_SNAPSHOT["global"][k] for k in params.EVIDENCE_KEYS}
        conn.rollback()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        ("select bayes.calibrate_evidence(p_holdout => 0)", errors.InvalidParameterValue),
        ("select bayes.calibrate_evidence(p_holdout => 1)", errors.InvalidParameterValue),
        ("select bayes.calibrate_evidence(p_ridge => -1)", errors.InvalidParameterValue),
        ("select bayes.calibrate_evidence(p_ridge => null)", errors.NullValueNotAllowed),
        ("select bayes.calibrate_evidence(p_holdout => null)", errors.NullValueNotAllowed),
        ("select bayes.calibrate_evidence(p_from => '2001-01-01', p_to => '2001-01-02')", errors.NoDataFound),
    ],
)
def test_calibrate_evidence_refuses_bad_arguments(shadow_db, call, error):
    dsn, _, _ = shadow_db
    with psycopg.connect(dsn) as conn, pytest.raises(error):
        conn.execute(call)


def test_only_a_role_that_may_update_the_parameters_may_apply(shadow_db):
    """service_role may propose (and evaluate) but not apply: 42501 at once, nothing written."""
    dsn, _, _ = shadow_db
    with psycopg.connect(dsn) as conn:
        conn.execute("set role service_role")
        (result,) = conn.execute("select bayes.calibrate_evidence()").fetchone()
        assert result["applied"] is False
        with pytest.raises(errors.InsufficientPrivilege, match="may not update"):
            conn.execute("select bayes.calibrate_evidence(p_apply => true)")
        conn.rollback()
        conn.execute("reset role")
        rows = dict(conn.execute("select name, value from bayes.params where name like 'feature%'").fetchall())
        assert rows == {k: params.DEFAULT_SNAPSHOT["global"][k] for k in params.EVIDENCE_KEYS}


def test_a_proposal_that_makes_held_out_fidelity_worse_is_reported_and_never_applied(shadow_db):
    """The LLM tells the training players one thing and the held-out players the opposite: the
    proposal fitted on the first is worse on the second, and p_apply writes nothing."""
    dsn, _, lines = shadow_db
    from bayes_engine import cohort

    def players_with(held_out: bool, count: int):
        found = []
        while len(found) < count:
            user_id = str(uuid.uuid4())
            if (cohort.user_bucket(user_id, "calibration") < 3000) == held_out:
                found.append(user_id)
        return found

    train, held = players_with(False, 4), players_with(True, 3)
    script = lifetime.make_player(99, 0, 40, len(lines))
    with psycopg.connect(dsn, autocommit=True) as conn:
        lifetime.fresh_players(conn, train + held)
        now = lifetime.db_now(conn)
        day0 = lifetime.day0_for(
            [script], now, 87600, end_before_s=3217 * 86400
        )  # a window of its own (no other test writes 8.8 years back)
        for user_id in train + held:
            deltas = (
                {"intimacy": 10, "passion": 10, "trust": 10, "secureness": 10} if user_id in train else {"trust": 0}
            )
            for k, line in enumerate(script.lines):
                mid = lifetime.message_id(k)
                sent_at = datetime.fromtimestamp(script.sent_at(day0, k), UTC)
                conn.execute(lifetime.PROCESS_SQL, (user_id, lines[line], sent_at, mid, script.gaps[k]))
                conn.execute(lifetime.LLM_SQL, (user_id, Jsonb(deltas), mid))
        since = datetime.fromtimestamp(day0, UTC)
        until = datetime.fromtimestamp(script.sent_at(day0, 39) + 1, UTC)
        before = dict(conn.execute("select name, value from bayes.params where name like 'feature%'").fetchall())
        warnings = []
        conn.add_notice_handler(lambda d: warnings.append((d.severity, d.message_primary)))
        (result,) = conn.execute("select bayes.calibrate_evidence(%s, %s, p_apply => true)", (since, until)).fetchone()
        after = dict(conn.execute("select name, value from bayes.params where name like 'feature%'").fetchall())
    assert result["training"] == {"players": 4, "pairs": 160} and result["held_out"]["players"] == 3
    # the training players' LLM gave every message everything: about 1 a message, most of it the intercept
    assert all(value > 0.9 for value in result["proposal"]["feature_intercept"].values())
    assert result["verdict"] == "worse" and result["applied"] is False
    assert result["after"]["fidelity"]["composite_mad"] > result["before"]["fidelity"]["composite_mad"]
    assert ("WARNING", "the proposal was not applied: held-out fidelity is worse") in warnings
    assert after == before
