"""The analytics surface on a real cluster: docs/analytics.md, the SQL
functions of a state (sql/functions/80_state_analytics.sql) and the view
bayes.player_summary.

A module fixture commits a population to the shared test database:

- 2,000 players made by bayes_dev.players (engine-made states, no events);
- 20 players whose states come from real bayes_process_message calls sent
  in the last day, some of them after a move to a later chapter; they are
  in mode shadow, and every other one has the LLM's answers (a stand-in,
  vaderSentiment) for the shadow queries;
- one bulk-decay run dated 2000-01-01. It decays nobody, but it gives the
  decay-history queries a row.

It removes all of it at the end: the auth users (the states cascade, and a
trigger deletes their events) and the run. Other modules' players may be
in the database too, so the checks look only at this module's players,
except where a query of the document is run as a whole.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import random
import time
import uuid

import numpy as np
import psycopg
import pytest
from bayes_dev import decay_runs, lifetime, players, retention_runs
from bayes_dev.analytics_doc import DOC, analyst_setup, doc_blocks
from bayes_dev.reference import edgeworth
from bayes_engine import model, vocab
from bayes_engine.params import Params
from psycopg import errors
from psycopg.types.json import Jsonb
from scipy import stats

pytestmark = pytest.mark.db

POPULATION = 2000
RPC_PLAYERS = 20
DECAY_RUN_INSTANT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


# --------------------------------------------------------------------------
# The document
# --------------------------------------------------------------------------

QUERIES = doc_blocks("sql")
SETUP = doc_blocks("sql setup")


def test_the_document_has_its_queries_and_one_setup_block():
    assert len(QUERIES) >= 12
    assert len(SETUP) == 1
    sections = {block_id.split("-", 1)[1] for block_id, _ in QUERIES}
    for needed in (
        "composite-by-chapter",
        "players-near-their-boss",
        "fallback-reasons-over-the-last-day",
        "vice-mix-by-chapter",
        "mood-distribution",
        "bulk-decay-runs",
        "shadow-cohorts-and-audits",
    ):
        assert needed in sections
    for _, sql in QUERIES:
        # one statement per block, so that it pastes and runs as one
        assert sql.strip().endswith(";") and sql.count(";") == 1, sql


# --------------------------------------------------------------------------
# The population
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Population:
    tag: str
    user_ids: list
    rpc_user_ids: list
    rpc_messages: int
    decay_run_id: int


def send_messages(conn, tag: str) -> tuple[list, int]:
    """RPC_PLAYERS players, each with 5 to 24 real messages sent over the last 23 hours. They are in mode
    shadow (the migrations' rollout), and every other one has the LLM's answer to each message, as a
    shadow-mode backend reports it (deltas, mood and, for every fourth player, vices), for the shadow
    queries; the LLM is a STAND-IN here: vaderSentiment, as in the lifetime benchmark."""
    standin = lifetime.StandIn()
    rnd = random.Random(7)
    now = conn.execute("select now()").fetchone()[0]
    user_ids, sent = [], 0
    for p in range(RPC_PLAYERS):
        user_id = uuid.uuid4()
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{tag}-rpc-{p}@players.test"))
        if p % 4:
            conn.execute("select public.bayes_advance_chapter(%s, %s)", (user_id, 1 + p % 5))
        t = now - dt.timedelta(hours=23)
        for i in range(5 + p):
            gap = rnd.choice((20.0, 90.0, 400.0, 3000.0))
            t += dt.timedelta(seconds=gap)
            text = rnd.choice(players.MESSAGES)
            conn.execute(
                "select public.bayes_process_message(%s, %s, p_sent_at => %s, p_message_id => %s, p_reply_gap_s => %s)",
                (user_id, text, t, f"analytics-{i}", gap),
            )
            sent += 1
            if p % 2 == 0:
                compound = standin.compound(text)
                mood = "defensive" if compound < -0.05 else "playful" if compound > 0.05 else "content"
                vices = ({"vulnerability": 1.0} if compound < 0 else {}) if p % 4 == 0 else None
                conn.execute(
                    "select public.bayes_apply_llm_scores(%s, %s, %s, p_vices => %s, p_mood => %s)",
                    (
                        user_id,
                        Jsonb(lifetime.standin_deltas(compound)),
                        f"analytics-{i}",
                        None if vices is None else Jsonb(vices),
                        mood,
                    ),
                )
        user_ids.append(user_id)
    return user_ids, sent


@pytest.fixture(scope="module")
def population(dsn):
    tag = f"analytics-{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        run_id = retention_run_id = None
        try:
            players.populate(conn, POPULATION, time.time(), tag=tag, seed=3)
            rpc_user_ids, sent = send_messages(conn, tag)
            conn.execute(decay_runs.decay_command(conn, DECAY_RUN_INSTANT))
            run_id = conn.execute(
                "select max(run_id) from bayes.decay_run where decay_to = %s and status = 'done'",
                (DECAY_RUN_INSTANT,),
            ).fetchone()[0]
            conn.execute(retention_runs.retention_command(conn))  # a row for the document's query of the runs
            retention_run_id = conn.execute("select max(run_id) from bayes.retention_run").fetchone()[0]
            user_ids = [
                r[0]
                for r in conn.execute(
                    "select u.id from auth.users as u where u.email like %s order by u.id", (tag + "-%",)
                )
            ]
            assert len(user_ids) == POPULATION + RPC_PLAYERS
            yield Population(tag, user_ids, rpc_user_ids, sent, run_id)
        finally:
            conn.execute("delete from auth.users where email like %s", (tag + "-%",))
            if run_id is not None:
                conn.execute("delete from bayes.decay_run where run_id = %s", (run_id,))
            if retention_run_id is not None:
                conn.execute("delete from bayes.retention_run where run_id = %s", (retention_run_id,))


@pytest.fixture(scope="module")
def params(population, dsn) -> Params:
    with psycopg.connect(dsn) as conn:
        return Params.from_snapshot(conn.execute("select bayes.params_snapshot()::text").fetchone()[0])


def test_the_population_is_in_place_and_messages_left_events(population, conn):
    states, events = conn.execute(
        "select (select count(*) from public.user_bayesian_state where user_id = any(%(ids)s)),"
        " (select count(*) from bayes.player_event where user_id = any(%(ids)s) and kind = 'message'"
        "  and occurred_at >= now() - interval '1 day')",
        dict(ids=population.user_ids),
    ).fetchone()
    assert states == POPULATION + RPC_PLAYERS
    assert events == population.rpc_messages


# --------------------------------------------------------------------------
# (a) Every query of the document runs and returns rows
# --------------------------------------------------------------------------


def run_query(conn, sql: str) -> list:
    rows = conn.execute(sql).fetchall()
    assert rows, "the query returned no row"
    return rows


@pytest.mark.parametrize("sql", [q for _, q in QUERIES], ids=[i for i, _ in QUERIES])
def test_doc_query_runs_as_postgres(population, dsn, sql):
    with psycopg.connect(dsn) as conn:
        conn.execute("set transaction read only")
        run_query(conn, sql)
        conn.rollback()


@pytest.mark.parametrize("sql", [q for _, q in QUERIES], ids=[i for i, _ in QUERIES])
def test_doc_query_runs_as_service_role(population, dsn, sql):
    with psycopg.connect(dsn) as conn:
        conn.execute("set transaction read only")
        conn.execute("set local role service_role")
        run_query(conn, sql)
        conn.rollback()


@pytest.mark.parametrize("sql", [q for _, q in QUERIES], ids=[i for i, _ in QUERIES])
def test_doc_query_runs_as_the_documented_analyst_role(population, dsn, sql):
    """In a new backend, so that loading the engine (bayes.py_load) needs the role's own grant."""
    role = f"analyst_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as conn:
        conn.execute(analyst_setup(role))  # rolled back below, with the role
        conn.execute(f"set local role {role}")
        run_query(conn, sql)
        with pytest.raises(errors.InsufficientPrivilege):  # it reads, and that is all
            conn.execute("update bayes.chapter_params set boss_threshold = boss_threshold")
        conn.rollback()


def test_without_bypassrls_the_analyst_sees_no_player(population, dsn):
    """What the document warns about: the policies name only the API roles."""
    role = f"analyst_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as conn:
        conn.execute(analyst_setup(role, bypassrls=False))
        conn.execute(f"set local role {role}")
        assert conn.execute("select count(*) from bayes.player_summary").fetchone()[0] == 0
        assert conn.execute("select count(*) from public.user_bayesian_state").fetchone()[0] == 0
        conn.rollback()


def test_the_grant_on_the_view_alone_is_not_enough(population, dsn):
    role = f"viewer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(dsn) as conn:
        conn.execute(f"create role {role} bypassrls")
        conn.execute(f"grant usage on schema bayes to {role}")
        conn.execute(f"grant select on bayes.player_summary to {role}")
        conn.execute(f"set local role {role}")
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute("select user_id, composite from bayes.player_summary limit 1")
        conn.rollback()


def test_the_near_boss_window_holds_every_player_with_readiness_between_0_4_and_0_9(population, conn):
    """The document's reasoning, T - 3 < C < T + 12, on this module's players."""
    thresholds = dict(conn.execute("select chapter, boss_threshold from bayes.chapter_params").fetchall())
    c1 = conn.execute(
        "select prior_intimacy_alpha + prior_intimacy_beta, prior_passion_alpha + prior_passion_beta,"
        " prior_trust_alpha + prior_trust_beta, prior_secureness_alpha + prior_secureness_beta"
        " from bayes.chapter_params where chapter = 1"
    ).fetchone()
    # Each variance is at most 0.25 / (strength + 1), and no strength falls below chapter 1's prior.
    sd_bound = 100 * math.sqrt(sum(w * w * 0.25 / (s + 1) for w, s in zip(vocab.METRIC_WEIGHTS, c1)))
    assert sd_bound <= 9.3
    # Readiness (Edgeworth) is within 0.04 of the normal approximation: 0.005 from the exact value,
    # which is within 0.035 of the normal approximation (tests/unit/test_readiness.py).
    assert -4 < stats.norm.ppf(0.4 - 0.04) * 9.3 and stats.norm.ppf(0.9 + 0.04) * 9.3 < 15
    rows = conn.execute(
        "select s.chapter, s.composite, bayes.composite_sd(s.state), bayes.readiness_probability(s.state)"
        " from public.user_bayesian_state as s where s.user_id = any(%s)",
        (population.user_ids,),
    ).fetchall()
    near = [(c, composite) for c, composite, sd, p in rows if 0.4 <= p <= 0.9]
    assert near, "no player of the population is near his boss"
    assert max(sd for _, _, sd, _ in rows) <= sd_bound
    for chapter, composite in near:
        assert thresholds[chapter] - 4 < composite < thresholds[chapter] + 15


# --------------------------------------------------------------------------
# (b) The functions against independent computations, on every player of the population
# --------------------------------------------------------------------------

FUNCTIONS_SQL = """
select
    s.user_id, s.state::text, s.chapter, s.composite, cp.boss_threshold,
    bayes.state_composite(s.state),
    bayes.composite_sd(s.state),
    bayes.readiness_probability(s.state),
    bayes.fallback_reason(s.state),
    bayes.mood(s.state),
    bayes.top_vice(s.state),
    array[bayes.metric_mean(s.state, 'intimacy'), bayes.metric_mean(s.state, 'passion'),
          bayes.metric_mean(s.state, 'trust'), bayes.metric_mean(s.state, 'secureness')],
    array[bayes.metric_variance(s.state, 'intimacy'), bayes.metric_variance(s.state, 'passion'),
          bayes.metric_variance(s.state, 'trust'), bayes.metric_variance(s.state, 'secureness')],
    array[bayes.metric_interval(s.state, 'intimacy'), bayes.metric_interval(s.state, 'passion'),
          bayes.metric_interval(s.state, 'trust'), bayes.metric_interval(s.state, 'secureness')],
    bayes.metric_interval(s.state, 'trust', 0.5),
    bayes.metric_interval(s.state, 'intimacy', 0.99)
from public.user_bayesian_state as s
inner join bayes.chapter_params as cp on cp.chapter = s.chapter
where s.user_id = any(%s)
"""


@dataclasses.dataclass
class Row:
    user_id: uuid.UUID
    state: dict
    chapter: int
    composite: float
    threshold: float
    state_composite: float
    composite_sd: float
    readiness: float
    fallback_reason: str
    mood: str
    top_vice: str
    means: list
    variances: list
    intervals: list
    trust_50: list
    intimacy_99: list


@pytest.fixture(scope="module")
def rows(population, dsn) -> list[Row]:
    with psycopg.connect(dsn) as conn:
        out = [Row(r[0], json.loads(r[1]), *r[2:]) for r in conn.execute(FUNCTIONS_SQL, (population.user_ids,))]
    assert len(out) == POPULATION + RPC_PLAYERS
    return out


def pairs(state):
    return [state["m"][key] for key in vocab.METRIC_KEYS]


def moments(state):
    """Closed-form composite mean and sd (written out here, not model.metric_summary)."""
    mean = var = 0.0
    for (a, b), w in zip(pairs(state), vocab.METRIC_WEIGHTS):
        mean += w * a / (a + b)
        var += w * w * a * b / ((a + b) ** 2 * (a + b + 1))
    return 100 * mean, 100 * math.sqrt(var)


def test_means_and_variances_are_the_beta_closed_forms(rows):
    for row in rows:
        for (a, b), mean, var in zip(pairs(row.state), row.means, row.variances):
            assert mean == pytest.approx(stats.beta.mean(a, b), rel=1e-13)
            assert var == pytest.approx(a * b / ((a + b) ** 2 * (a + b + 1)), rel=1e-13)
            assert var == pytest.approx(stats.beta.var(a, b), rel=1e-10)


def test_composite_and_its_sd_are_the_closed_forms(rows):
    for row in rows:
        composite, sd = moments(row.state)
        assert row.composite == pytest.approx(composite, rel=1e-13)
        assert row.state_composite == row.composite
        assert row.composite_sd == pytest.approx(sd, rel=1e-13)
        assert 0 < row.composite < 100


def test_intervals_are_scipy_beta_quantiles(rows):
    checked = set()
    for row in rows:
        ps = pairs(row.state)
        for (a, b), (low, high) in zip(ps, row.intervals):
            assert low == pytest.approx(stats.beta.ppf(0.025, a, b), abs=1e-9)
            assert high == pytest.approx(stats.beta.ppf(0.975, a, b), abs=1e-9)
            checked.add((a, b))
        a, b = ps[2]
        assert row.trust_50 == pytest.approx([stats.beta.ppf(0.25, a, b), stats.beta.ppf(0.75, a, b)], abs=1e-9)
        a, b = ps[0]
        assert row.intimacy_99 == pytest.approx([stats.beta.ppf(0.005, a, b), stats.beta.ppf(0.995, a, b)], abs=1e-9)
    assert len(checked) > 1000  # distinct Beta posteriors compared


def test_readiness_is_the_edgeworth_expansion_with_the_chapter_threshold(rows, conn):
    thresholds = dict(conn.execute("select chapter, boss_threshold from bayes.chapter_params").fetchall())
    spread = [row.readiness for row in rows]
    assert min(spread) < 0.01 and max(spread) > 0.5  # below, at and above the threshold
    for row in rows:
        assert row.threshold == thresholds[row.chapter] == thresholds[row.state["c"]]
        assert row.readiness == pytest.approx(edgeworth(row.state, row.threshold), rel=1e-9, abs=1e-12)


def test_fallback_reason_is_the_engine_rule_and_the_written_rules(rows, params, conn):
    g = dict(conn.execute("select name, value #>> '{}' from bayes.params").fetchall())
    cold, margin = int(g["cold_start_messages"]), float(g["uncertain_margin"])
    seen = set()
    for row in rows:
        p_ready = model.boss_readiness(row.state, params)["p_ready"]
        assert row.fallback_reason == model.fallback_reason(row.state, params, p_ready)
        # MODEL.md v2 section 7, rules 1 and 3, from the state alone
        if row.state["n"] < cold:
            want = "cold_start"
        elif margin < edgeworth(row.state, row.threshold) < 1 - margin:
            want = "uncertain"
        else:
            want = "bayesian_sufficient"
        assert row.fallback_reason == want, row.user_id
        seen.add(want)
    assert seen == {"cold_start", "uncertain", "bayesian_sufficient"}


def test_mood_and_top_vice_are_the_engine_argmax_first_on_a_tie(rows):
    ties = 0
    for row in rows:
        assert row.mood == model.mood_name(row.state) == vocab.MOODS[int(np.argmax(row.state["h"]))]
        assert row.top_vice == model.top_vice(row.state) == vocab.VICES[int(np.argmax(row.state["d"]))]
        ties += len(set(row.state["d"])) == 1
    assert ties > 0  # players without vice evidence: the first vice, as documented
    assert all(row.top_vice == vocab.VICES[0] for row in rows if len(set(row.state["d"])) == 1)


@pytest.mark.parametrize(
    "sql",
    [
        "select bayes.metric_mean(%s::jsonb, %s)",
        "select bayes.metric_variance(%s::jsonb, %s)",
        "select bayes.metric_interval(%s::jsonb, %s)",
        "select bayes.metric_interval(%s::jsonb, %s, 0.9)",
    ],
)
@pytest.mark.parametrize("metric", ["Trust", "i", "", "composite", "intimacy "])
def test_an_unknown_metric_is_22023(conn, rows, sql, metric):
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute(sql, (json.dumps(rows[0].state), metric))


@pytest.mark.parametrize("mass", [0.0, 1.0, -0.5, 1.5, float("nan")])
def test_an_interval_mass_outside_0_1_is_22023(conn, rows, mass):
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute("select bayes.metric_interval(%s::jsonb, 'trust', %s)", (json.dumps(rows[0].state), mass))


def test_the_functions_are_strict(conn, rows):
    state = json.dumps(rows[0].state)
    got = conn.execute(
        "select bayes.metric_mean(null, 'trust'), bayes.metric_mean(%s::jsonb, null),"
        " bayes.metric_interval(%s::jsonb, 'trust', null), bayes.readiness_probability(null),"
        " bayes.fallback_reason(null), bayes.mood(null), bayes.top_vice(null), bayes.composite_sd(null),"
        " bayes.state_problem(null)",
        (state, state),
    ).fetchone()
    assert got == (None,) * 9


# --------------------------------------------------------------------------
# (c) The view
# --------------------------------------------------------------------------

VIEW_COLUMNS = [
    "user_id",
    "chapter",
    "composite",
    "boss_threshold",
    "last_message_at",
    "decayed_at",
    "messages",
    "composite_sd",
    "readiness",
    "mood",
    "top_vice",
    "fallback_reason",
    "state_problem",
    "decay_due_at",
]


def test_the_view_has_the_documented_columns(conn):
    cur = conn.execute("select * from bayes.player_summary limit 0")
    assert [c.name for c in cur.description] == VIEW_COLUMNS
    assert f"`{', '.join(VIEW_COLUMNS)}`" in DOC.read_text()


def test_the_view_has_exactly_one_row_per_player(population, dsn):
    with psycopg.connect(dsn) as conn:
        conn.execute("set transaction isolation level repeatable read")  # one snapshot for every count
        view, distinct, table = conn.execute(
            "select (select count(*) from bayes.player_summary),"
            " (select count(distinct user_id) from bayes.player_summary),"
            " (select count(*) from public.user_bayesian_state)"
        ).fetchone()
        assert view == distinct == table >= POPULATION + RPC_PLAYERS
        mine = conn.execute(
            "select count(*), count(distinct user_id) from bayes.player_summary where user_id = any(%s)",
            (population.user_ids,),
        ).fetchone()
        assert mine == (POPULATION + RPC_PLAYERS,) * 2
        conn.rollback()


def test_the_view_columns_are_the_functions_and_columns_they_come_from(population, conn):
    mismatches = conn.execute(
        """
        select
            count(*),
            count(*) filter (where v.chapter is distinct from s.chapter),
            count(*) filter (where v.messages is distinct from (s.state ->> 'n')::bigint),
            count(*) filter (where v.composite is distinct from s.composite),
            count(*) filter (where v.composite_sd is distinct from bayes.composite_sd(s.state)),
            count(*) filter (where v.boss_threshold is distinct from cp.boss_threshold),
            count(*) filter (where v.readiness is distinct from bayes.readiness_probability(s.state)),
            count(*) filter (where v.mood is distinct from bayes.mood(s.state)),
            count(*) filter (where v.top_vice is distinct from bayes.top_vice(s.state)),
            count(*) filter (where v.fallback_reason is distinct from bayes.fallback_reason(s.state)),
            count(*) filter (where v.last_message_at is distinct from s.last_message_at),
            count(*) filter (where v.decayed_at is distinct from s.decayed_at),
            count(*) filter (where v.state_problem is distinct from bayes.state_problem(s.state)),
            count(*) filter (where v.state_problem is not null)
        from bayes.player_summary as v
        inner join public.user_bayesian_state as s on s.user_id = v.user_id
        inner join bayes.chapter_params as cp on cp.chapter = s.chapter
        where v.user_id = any(%s)
        """,
        (population.user_ids,),
    ).fetchone()
    assert mismatches == (POPULATION + RPC_PLAYERS,) + (0,) * 13


def test_the_view_agrees_with_the_independent_values(population, conn, rows):
    by_user = {row.user_id: row for row in rows}
    view = conn.execute(
        "select user_id, chapter, messages, composite, composite_sd, boss_threshold, readiness, mood, top_vice,"
        " fallback_reason from bayes.player_summary where user_id = any(%s)",
        (population.user_ids,),
    ).fetchall()
    assert len(view) == len(by_user)
    for user_id, chapter, messages, composite, sd, threshold, p, mood, vice, reason in view:
        row = by_user[user_id]
        want_composite, want_sd = moments(row.state)
        assert (chapter, messages) == (row.state["c"], row.state["n"])
        assert composite == pytest.approx(want_composite, rel=1e-13)
        assert sd == pytest.approx(want_sd, rel=1e-13)
        assert p == pytest.approx(edgeworth(row.state, threshold), rel=1e-9, abs=1e-12)
        assert (threshold, mood, vice, reason) == (row.threshold, row.mood, row.top_vice, row.fallback_reason)


def test_the_view_computes_only_the_columns_selected(conn):
    """What the document promises: unselected PL/Python columns cost nothing, and the filter comes first."""
    plan = "\n".join(
        r[0]
        for r in conn.execute(
            "explain (verbose, costs off) select user_id, composite from bayes.player_summary"
            " where chapter = 3 and composite > 70"
        ).fetchall()
    )
    assert "readiness_probability" not in plan and "fallback_reason" not in plan and "composite_sd" not in plan
    assert "(s.chapter = 3)" in plan
