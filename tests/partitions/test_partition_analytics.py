"""docs/analytics.md in the partitioned mode (issue 17): every query of the
document, run unchanged at the proxy of the partitioned test stack, gives
what it gives on a single node holding the same players, the same event
logs and the same parameters.

The world (a module fixture):

- 120 players driven through the proxy's RPCs (messages with explicit send
  times over the last 22 hours, some ten days back, chapters, and the LLM's
  answers, from a stand-in, vaderSentiment, for more than half of them),
  half of the players in mode bayes, with audits at a rate of 0.5
  (bayes.rollout and bayes.params set at the proxy and pushed to every
  partition), one of them with a corrupt state;
- 2,000 engine-made players (bayes_dev.players) made on the single node and
  copied to the partitions of their hashes;
- one bulk-decay run and one retention run on each partition (each has its
  own);
- the single node: a fresh cluster (pytest-postgresql), migrated, with the
  proxy's parameters, and a copy of every partition's rows (those of the
  other test modules too: the document's queries read whole tables).

The runs are compared with the partitions' own (each numbers its runs): a
row at the proxy is a partition's row, the counts per day are the sums of
the partitions'. The queries that read now() see the same rows on both
sides because no row's time lies within 20 minutes of a boundary they test
(such players, few and of other modules, are removed from both sides first),
and the partitions' decay and retention jobs, and the proxy's health
snapshot, are paused during the module.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import random
import time
import uuid
from decimal import Decimal

import numpy as np
import psycopg
import pytest
from bayes_dev import decay_runs, lifetime, players, retention_runs
from bayes_dev.analytics_doc import analyst_setup, doc_blocks
from bayes_dev.support import ROOT, bootstrap_and_migrate, create_database, cron_cluster
from psycopg import errors
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.e2e

QUERIES = doc_blocks("sql")
RPC_PLAYERS = 120
POPULATION = 2000
DECAY_RUN_INSTANT = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MARGIN = dt.timedelta(minutes=20)
STATE_COLUMNS = "user_id, state, version, last_message_at, decayed_at, created_at, updated_at, decay_due_at"
GATHERED = {
    "public.user_bayesian_state": False,
    "bayes.player_event": False,
    "bayes.event_result": False,
    "bayes.player_checkpoint": False,
    "bayes.decay_run": True,
    "bayes.decay_skipped": True,
    "bayes.retention_run": True,
    "bayes.retention_skipped": True,
}

single_proc = cron_cluster("partition_analytics")


def run_table_query(sql: str) -> bool:
    return "from bayes.decay_run" in sql or "from bayes.retention_run" in sql


# --------------------------------------------------------------------------
# The world
# --------------------------------------------------------------------------


@dataclasses.dataclass
class World:
    rpc_ids: list
    populated_ids: list
    corrupt_id: uuid.UUID
    removed: int


@pytest.fixture(scope="module")
def single(single_proc) -> str:
    url = create_database(single_proc, "partition_analytics")
    bootstrap_and_migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for job in ("bayes-run-decay", "bayes-run-retention", "bayes-record-health"):
            conn.execute("select cron.unschedule(%s)", (job,))
    return url


@pytest.fixture(scope="module")
def quiet_jobs(pstack):
    """The partitions' bulk decay and retention jobs paused (a run would rewrite rows between the copy and
    the queries), and the proxy's health snapshot (bayes-record-health, whose bayes.health reads the gathering
    views: slow with this module's players, and its reads would hold up the test that moves the proxy's
    tables); no run of theirs still going."""
    urls = [*pstack["PARTITIONS"], pstack["DB_URL"]]
    jobs = [("bayes-run-decay", "bayes-run-retention")] * len(pstack["PARTITIONS"]) + [("bayes-record-health",)]
    conns = [psycopg.connect(url, autocommit=True) for url in urls]
    paused = []
    try:
        for conn, names in zip(conns, jobs, strict=True):
            for (jobid,) in conn.execute(
                "select jobid from cron.job where jobname = any(%s) and active", (list(names),)
            ).fetchall():
                conn.execute("select cron.alter_job(%s, active => false)", (jobid,))
                paused.append((conn, jobid))
        for conn in conns:
            for _ in range(3000):
                (running,) = conn.execute(
                    "select count(*) from cron.job_run_details"
                    " where status in ('starting', 'running') and start_time > now() - interval '1 hour'"
                ).fetchone()
                if not running:
                    break
                time.sleep(0.1)
        yield
    finally:
        for conn, jobid in paused:
            conn.execute("select cron.alter_job(%s, active => true)", (jobid,))
        for conn in conns:
            conn.close()


def send_messages(proxy, user_ids: list) -> None:
    """RPC_PLAYERS players through the proxy's RPCs, as a backend (postgres: service_role on the partitions),
    appended to user_ids as they are made."""
    standin = lifetime.StandIn()
    rnd = random.Random(17)
    now = proxy.execute("select now()").fetchone()[0]
    for p in range(RPC_PLAYERS):
        # seeded: which players are in mode bayes and which messages they audit follow from their ids
        # (bayes.user_bucket, the seeded draws), so the pairs hold both samples on every run
        user_id = uuid.UUID(int=rnd.getrandbits(128), version=4)
        user_ids.append(user_id)
        if p % 4:
            proxy.execute("select public.bayes_advance_chapter(%s, %s)", (user_id, 1 + p % 5))
        # players 1, 11, 21, ... write past the cold start: in mode bayes, their audits are pairs too
        gaps = [rnd.choice((20.0, 90.0, 400.0, 3000.0)) for _ in range(25 if p % 10 == 1 else 3 + p % 8)]
        # p seconds apart: players p, p + 40 and p + 80 would otherwise write last at the same instant,
        # and a query's ORDER BY last_message_at ... LIMIT would cut their tie either way on each side
        t = now - dt.timedelta(minutes=2 + 30 * (p % 40), seconds=p)
        times = []
        for gap in reversed(gaps):
            times.append(t)
            t -= dt.timedelta(seconds=gap)
        times.reverse()
        if p % 10 == 9:  # an older start: ten days back
            times = [now - dt.timedelta(days=10, minutes=p), now - dt.timedelta(days=10, minutes=p - 50), *times]
            gaps = [None, 3000.0, *gaps]
        for i, (sent_at, gap) in enumerate(zip(times, gaps, strict=True)):
            text = rnd.choice(players.MESSAGES)
            proxy.execute(
                "select public.bayes_process_message(%s, %s, p_sent_at => %s, p_message_id => %s, p_reply_gap_s => %s)",
                (user_id, text, sent_at, f"pa-{i}", gap),
            )
            if p % 2 == 0 or p % 10 == 1:
                compound = standin.compound(text)
                mood = "defensive" if compound < -0.05 else "playful" if compound > 0.05 else "content"
                vices = ({"vulnerability": 1.0} if compound < 0 else {}) if p % 4 == 0 else None
                proxy.execute(
                    "select public.bayes_apply_llm_scores(%s, %s, %s, p_vices => %s, p_mood => %s)",
                    (
                        user_id,
                        Jsonb(lifetime.standin_deltas(compound)),
                        f"pa-{i}",
                        None if vices is None else Jsonb(vices),
                        mood,
                    ),
                )


def partition_of(conn, user_id, n: int) -> int:
    return conn.execute("select hashtext(%s::text) & %s", (str(user_id), n - 1)).fetchone()[0]


def copy_rows(src, dst, select_sql: str, params, table: str, columns: str) -> int:
    """The rows of select_sql on src appended to table on dst (COPY), as they are."""
    rows = src.execute(select_sql, params).fetchall()
    if rows:
        with dst.cursor().copy(f"copy {table} ({columns}) from stdin") as copy:
            for row in rows:
                copy.write_row(row)
    return len(rows)


def copy_populated_to_partitions(single_conn, parts, populated) -> None:
    n = len(parts)
    for i, part in enumerate(parts):
        with part.transaction():
            part.execute("set local bayes.state_writer = 'engine'")  # engine-made states, as populate writes them
            copy_rows(
                single_conn,
                part,
                f"select {STATE_COLUMNS.replace('state,', 'state::text,')} from public.user_bayesian_state"
                " where user_id = any(%s) and (hashtext(user_id::text) & %s) = %s",
                (populated, n - 1, i),
                "public.user_bayesian_state",
                STATE_COLUMNS,
            )


def copy_partitions_to_single(parts, single_conn, populated) -> None:
    """Every partition's player data but the players that came from the single node."""
    with single_conn.transaction():
        single_conn.execute("set local bayes.state_writer = 'engine'")  # a corrupt state is copied as it is
        for part in parts:
            ids = [
                r[0]
                for r in part.execute(
                    "select user_id from public.user_bayesian_state where user_id <> all(%s)", (populated,)
                )
            ]
            single_conn.execute(
                "insert into auth.users (id, email)"
                " select u, u::text || '@partition.test' from unnest(%s::uuid[]) as u",
                (ids,),
            )
            copy_rows(
                part,
                single_conn,
                f"select {STATE_COLUMNS.replace('state,', 'state::text,')} from public.user_bayesian_state"
                " where user_id = any(%s)",
                (ids,),
                "public.user_bayesian_state",
                STATE_COLUMNS,
            )
            for table in ("bayes.player_event", "bayes.event_result", "bayes.player_checkpoint"):
                columns = ", ".join(
                    r[0]
                    for r in part.execute(
                        "select attname from pg_attribute where attrelid = %s::regclass and attnum > 0"
                        " and not attisdropped order by attnum",
                        (table,),
                    )
                )
                casts = columns.replace("result", "result::text").replace("state,", "state::text,")
                copy_rows(part, single_conn, f"select {casts} from {table}", None, table, columns)


BOUNDARY_SQL = """
select s.user_id
from public.user_bayesian_state as s
where
    abs(extract(epoch from s.last_message_at - (now() - interval '1 day'))) < %(m)s
    or abs(extract(epoch from s.last_message_at - (now() - interval '7 days'))) < %(m)s
    or abs(extract(epoch from s.decay_due_at - now())) < %(m)s
union
select e.user_id
from bayes.player_event as e
where
    abs(extract(epoch from e.occurred_at - (now() - interval '1 day'))) < %(m)s
    or abs(extract(epoch from e.occurred_at - (now() - interval '14 days'))) < %(m)s
    or abs(extract(epoch from e.occurred_at - (now() - interval '8 weeks'))) < %(m)s
"""


def remove_boundary_players(single_conn, parts) -> int:
    """The players (of any module) whose rows a query of the document would count on one side and not on
    the other, were it run a few seconds later: removed from both sides."""
    ids = [r[0] for r in single_conn.execute(BOUNDARY_SQL, {"m": MARGIN.total_seconds()})]
    if ids:
        single_conn.execute("delete from auth.users where id = any(%s)", (ids,))
        for part in parts:
            part.execute("delete from public.user_bayesian_state where user_id = any(%s)", (ids,))
    return len(ids)


@pytest.fixture(scope="module")
def world(pstack, single, quiet_jobs):
    tag = f"pa-{uuid.uuid4().hex[:10]}"
    proxy = psycopg.connect(pstack["DB_URL"], autocommit=True)
    parts = [psycopg.connect(url, autocommit=True) for url in pstack["PARTITIONS"]]
    single_conn = psycopg.connect(single, autocommit=True)
    (rollout,) = proxy.execute("select bayes_percent from bayes.rollout").fetchone()
    (audit_rate,) = proxy.execute("select value from bayes.params where name = 'audit_rate'").fetchone()
    rpc_ids, populated = [], []
    # The players of the modules that ran before on this stack go: several of them share their last
    # message's instant, and a query's ORDER BY ... LIMIT would cut that tie either way on each side.
    for part in parts:
        part.execute("delete from public.user_bayesian_state")  # their events, results, checkpoints with them
    try:
        # half the players in mode bayes, and more audits: pushed to every partition at each commit
        proxy.execute("update bayes.rollout set bayes_percent = 50")
        proxy.execute("update bayes.params set value = '0.5' where name = 'audit_rate'")
        (document,) = proxy.execute("select bayes.params_document()").fetchone()
        single_conn.execute("select bayes.apply_params_document(%s)", (Jsonb(document),))
        players.populate(single_conn, POPULATION, time.time(), tag=tag, seed=5)
        populated = [r[0] for r in single_conn.execute("select id from auth.users where email like %s", (tag + "-%",))]
        copy_populated_to_partitions(single_conn, parts, populated)
        send_messages(proxy, rpc_ids)  # after the population: the document's "last ten messages" are theirs
        for part in parts:
            part.execute(decay_runs.decay_command(part, DECAY_RUN_INSTANT))  # a run that decays nobody
            part.execute(retention_runs.retention_command(part))
        corrupt_id = rpc_ids[3]
        owner = parts[partition_of(proxy, corrupt_id, len(parts))]
        with owner.transaction():
            owner.execute("set local bayes.state_writer = 'engine'")  # an operator's manual update
            owner.execute("update public.user_bayesian_state set state = state - 'h' where user_id = %s", (corrupt_id,))
        copy_partitions_to_single(parts, single_conn, populated)
        removed = remove_boundary_players(single_conn, parts)
        for conn in (single_conn, *parts):
            conn.execute("analyze public.user_bayesian_state")
        yield World(rpc_ids, populated, corrupt_id, removed)
    finally:
        for part in parts:
            part.execute("delete from public.user_bayesian_state where user_id = any(%s)", (rpc_ids + populated,))
        proxy.execute("update bayes.rollout set bayes_percent = %s", (rollout,))
        proxy.execute("update bayes.params set value = %s where name = 'audit_rate'", (Jsonb(audit_rate),))
        for conn in (proxy, single_conn, *parts):
            conn.close()


def test_both_sides_hold_the_same_players_and_logs(world, pstack, single):
    checks = [
        "select count(*), sum(hashtext(state::text)::bigint) from public.user_bayesian_state",
        "select count(*), sum(event_id) from bayes.player_event",
        "select count(*), sum(event_id) from bayes.event_result",
        "select count(*), count(state) from bayes.player_checkpoint",
        "select bayes.params_document()",
    ]
    with psycopg.connect(pstack["DB_URL"]) as proxy, psycopg.connect(single) as conn:
        for sql in checks:
            assert proxy.execute(sql).fetchone() == conn.execute(sql).fetchone(), sql
        (states,) = proxy.execute(
            "select count(*) from public.user_bayesian_state where user_id = any(%s)",
            (world.rpc_ids + world.populated_ids,),
        ).fetchone()
    assert RPC_PLAYERS + POPULATION - world.removed <= states <= RPC_PLAYERS + POPULATION
    assert world.removed < 100


# --------------------------------------------------------------------------
# Every query of the document
# --------------------------------------------------------------------------


def sort_key(row) -> tuple:
    return tuple((x is None, f"{x:.9g}" if isinstance(x, float) else str(x)) for x in row)


def assert_same_rows(got: list, want: list, sql: str) -> None:
    """The same rows (in any order: ties of an ORDER BY may come out either way), floats within 1e-9
    (a sum's rounding depends on the order of its terms)."""
    assert len(got) == len(want), sql
    for a, b in zip(sorted(got, key=sort_key), sorted(want, key=sort_key), strict=True):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                assert x == pytest.approx(y, rel=1e-9, abs=1e-12), sql
            else:
                assert x == y, (sql, a, b)


def run(dsn: str, sql: str, role: str | None = None, setup: str | None = None) -> list:
    with psycopg.connect(dsn) as conn:
        if setup:
            conn.execute(setup)
        if role:
            conn.execute(f"set local role {role}")
        rows = conn.execute(sql).fetchall()
        conn.rollback()
    return rows


def expected_runs(parts: list[str], sql: str) -> list:
    """What a query of the runs must show at the proxy, from the same query on each partition: the
    counts per day summed (the slowest run and the most skipped, the maxima), or the last runs of all."""
    per_partition = [run(url, sql) for url in parts]
    if "date_trunc('day', r.started_at)" in sql:
        days: dict = {}
        for rows in per_partition:
            for day, *figures in rows:
                # runs, done, failed, overlapped, interrupted, running; players_decayed; most_skipped, slowest
                acc = days.setdefault(day, [0] * 6 + [Decimal(0), None, None])
                for k in range(6):
                    acc[k] += figures[k]
                acc[6] += figures[6] or 0
                for k in (7, 8):
                    if figures[k] is not None:
                        acc[k] = figures[k] if acc[k] is None else max(acc[k], figures[k])
        return [(day, *days[day]) for day in sorted(days, reverse=True)[:14]]
    return [row for rows in per_partition for row in rows]


def assert_runs_of_the_partitions(got: list, parts: list[str], sql: str) -> None:
    """A query of the runs at the proxy shows what the partitions' runs must give."""
    want = expected_runs(parts, sql)
    assert got, "no run"
    if "date_trunc('day', r.started_at)" in sql:
        assert [tuple(r) for r in got] == [tuple(r) for r in want]
        return
    # the last 20 runs of all partitions: their run ids (each partition numbers its own; which of the runs
    # of the same number make the cut is arbitrary), each row a partition's row
    assert sorted((r[0] for r in got), reverse=True) == sorted((r[0] for r in want), reverse=True)[:20]
    for row in got:
        assert row in want


@pytest.mark.parametrize("sql", [q for _, q in QUERIES], ids=[i for i, _ in QUERIES])
def test_doc_query_at_the_proxy_is_the_single_nodes(world, pstack, single, sql):
    got = run(pstack["DB_URL"], sql)
    if run_table_query(sql):
        assert_runs_of_the_partitions(got, pstack["PARTITIONS"], sql)
    else:
        assert_same_rows(got, run(single, sql), sql)


@pytest.mark.parametrize("sql", [q for _, q in QUERIES], ids=[i for i, _ in QUERIES])
def test_doc_query_as_service_role_and_as_the_documented_analyst(world, pstack, sql):
    role = f"analyst_{uuid.uuid4().hex[:8]}"
    as_service_role = run(pstack["DB_URL"], sql, role="service_role")
    as_analyst = run(pstack["DB_URL"], sql, role=role, setup=analyst_setup(role))
    if run_table_query(sql):
        assert_runs_of_the_partitions(as_service_role, pstack["PARTITIONS"], sql)
        assert_runs_of_the_partitions(as_analyst, pstack["PARTITIONS"], sql)
    else:
        as_postgres = run(pstack["DB_URL"], sql)
        assert_same_rows(as_service_role, as_postgres, sql)
        assert_same_rows(as_analyst, as_postgres, sql)


def test_most_queries_return_rows(world, pstack):
    """Equal results are only worth as much as the data they cover."""
    empty = [block_id for block_id, sql in QUERIES if not run(pstack["DB_URL"], sql)]
    assert empty == [], empty


def test_without_bypassrls_the_analyst_sees_no_player_at_the_proxy(world, pstack):
    role = f"analyst_{uuid.uuid4().hex[:8]}"
    setup = analyst_setup(role, bypassrls=False)
    for table in ("public.user_bayesian_state", "bayes.player_summary", "bayes.player_event", "bayes.decay_run"):
        assert run(pstack["DB_URL"], f"select count(*) from {table}", role=role, setup=setup) == [(0,)]
    assert run(pstack["DB_URL"], "select count(*) from bayes.shadow_pairs()", role=role, setup=setup) == [(0,)]


def test_the_grant_on_the_view_alone_is_not_enough_at_the_proxy(world, pstack):
    role = f"viewer_{uuid.uuid4().hex[:8]}"
    setup = f"create role {role} bypassrls; grant usage on schema bayes to {role};"
    setup += f" grant select on bayes.player_summary to {role}"
    with pytest.raises(errors.InsufficientPrivilege):
        run(pstack["DB_URL"], "select user_id, composite from bayes.player_summary limit 1", role=role, setup=setup)


def test_percentiles_are_those_of_all_players_not_an_average_of_the_partitions(world, pstack):
    """The composite's median and 90th percentile per chapter at the proxy, against numpy over the raw
    rows read from each partition directly; the mean of the partitions' own medians is another number."""
    (_, sql), *_ = [(i, q) for i, q in QUERIES if "percentile_cont(0.50)" in q]
    got = {row[0]: row for row in run(pstack["DB_URL"], sql)}
    raw: dict = {}
    medians: dict = {}
    for url in pstack["PARTITIONS"]:
        for chapter, composites in run(
            url, "select chapter, array_agg(composite) from public.user_bayesian_state group by chapter"
        ):
            composites = [c for c in composites if c is not None]
            raw.setdefault(chapter, []).extend(composites)
            medians.setdefault(chapter, []).append(float(np.median(composites)))
    differs = 0
    for chapter, values in raw.items():
        row = got[chapter]
        assert row[1] == len(values)
        assert float(row[2]) == pytest.approx(round(float(np.mean(values)), 1), abs=0.051)
        assert float(row[7]) == pytest.approx(round(float(np.percentile(values, 50)), 1), abs=0.051)
        assert float(row[9]) == pytest.approx(round(float(np.percentile(values, 90)), 1), abs=0.051)
        differs += abs(float(np.mean(medians[chapter])) - float(np.percentile(values, 50))) > 0.05
    assert differs > 0


PROXY_QUERIES = doc_blocks("sql proxy")


def test_the_documents_queries_of_the_partitioned_mode(world, pstack, partition_dbs):
    """The `sql proxy` blocks of the section on the partitioned mode, at the proxy: the runs per partition
    are each partition's own, the partition of a player is where he lives, and the drift is empty."""
    assert len(PROXY_QUERIES) == 3
    (_, runs), (_, where), (_, drift) = PROXY_QUERIES
    got = run(pstack["DB_URL"], runs)
    assert [r[0] for r in got] == list(range(len(partition_dbs)))
    for partition, count, *_ in got:
        (want,) = (
            partition_dbs[partition]
            .execute("select count(*) from bayes.decay_run where started_at >= now() - interval '1 day'")
            .fetchone()
        )
        assert count == want
    located = run(pstack["DB_URL"], where)
    assert len(located) == 5
    for user_id, partition in located:
        assert (
            partition_dbs[partition]
            .execute("select 1 from public.user_bayesian_state where user_id = %s", (user_id,))
            .fetchone()
        )
    assert run(pstack["DB_URL"], drift) == []


# --------------------------------------------------------------------------
# The shadow analyses
# --------------------------------------------------------------------------


def test_shadow_pairs_are_the_union_of_the_partitions_pairs(world, pstack, single):
    sql = "select * from bayes.shadow_pairs(now() - interval '14 days', now())"
    got = run(pstack["DB_URL"], sql)
    assert_same_rows(got, run(single, sql), sql)
    assert {r[3] for r in got} == {"shadow", "audit"}
    assert len(got) == sum(len(run(url, sql)) for url in pstack["PARTITIONS"])


@pytest.mark.parametrize(
    "overrides", [{}, {"audit_rate": 0.2}, {"cold_start_messages": 3, "uncertain_margin": 0.2}], ids=str
)
def test_evaluate_policy_adds_up_the_partitions_replays(world, pstack, single, overrides):
    sql = "select bayes.evaluate_policy(%s, null, now() - interval '14 days', now())"
    with psycopg.connect(pstack["DB_URL"]) as proxy, psycopg.connect(single) as conn:
        got = proxy.execute(sql, (Jsonb(overrides),)).fetchone()[0]
        want = conn.execute(sql, (Jsonb(overrides),)).fetchone()[0]
    assert got["players"] > 40 and got["fidelity"]["compared"] > 0
    approx = {"composite_mad", "p_ready_mad"}
    for key in want:
        if key == "fidelity":
            for k, v in want[key].items():
                assert got[key][k] == (pytest.approx(v, rel=1e-12) if k in approx else v), k
        else:
            assert got[key] == want[key], key


def test_evaluate_policy_of_some_players_and_its_errors(world, pstack, single):
    some = world.rpc_ids[:30]
    sql = "select bayes.evaluate_policy('{}', %s)"
    with psycopg.connect(pstack["DB_URL"]) as proxy, psycopg.connect(single) as conn:
        got = proxy.execute(sql, (some,)).fetchone()[0]
        want = conn.execute(sql, (some,)).fetchone()[0]
        assert {k: v for k, v in got.items() if k != "fidelity"} == {k: v for k, v in want.items() if k != "fidelity"}
        for bad in ({"no_such_parameter": 1}, {"audit_rate": 7}, [1, 2]):
            with pytest.raises(psycopg.Error) as on_proxy:
                proxy.execute("select bayes.evaluate_policy(%s)", (Jsonb(bad),))
            proxy.rollback()
            with pytest.raises(psycopg.Error) as on_single:
                conn.execute("select bayes.evaluate_policy(%s)", (Jsonb(bad),))
            conn.rollback()
            assert on_proxy.value.sqlstate == on_single.value.sqlstate == "22023"
            assert on_proxy.value.diag.message_primary == on_single.value.diag.message_primary


# --------------------------------------------------------------------------
# Who reads what
# --------------------------------------------------------------------------


def columns_of(conn, relation: str) -> list:
    return conn.execute(
        "select attname, format_type(atttypid, atttypmod) from pg_attribute"
        " where attrelid = %s::regclass and attnum > 0 and not attisdropped order by attnum",
        (relation,),
    ).fetchall()


def select_grantees(conn, relation: str) -> set:
    return {
        r[0]
        for r in conn.execute(
            "select a.grantee::regrole::text from pg_class as c, aclexplode(c.relacl) as a"
            " where c.oid = %s::regclass and a.privilege_type = 'SELECT' and a.grantee <> c.relowner",
            (relation,),
        )
    }


def test_the_views_have_the_tables_columns_and_grants(pstack, proxy_db, partition_dbs):
    part = partition_dbs[0]
    for relation, per_partition in GATHERED.items():
        kind, options = proxy_db.execute(
            "select relkind, reloptions from pg_class where oid = %s::regclass", (relation,)
        ).fetchone()
        assert kind == "v" and options == ["security_invoker=true"], relation
        want = columns_of(part, relation) + ([("partition", "integer")] if per_partition else [])
        assert columns_of(proxy_db, relation) == want, relation
        assert select_grantees(proxy_db, relation) == select_grantees(part, relation), relation
        assert (
            proxy_db.execute("select relkind from pg_class where oid = %s::regclass", (relation,)).fetchone()[0] == "v"
        )
    assert columns_of(proxy_db, "bayes.player_summary") == columns_of(part, "bayes.player_summary")
    assert select_grantees(proxy_db, "bayes.player_summary") == select_grantees(part, "bayes.player_summary")


def test_each_partition_runs_its_own_jobs_and_the_proxy_none(proxy_db, partition_dbs):
    jobs = "select jobname from cron.job where jobname in ('bayes-run-decay', 'bayes-run-retention') order by 1"
    assert proxy_db.execute(jobs).fetchall() == []
    for part in partition_dbs:
        assert part.execute(jobs).fetchall() == [("bayes-run-decay",), ("bayes-run-retention",)]


def test_a_player_reads_his_own_row_only_through_the_api(world, pstack, pplayer_client, panon, pservice):
    user_id = world.rpc_ids[0]
    player = pplayer_client(user_id)
    rows = player.table("user_bayesian_state").select("user_id, chapter").execute().data
    assert rows == [{"user_id": str(user_id), "chapter": 1}]
    stranger = pplayer_client(uuid.uuid4())
    assert stranger.table("user_bayesian_state").select("user_id").execute().data == []
    with pytest.raises(Exception) as refused:
        panon.table("user_bayesian_state").select("user_id").execute()
    assert panon.status == 401 and "42501" in str(refused.value)
    some = [str(u) for u in world.rpc_ids[:5]]
    rows = pservice.table("user_bayesian_state").select("user_id").in_("user_id", some).execute().data
    assert sorted(r["user_id"] for r in rows) == sorted(some)


def test_as_a_player_in_sql_the_view_gives_his_row_and_the_others_are_refused(world, pstack):
    user_id = world.rpc_ids[1]
    claims = json.dumps({"role": "authenticated", "sub": str(user_id)})
    with psycopg.connect(pstack["DB_URL"]) as conn:
        conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
        conn.execute("set local role authenticated")
        assert conn.execute("select user_id from public.user_bayesian_state").fetchall() == [(user_id,)]
        for relation in ("bayes.player_event", "bayes.decay_run"):
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(f"select count(*) from {relation}")
        conn.rollback()
        conn.execute("set local role anon")
        with pytest.raises(errors.InsufficientPrivilege):  # the reader itself checks the caller, too
            conn.execute("select count(*) from bayes_remote.read_user_bayesian_state()")


def test_a_direct_call_of_a_reader_gives_nothing_the_view_does_not(world, pstack):
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pstack["DB_URL"]) as conn:
        conn.execute(f"create role {role} bypassrls")
        conn.execute(f"grant usage on schema bayes_remote to {role}")
        conn.execute(f"set local role {role}")
        with pytest.raises(errors.InsufficientPrivilege, match="permission denied for table player_event"):
            conn.execute("select count(*) from bayes_remote.read_player_event()")
        conn.rollback()


def test_the_tables_go_home_for_migrations_and_the_views_come_back(world, pstack):
    """What scripts/stack does around pending migrations, in one transaction rolled back: the proxy's own
    tables at home (a functions migration's trigger on one works), then sql/proxy serves the views again."""
    sql = "select count(*), sum(composite) from bayes.player_summary where chapter = 3"
    with psycopg.connect(pstack["DB_URL"]) as conn:
        served = conn.execute(sql).fetchone()
        conn.execute("select bayes_remote.unshelve_tables()")
        kinds = conn.execute(
            "select relkind, count(*) from pg_class where oid = any(%s::regclass[]) group by 1", (list(GATHERED),)
        ).fetchall()
        assert kinds == [("r", len(GATHERED))]
        assert conn.execute(sql).fetchone() == (0, None)  # the view reads the proxy's own, empty, table
        conn.execute(
            "create or replace trigger user_bayesian_state_valid before insert or update of state"
            " on public.user_bayesian_state for each row execute function bayes.refuse_invalid_state()"
        )
        assert conn.execute("select bayes_remote.serving()").fetchone() == (False,)
        for name in ("20_shelf.sql", "21_gather.sql", "22_views.sql", "25_shadow.sql"):
            conn.execute((ROOT / "sql" / "proxy" / name).read_text())
        assert conn.execute("select bayes_remote.serving()").fetchone() == (True,)
        assert conn.execute(sql).fetchone() == served
        conn.rollback()


# --------------------------------------------------------------------------
# The parameters
# --------------------------------------------------------------------------


def one_player_per_partition(conn, n: int) -> list:
    found: dict = {}
    while len(found) < n:
        user_id = uuid.uuid4()
        found.setdefault(partition_of(conn, user_id, n), user_id)
    return [found[i] for i in range(n)]


@pytest.fixture
def new_players(partition_dbs):
    """Players a test makes through the proxy, deleted from the partitions after it."""
    made: list = []
    yield made
    for part in partition_dbs:
        part.execute("delete from public.user_bayesian_state where user_id = any(%s)", (made,))


def threshold_of(conn, user_id) -> float:
    """The boss threshold in the result of a new message of the player."""
    (result,) = conn.execute("select public.bayes_process_message(%s, 'hello there')", (user_id,)).fetchone()
    return result["boss"]["threshold"]


def test_an_update_at_the_proxy_changes_the_next_message_on_every_partition(proxy_db, partition_dbs, new_players):
    n = len(partition_dbs)
    assert proxy_db.execute("select * from bayes.params_drift()").fetchall() == []
    (before,) = proxy_db.execute("select boss_threshold from bayes.chapter_params where chapter = 1").fetchone()
    try:
        proxy_db.execute("update bayes.chapter_params set boss_threshold = 52.5 where chapter = 1")
        for part in partition_dbs:
            assert part.execute("select boss_threshold from bayes.chapter_params where chapter = 1").fetchone() == (
                52.5,
            )
        for user_id in one_player_per_partition(proxy_db, n):
            new_players.append(user_id)
            assert threshold_of(proxy_db, user_id) == 52.5
        assert proxy_db.execute("select * from bayes.params_drift()").fetchall() == []
    finally:
        proxy_db.execute("update bayes.chapter_params set boss_threshold = %s where chapter = 1", (before,))
    for user_id in one_player_per_partition(proxy_db, n):
        new_players.append(user_id)
        assert threshold_of(proxy_db, user_id) == before


def test_a_transaction_pushes_at_commit_and_a_rollback_pushes_nothing(pstack, proxy_db, partition_dbs):
    names = ("ready_probability", "audit_rate")
    sql = "select name, value from bayes.params where name = any(%s) order by name"
    before = proxy_db.execute(sql, (list(names),)).fetchall()
    with psycopg.connect(pstack["DB_URL"]) as conn:
        conn.execute("update bayes.params set value = '0.81' where name = 'ready_probability'")
        conn.execute("update bayes.params set value = '0.07' where name = 'audit_rate'")
        for part in partition_dbs:  # not yet: at commit
            assert part.execute(sql, (list(names),)).fetchall() == before
        conn.rollback()
    for part in partition_dbs:
        assert part.execute(sql, (list(names),)).fetchall() == before
    try:
        with psycopg.connect(pstack["DB_URL"]) as conn:
            conn.execute("update bayes.params set value = '0.81' where name = 'ready_probability'")
            conn.execute("update bayes.params set value = '0.07' where name = 'audit_rate'")
            conn.commit()
        for part in partition_dbs:
            assert dict(part.execute(sql, (list(names),)).fetchall()) == {"audit_rate": 0.07, "ready_probability": 0.81}
    finally:
        for name, value in before:
            proxy_db.execute("update bayes.params set value = %s where name = %s", (Jsonb(value), name))
    assert proxy_db.execute("select * from bayes.params_drift()").fetchall() == []


@pytest.mark.parametrize(
    "update",
    [
        "update bayes.params set value = '\"high\"' where name = 'ready_probability'",
        "update bayes.params set value = '1.5' where name = 'audit_rate'",
        "delete from bayes.params where name = 'cold_start_messages'",
        "update bayes.chapter_params set boss_threshold = 101 where chapter = 2",
        "update bayes.chapter_params set prior_trust_alpha = -1 where chapter = 2",
        "update bayes.rollout set bayes_percent = 100.5",
    ],
)
def test_an_invalid_parameter_is_refused_at_the_proxy_as_on_a_single_node(pstack, single, partition_dbs, update):
    with psycopg.connect(single) as conn, pytest.raises(psycopg.Error) as on_single:
        conn.execute(update)
    documents = [part.execute("select bayes.params_document()").fetchone() for part in partition_dbs]
    with psycopg.connect(pstack["DB_URL"]) as conn, pytest.raises(psycopg.Error) as on_proxy:
        conn.execute(update)
        conn.commit()
    assert on_proxy.value.sqlstate == on_single.value.sqlstate
    assert on_proxy.value.diag.message_primary == on_single.value.diag.message_primary
    assert [part.execute("select bayes.params_document()").fetchone() for part in partition_dbs] == documents


def test_a_partition_that_refuses_a_push_fails_the_commit_and_the_drift_shows_it(proxy_db, partition_dbs):
    """Not atomic, as documented: each partition commits the push on its own."""
    n = len(partition_dbs)
    refusing = partition_dbs[n - 1]
    refusing.execute(
        "alter table bayes.chapter_params add constraint test_refuses_51 check (boss_threshold <> 51) not valid"
    )
    try:
        with pytest.raises(errors.CheckViolation) as refused:
            proxy_db.execute("update bayes.chapter_params set boss_threshold = 51 where chapter = 1")
        assert "bayes_remote.set_params" in refused.value.diag.message_primary
        assert "bayes.params_drift()" in refused.value.diag.message_hint
        assert proxy_db.execute("select boss_threshold from bayes.chapter_params where chapter = 1").fetchone() == (
            55.0,
        )
        drift = proxy_db.execute("select * from bayes.params_drift()").fetchall()
        for partition, item, proxy_value, partition_value in drift:
            assert partition != n - 1
            assert (item, proxy_value, partition_value) == ("chapter_params.1.boss_threshold", 55, 51)
    finally:
        refusing.execute("alter table bayes.chapter_params drop constraint test_refuses_51")
    pushed = proxy_db.execute("select * from bayes.push_params()").fetchall()
    assert [p for p, _ in pushed] == list(range(n))
    assert proxy_db.execute("select * from bayes.params_drift()").fetchall() == []
    for part in partition_dbs:
        assert part.execute("select boss_threshold from bayes.chapter_params where chapter = 1").fetchone() == (55.0,)


def test_the_drift_names_what_differs_and_a_push_ends_it(proxy_db, partition_dbs):
    part = partition_dbs[1]
    part.execute("update bayes.params set value = '0.11' where name = 'audit_rate'")
    part.execute("update bayes.rollout set bayes_percent = 12.5")
    try:
        drift = proxy_db.execute("select partition, item, partition_value from bayes.params_drift()").fetchall()
        assert drift == [(1, "params.audit_rate", 0.11), (1, "rollout.bayes_percent", 12.5)]
    finally:
        pushed = dict(proxy_db.execute("select * from bayes.push_params()").fetchall())
    assert pushed[1] == ["params", "rollout"] and pushed[0] == []
    assert proxy_db.execute("select * from bayes.params_drift()").fetchall() == []


def test_only_the_owner_pushes_and_reads_the_drift(pstack):
    with psycopg.connect(pstack["DB_URL"]) as conn:
        conn.execute("set local role service_role")
        for sql in ("select * from bayes.push_params()", "select * from bayes.params_drift()"):
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(sql)
