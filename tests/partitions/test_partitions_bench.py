"""The partitioned mode's benchmark (scripts/bench --only partitions, issue 17) at a tiny size against
the two test stacks: the single node and the partitioned one. Its figures must come from real calls:
every message it says it sent is an event on the right node, every side of every step has its
samples, its players are on the partitions PL/Proxy routes them to, and it leaves neither its schema
nor paused pg_cron jobs behind."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import sys

import psycopg
import pytest
from bayes_dev.support import ROOT, stack_env

pytestmark = pytest.mark.e2e

CALLS = 20
BLOCK = 10
CLIENTS = (1, 2)
FRESH = 2


def section():
    """scripts/bench_partitions.py (scripts/ is not a package), registered as a module: its dataclasses
    need to find it in sys.modules."""
    name = "bench_partitions"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / "bench_partitions.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def jobs(dsn: str) -> list[tuple[str, bool]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("select jobname, active from cron.job order by jobname").fetchall()


@pytest.fixture(scope="module")
def measured(pstack):
    bench = section()
    single = stack_env()
    nodes = [single["DB_URL"], pstack["DB_URL"], *pstack["PARTITIONS"]]
    before = {dsn: jobs(dsn) for dsn in nodes}
    args = argparse.Namespace(
        partitions_calls=CALLS,
        partitions_block=BLOCK,
        partitions_seconds=0.3,
        partitions_rounds=1,
        partitions_clients=",".join(map(str, CLIENTS)),
        partitions_api=True,
        partitions_fresh=FRESH,
    )
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = bench.measure(single, pstack, args)
    return bench, single, result, before, out.getvalue()


def test_every_side_was_measured(measured):
    bench, _, result, _, printed = measured
    assert set(result.latency) == set(bench.RPCS)
    for steps in result.latency.values():
        assert set(steps) == set(bench.STEPS)
        assert all(len(samples) == CALLS and min(samples) > 0 for samples in steps.values())
    assert set(result.hop) == {
        "noop_direct",
        "noop_proxy",
        "noop_fixed",
        "noop_pinned",
        "payload_direct",
        "payload_proxy",
    }
    assert all(len(samples) == CALLS and min(samples) > 0 for samples in result.hop.values())
    kinds = {"single", "direct", "proxy", "single_api", "proxy_api"}
    assert set(result.throughput) == {(kind, count) for kind in kinds for count in CLIENTS}
    assert all(rate > 0 for rate in result.throughput.values())
    assert set(result.first) == {"login", "single", "direct", "proxy", "proxy_second", "proxy_warm"}
    assert all(len(ms) == FRESH and min(ms) > 0 for ms in result.first.values())
    for node in ("single node", "proxy", "partition 0", "partition 3"):
        assert result.settings[node]["synchronous_commit"] in ("on", "off", "local", "remote_write", "remote_apply")

    (target,) = bench.targets(result)
    label, value, ok = target
    assert "bayes_process_message" in label and "synchronous_commit" in label
    ratio = float(value.split()[0])
    assert ratio == pytest.approx(
        bench.statistics.median(result.latency["bayes_process_message"]["proxy"])
        / bench.statistics.median(result.latency["bayes_process_message"]["direct"]),
        abs=0.005,
    )
    assert ok == (ratio <= 1.3 and {s["synchronous_commit"] for s in result.settings.values()} == {"on"})

    # the report: each RPC's steps, the bare hop, the throughput table with its ratios
    for rpc in bench.RPCS:
        assert f"proxy: public.{rpc} at the proxy" in printed
    assert f"proxy / direct: p50 {ratio:.2f} x" in printed
    assert "a PL/Proxy call adds" in printed
    for count in CLIENTS:
        single_sql = result.throughput[("single", count)]
        proxy_sql = result.throughput[("proxy", count)]
        assert f"SQL {proxy_sql / single_sql:.2f}" in printed


def test_the_players_are_where_pl_proxy_routes_them(measured, pstack, proxy_db, partition_dbs):
    result = measured[2]
    n = len(partition_dbs)
    assert set(result.part_of.values()) == set(range(n))
    ids = [str(p) for p in result.players]
    routed = dict(
        proxy_db.execute("select u::uuid, hashtext(u) & %s from unnest(%s::text[]) as u", (n - 1, ids)).fetchall()
    )
    assert routed == result.part_of
    for i, conn in enumerate(partition_dbs):
        here = {
            row[0]
            for row in conn.execute(
                "select user_id from public.user_bayesian_state where user_id = any(%s)", (result.players,)
            )
        }
        assert here == {p for p, part in result.part_of.items() if part == i}


def test_every_message_it_counts_is_an_event(measured, partition_dbs):
    _, single, result, _, _ = measured
    on_partitions = sum(
        conn.execute(
            "select count(*) from bayes.player_event where kind = 'message' and user_id = any(%s)", (result.players,)
        ).fetchone()[0]
        for conn in partition_dbs
    )
    assert on_partitions == result.messages["proxy"]
    with psycopg.connect(single["DB_URL"], autocommit=True) as conn:
        (on_single,) = conn.execute(
            "select count(*) from bayes.player_event where kind = 'message' and user_id = any(%s)",
            (result.single_players,),
        ).fetchone()
    assert on_single == result.messages["single"]
    # at least the timed calls of the six sides of bayes_process_message (each a write)
    assert result.messages["proxy"] > 6 * CALLS


def test_it_leaves_nothing_behind(measured, pstack):
    bench, _, _, before, _ = measured
    for dsn, was in before.items():
        assert jobs(dsn) == was
        with psycopg.connect(dsn, autocommit=True) as conn:
            assert conn.execute("select to_regnamespace(%s)", (bench.SCHEMA,)).fetchone()[0] is None


def test_a_wrapper_it_cannot_cut_stops_it():
    bench = section()
    with pytest.raises(RuntimeError, match="caller_role"):
        bench.cut_wrapper(
            "CREATE OR REPLACE FUNCTION public.bayes_get_state(p_user_id uuid)\n$function$\nbegin\nend\n$function$",
            "bayes_get_state",
            "inline_role",
        )
