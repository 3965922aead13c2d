"""A table that holds corrupt states (issue 12, hardening), on a real cluster.

The analytics skip and count a corrupt state: every function of a state
returns NULL for it, so aggregates leave it out, and bayes.state_problem
names what is wrong with it (exactly when the codec refuses it: checked
against bayes_engine.codec with hypothesis). A player's own RPCs keep
refusing his corrupt row with the codec's error, and write nothing.

A module fixture commits the population: valid players, and one player per
kind of corrupt state of bayes_dev.corrupt (planted as an operator's manual
UPDATE would leave it); it deletes all of them at the end.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re

import psycopg
import pytest
from bayes_dev import corrupt, players
from bayes_dev.support import ROOT, new_player
from bayes_engine import codec
from bayes_engine.errors import BayesError
from bayes_engine.params import Params
from hypothesis import HealthCheck, given, settings

pytestmark = pytest.mark.db

DOC = ROOT / "docs" / "analytics.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\s*$", re.S | re.M)


def doc_blocks(info: str) -> list[str]:
    return [m.group(2) for m in FENCE.finditer(DOC.read_text()) if m.group(1).strip() == info]


def refusal(text: str):
    """(SQLSTATE, message) of the codec's refusal of a state's text, or None when it accepts it."""
    try:
        codec.decode(text)
    except BayesError as err:
        return err.sqlstate, err.message
    return None


@dataclasses.dataclass
class Population:
    valid: list
    bad: dict  # user_id -> (kind, sqlstate, message)

    @property
    def everyone(self) -> list:
        return self.valid + list(self.bad)


@pytest.fixture(scope="module")
def population(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        params = Params.from_snapshot(json.loads(conn.execute("select bayes.params_snapshot()::text").fetchone()[0]))
        pool = players.state_pool(params, size=30, seed=21)
        ids = []
        try:
            for text in pool:
                ids.append(new_player(conn))
                conn.execute(
                    "insert into public.user_bayesian_state (user_id, state, last_message_at, decayed_at)"
                    " values (%s, %s, now(), now())",
                    (ids[-1], text),
                )
            valid = list(ids)
            bad = {}
            for name, text in corrupt.corruptions(codec.decode(pool[3])):
                user_id = new_player(conn)
                ids.append(user_id)
                conn.execute(
                    "insert into public.user_bayesian_state (user_id, state, last_message_at, decayed_at)"
                    " values (%s, %s, now(), now())",
                    (user_id, pool[3]),
                )
                try:
                    corrupt.plant(conn, user_id, text)
                except psycopg.Error:
                    continue  # refused by the table itself (tests/db/test_decay_failures.py lists them)
                stored = conn.execute(
                    "select state::text from public.user_bayesian_state where user_id = %s", (user_id,)
                ).fetchone()[0]
                bad[user_id] = (name, *refusal(stored))
            yield Population(valid, bad)
        finally:
            conn.execute("delete from auth.users where id = any(%s)", (ids,))


def test_the_population_has_every_kind(population):
    assert len(population.bad) >= 100
    assert {sqlstate for _, sqlstate, _ in population.bad.values()} == {"XX001", "0A000"}


# --------------------------------------------------------------------------
# bayes.state_problem
# --------------------------------------------------------------------------


def test_state_problem_is_the_codecs_message_for_each_corrupt_row_and_null_for_a_valid_one(population, db):
    got = dict(
        db.execute(
            "select user_id, bayes.state_problem(state) from public.user_bayesian_state where user_id = any(%s)",
            (population.everyone,),
        ).fetchall()
    )
    assert {u: got[u] for u in population.valid} == dict.fromkeys(population.valid)
    assert {u: got[u] for u in population.bad} == {u: message for u, (_, _, message) in population.bad.items()}


def test_the_documented_query_finds_every_corrupt_row(population, db):
    (query,) = doc_blocks("sql corrupt")
    found = db.execute(query).fetchall()
    assert {row[0]: row[1] for row in found} == {u: message for u, (_, _, message) in population.bad.items()}


@pytest.fixture(scope="module")
def hypothesis_conn(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(state=corrupt.mutated_states())
def test_state_problem_is_null_exactly_when_the_codec_accepts_the_state(hypothesis_conn, state):
    """Against bayes_engine.codec.decode of the stored text (jsonb's own layout and numbers)."""
    text, problem = hypothesis_conn.execute(
        "select s::text, bayes.state_problem(s) from (select %s::jsonb as s) as x", (json.dumps(state),)
    ).fetchone()
    want = refusal(text)
    assert problem == (None if want is None else want[1])


# --------------------------------------------------------------------------
# The analytics functions: NULL for a corrupt state
# --------------------------------------------------------------------------

FUNCTIONS = [
    "bayes.state_composite(s.state)",
    "bayes.metric_mean(s.state, 'trust')",
    "bayes.metric_variance(s.state, 'passion')",
    "bayes.metric_interval(s.state, 'intimacy')",
    "bayes.metric_interval(s.state, 'secureness', 0.5)",
    "bayes.composite_sd(s.state)",
    "bayes.mood(s.state)",
    "bayes.top_vice(s.state)",
    "bayes.readiness_probability(s.state)",
    "bayes.fallback_reason(s.state)",
    "bayes.state_readiness(s.state, 'normal', s.user_id::text, null)",
    "bayes.state_readiness(s.state, 'monte_carlo', s.user_id::text, 'seed')",
    "bayes.state_fallback_check(s.state)",
]


@pytest.mark.parametrize("expression", FUNCTIONS)
def test_each_function_of_a_state_is_null_for_a_corrupt_state_and_only_then(population, db, expression):
    got = dict(
        db.execute(
            f"select s.user_id, {expression} from public.user_bayesian_state as s where s.user_id = any(%s)",
            (population.everyone,),
        ).fetchall()
    )
    assert [u for u in population.valid if got[u] is None] == []
    assert {population.bad[u][0]: got[u] for u in population.bad if got[u] is not None} == {}


def test_aggregates_skip_the_corrupt_rows(population, db):
    got = db.execute(
        """
        select
            count(*),
            count(bayes.readiness_probability(s.state)),
            avg(bayes.readiness_probability(s.state)),
            percentile_cont(0.5) within group (order by bayes.composite_sd(s.state)),
            avg(bayes.metric_mean(s.state, 'intimacy')),
            count(distinct bayes.mood(s.state)) filter (where bayes.mood(s.state) is not null),
            count(*) filter (where bayes.state_problem(s.state) is not null)
        from public.user_bayesian_state as s
        where s.user_id = any(%s)
        """,
        (population.everyone,),
    ).fetchone()
    everyone, counted, mean, median_sd, mean_intimacy, moods, problems = got
    assert (everyone, counted, problems) == (len(population.everyone), len(population.valid), len(population.bad))
    assert 0 <= mean <= 1 and median_sd > 0 and 0 < mean_intimacy < 1 and moods >= 1


def test_the_summary_view_has_every_player_and_nulls_for_a_corrupt_one(population, db):
    view = {
        row[0]: row[1:]
        for row in db.execute(
            "select user_id, messages, composite_sd, readiness, mood, top_vice, fallback_reason, state_problem"
            " from bayes.player_summary where user_id = any(%s)",
            (population.everyone,),
        ).fetchall()
    }
    assert view.keys() == set(population.everyone)
    for user_id in population.valid:
        assert None not in view[user_id][:-1] and view[user_id][-1] is None
    for user_id, (kind, _, message) in population.bad.items():
        assert view[user_id] == (None,) * 6 + (message,), kind


def test_every_documented_query_runs_over_a_table_with_corrupt_rows(population, dsn):
    for sql in doc_blocks("sql") + doc_blocks("sql corrupt"):
        with psycopg.connect(dsn) as conn:
            conn.execute("set transaction read only")
            conn.execute(sql).fetchall()
            conn.rollback()


# --------------------------------------------------------------------------
# A player's own RPCs keep refusing his corrupt row
# --------------------------------------------------------------------------

RPCS = [
    "select public.bayes_get_state(%(u)s)",
    "select public.bayes_boss_readiness(%(u)s)",
    "select public.bayes_boss_readiness(%(u)s, 'monte_carlo')",
    "select public.bayes_fallback_check(%(u)s)",
    "select public.bayes_process_message(%(u)s, 'hi, how are you?', p_message_id => 'corrupt-check')",
    "select public.bayes_apply_llm_scores(%(u)s, '{\"trust\": 2}')",
    "select public.bayes_record_outcome(%(u)s, 'reply', true)",
    "select public.bayes_advance_chapter(%(u)s, 5)",
]


@pytest.mark.parametrize("call", RPCS, ids=[re.search(r"bayes_\w+", c).group(0) + str(i) for i, c in enumerate(RPCS)])
def test_a_players_rpc_refuses_his_corrupt_row_with_the_codecs_error(population, db, call):
    before = db.execute(
        "select user_id, version, state::text from public.user_bayesian_state where user_id = any(%s)",
        (list(population.bad),),
    ).fetchall()
    wrong = {}
    for user_id, (kind, sqlstate, message) in population.bad.items():
        try:
            db.execute(call, {"u": user_id})
            wrong[kind] = "no error"
        except psycopg.Error as err:
            # raised inside PL/Python: with PL/Python's prefix (README, Errors)
            if (err.sqlstate, err.diag.message_primary) != (sqlstate, f"plpy.Error: {message}"):
                wrong[kind] = (err.sqlstate, err.diag.message_primary)
    assert wrong == {}
    after = db.execute(
        "select user_id, version, state::text from public.user_bayesian_state where user_id = any(%s)",
        (list(population.bad),),
    ).fetchall()
    assert sorted(after) == sorted(before)
    assert (
        db.execute(
            "select count(*) from bayes.player_event where user_id = any(%s)", (list(population.bad),)
        ).fetchone()[0]
        == 0
    )


def test_a_players_read_rpcs_still_answer_for_a_valid_row(population, db):
    """The RPCs still answer for valid rows (the NULL of a corrupt state is only ever turned into its error)."""
    user_id = population.valid[0]
    for call in RPCS[:4]:
        assert db.execute(call, {"u": user_id}).fetchone()[0]["user_id"] == str(user_id)


def test_math_of_the_valid_rows_is_unchanged(population, db):
    """The NULL guard changes nothing for a valid state: the closed forms, as before."""
    for user_id, text, mean, var in db.execute(
        "select user_id, state::text, bayes.metric_mean(state, 'trust'), bayes.metric_variance(state, 'trust')"
        " from public.user_bayesian_state where user_id = any(%s)",
        (population.valid,),
    ).fetchall():
        a, b = json.loads(text)["m"]["t"]
        assert mean == pytest.approx(a / (a + b), rel=1e-15)
        assert var == pytest.approx(a * b / ((a + b) ** 2 * (a + b + 1)), rel=1e-13)
        assert not math.isnan(mean), user_id


def test_a_corrupt_state_given_directly_is_null_too(db):
    """Not only rows of the table: any jsonb."""
    for state in ('{"v": 1}', "[]", '"x"', "1", '{"v": 2}'):
        got = db.execute(
            "select bayes.state_problem(%s::jsonb), bayes.readiness_probability(%s::jsonb), bayes.mood(%s::jsonb)",
            (state, state, state),
        ).fetchone()
        assert got[0] is not None and got[1:] == (None, None), state
