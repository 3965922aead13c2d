"""The health signals of the partitioned mode (issue 17): the proxy's bayes.health gathers its parts from every
partition with one RUN ON ALL and combines them (sql/proxy/31_health.sql).

Real traffic goes through the proxy's RPCs to the 4 partitions of the partitioned test stack (shadow and bayes
players, the LLM's answers, players who wrote days and months ago). Then every signal of the proxy's bayes.health,
for both windows and for windows asked for, is checked against its computation in Python from the raw rows read
from every partition (the events, the states, the retention runs, the relation sizes): counts and ratios from
counts, numpy's linear percentiles of the union of the partitions' messages, the mean of every player's posterior
variance, the newest pairs of all partitions. The percentiles are also checked equal, to the bit, to PostgreSQL's
percentile_cont over the union, and shown NOT equal to the average of the partitions' percentiles (nor the ratios
to the average of their ratios), so an averaging proxy fails. A single node (a cluster of its own, the same
migrations) given every partition's rows in one log computes the same signals.

The snapshots, bayes.alerts() and GET /rest/v1/rpc/bayes_metrics through the proxy's gateway (parsed with
prometheus_client) serve the combined view. A partition stopped (on a stack of this module's own, 2 partitions)
makes bayes.health raise 08006 naming it, and the snapshot job record partition_up 0 for it (critical, in the
alerts and the metrics), until it is back.

The partitions' decay and retention jobs are paused while this module runs (they rewrite states and delete
events between the two readings a comparison makes), and the parameters it changes on the partitions are put
back at the end.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
from bayes_dev.prometheus import (
    HEALTH_SQL,
    PROMETHEUS_2_ACCEPT,
    SNAPSHOT_SQL,
    THRESHOLD_SQL,
    assert_exposition_is,
)
from bayes_dev.support import Client, bootstrap_and_migrate, create_database, cron_cluster
from bayes_engine import eventlog
from psycopg import errors
from psycopg.types.json import Jsonb
from scipy import stats

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
METRICS = ("intimacy", "passion", "trust", "secureness")
METRIC_KEYS = ("i", "p", "t", "s")
FEATURE_TEXTS = (
    "I think you are amazing and kind, thank you for listening. What do you dream about?",
    "whatever, this is boring",
    "stop it. I hate when you do that, it is annoying",
    "ok",
    "I feel like I can be honest with you. I have a secret I never told anyone, it is about my family.",
)
NO_SIGNAL_TEXTS = (
    "The train leaves the station at noon on most days",
    "haha that is so funny 😂 you always make me laugh",
)
# What the traffic changes on every partition, put back after the module.
PARTITION_SETTINGS = (
    ("select value::text from bayes.params where name = 'audit_rate'", "audit_rate", "1"),
    ("select value::text from bayes.params where name = 'max_message_age_h'", "max_message_age_h", "87600"),
)
PAUSED_JOBS = ("bayes-run-decay", "bayes-run-retention")
SINGLE_NODE_DB = "bayes_single"

single_proc = cron_cluster(SINGLE_NODE_DB)


# ---------------------------------------------------------------------------
# The partitions held still, and the traffic
# ---------------------------------------------------------------------------


def wait_for_cron(conn) -> None:
    deadline = time.monotonic() + 120
    while conn.execute("select count(*) from cron.job_run_details where status in ('starting', 'running')").fetchone()[
        0
    ]:
        assert time.monotonic() < deadline, "a pg_cron run did not finish"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def still_partitions(pstack):
    """Every partition with its decay and retention jobs paused (no run under way), its parameters and rollout
    kept to be put back."""
    conns = [psycopg.connect(url, autocommit=True) for url in pstack["PARTITIONS"]]
    saved = []
    try:
        for conn in conns:
            conn.execute(
                "select cron.alter_job(jobid, active => false) from cron.job where jobname = any(%s)",
                (list(PAUSED_JOBS),),
            )
            wait_for_cron(conn)
            saved.append(
                (
                    conn.execute("select bayes_percent from bayes.rollout").fetchone()[0],
                    [conn.execute(sql).fetchone()[0] for sql, _, _ in PARTITION_SETTINGS],
                )
            )
        yield conns
    finally:
        for conn, (percent, values) in zip(conns, saved, strict=False):
            conn.execute("update bayes.rollout set bayes_percent = %s", (percent,))
            for (_, name, _), value in zip(PARTITION_SETTINGS, values, strict=True):
                conn.execute("update bayes.params set value = %s::jsonb where name = %s", (value, name))
            conn.execute(
                "select cron.alter_job(jobid, active => true) from cron.job where jobname = any(%s)",
                (list(PAUSED_JOBS),),
            )
        for conn in conns:
            conn.close()


def rollout_bucket(user_id: uuid.UUID) -> int:
    """bayes.user_bucket(user_id, 'rollout'), computed here (sql/functions/22_rollout.sql)."""
    return int(hashlib.md5(f"rollout:{user_id}".encode()).hexdigest()[:8], 16) % 10000


def player_of(proxy, partition: int, mode: str, count: int) -> uuid.UUID:
    """A new player of partition `partition` (of `count`) whose mode at bayes_percent 50 is `mode`."""
    while True:
        user_id = uuid.uuid4()
        if (rollout_bucket(user_id) < 5000) != (mode == "bayes"):
            continue
        (part,) = proxy.execute("select hashtext(%s::text) & %s", (str(user_id), count - 1)).fetchone()
        if part == partition:
            return user_id


class Traffic:
    """What went through the proxy: results, and which player lives where."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.results: list[dict] = []
        self._count = 0

    def send(self, user_id, text: str, sent_at=None) -> dict:
        self._count += 1
        (result,) = self.proxy.execute(
            "select public.bayes_process_message(%s, %s, p_sent_at => coalesce(%s, now()), p_message_id => %s)",
            (user_id, text, sent_at, f"health-{self._count}"),
        ).fetchone()
        self.results.append(result)
        return result

    def answer(self, user_id, message_id: str, deltas: dict) -> None:
        self.proxy.execute("select public.bayes_apply_llm_scores(%s, %s, %s)", (user_id, Jsonb(deltas), message_id))


def llm_deltas(rnd: random.Random) -> dict:
    return {name: rnd.choice((-6, -2, 0, 3, 8)) for name in METRICS if rnd.random() < 0.8}


@pytest.fixture(scope="module")
def traffic(pstack, still_partitions) -> Traffic:
    """Committed traffic through the proxy on every partition, unevenly: partition i's 4 players (2 shadow, whose
    every message the LLM answers, and 2 bayes with every rule audited, whose granted messages it answers) send
    8 + 8 i messages each; a player sent messages dated 100 days ago (written now) and one 3 days ago (overdue for
    the bulk decay on his partition, the others' lag 0)."""
    rnd = random.Random(17)
    n = len(still_partitions)
    for conn in still_partitions:
        conn.execute("update bayes.rollout set bayes_percent = 50")
        for _, name, value in PARTITION_SETTINGS:
            conn.execute("update bayes.params set value = %s::jsonb where name = %s", (value, name))
    with psycopg.connect(pstack["DB_URL"], autocommit=True) as proxy:
        traffic = Traffic(proxy)
        now = proxy.execute("select now()").fetchone()[0]
        ancient = player_of(proxy, 1, "shadow", n)
        for k in range(3):
            traffic.send(ancient, FEATURE_TEXTS[k], now - dt.timedelta(days=100, hours=-k))
        absent = player_of(proxy, 2, "bayes", n)
        for k in range(12):
            traffic.send(absent, FEATURE_TEXTS[k % len(FEATURE_TEXTS)], now - dt.timedelta(days=3, hours=12 - k))
        players = {
            (partition, mode, j): player_of(proxy, partition, mode, n)
            for partition in range(n)
            for mode in ("shadow", "bayes")
            for j in range(2)
        }
        texts = FEATURE_TEXTS + NO_SIGNAL_TEXTS
        for k in range(8 + 8 * (n - 1)):
            for (partition, mode, _), user_id in players.items():
                if k >= 8 + 8 * partition:
                    continue
                result = traffic.send(user_id, texts[rnd.randrange(len(texts))])
                assert result["mode"] == mode
                if mode == "shadow" or result["fallback"]["needed"]:
                    traffic.answer(user_id, result["message_id"], llm_deltas(rnd))
    reasons = {(r["fallback"]["reason"], r["fallback"]["needed"]) for r in traffic.results if r["mode"] == "bayes"}
    assert {("audit", True), ("no_signals", False), ("cold_start", True)} <= reasons
    return traffic


# ---------------------------------------------------------------------------
# The computation in Python, from the raw rows of every partition
# ---------------------------------------------------------------------------


def dict_rows(cur) -> list[dict]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def rows_by_key(rows) -> dict:
    return {(r["signal"], r["window_s"], r["label"]): r for r in rows}


def health_now(proxy, windows=None) -> tuple[dt.datetime, dict]:
    """The proxy's bayes.health() and now() of one transaction."""
    with proxy.transaction():
        now = proxy.execute("select now()").fetchone()[0]
        return now, rows_by_key(dict_rows(proxy.execute("select * from bayes.health(%s)", (windows,))))


def sizes(partitions) -> tuple[int, int]:
    """The event log's and the state table's bytes, summed over the partitions."""
    log = state = 0
    for conn in partitions:
        a, b = conn.execute(
            "select pg_total_relation_size('bayes.player_event') + pg_total_relation_size('bayes.event_result'),"
            " pg_total_relation_size('public.user_bayesian_state')"
        ).fetchone()
        log, state = log + a, state + b
    return log, state


class Raw:
    """Every partition's rows: events (each with its partition), states, retention facts, parameters."""

    def __init__(self, partitions):
        self.events: list[dict] = []
        self.states: dict[str, tuple] = {}
        self.retention: list[tuple] = []  # per partition: (event_retention_days, last done horizon, first event)
        self.cold_start: set[int] = set()
        for i, conn in enumerate(partitions):
            events = dict_rows(
                conn.execute(
                    "select event_id, user_id::text, kind::text, message_id, player_mode::text,"
                    " fallback_reason::text, fallback_needed, recorded_at, occurred_at, db_time_us, observations,"
                    " input from bayes.player_event order by event_id"
                )
            )
            for e in events:
                e["partition"] = i
            self.events += events
            for u, s, due, updated in conn.execute(
                "select user_id, state, decay_due_at, updated_at from public.user_bayesian_state"
            ):
                self.states[str(u)] = (s, due, updated)
            days, horizon, cold = conn.execute(
                "select (select (value #>> '{}')::float8 from bayes.params where name = 'event_retention_days'),"
                " (select max(horizon) from bayes.retention_run where status = 'done'),"
                " (select (value #>> '{}')::int from bayes.params where name = 'cold_start_messages')"
            ).fetchone()
            self.retention.append((days, horizon, events[0]["occurred_at"] if events else None))
            self.cold_start.add(cold)
        assert len(self.cold_start) == 1, "the partitions disagree on cold_start_messages"


def proxy_params(proxy) -> dict:
    values = dict(proxy.execute("select name, (value #>> '{}') from bayes.params where name ~ '^health_'"))
    return {
        "windows": sorted({int(float(values["health_window_short_s"])), int(float(values["health_window_long_s"]))}),
        "agreement_h": float(values["health_agreement_window_h"]),
        "pairs": int(float(values["health_agreement_pairs"])),
    }


def agreement_pairs(raw: Raw, now: dt.datetime, prm: dict) -> list[tuple[str, dict]]:
    """The newest `pairs` shadow and audit pairs of all partitions answered in the agreement window, newest first
    by the answer's recorded_at (what one log of every partition's rows holds)."""
    since = now - dt.timedelta(hours=prm["agreement_h"])
    messages = {(e["user_id"], e["message_id"]): e for e in raw.events if e["kind"] == "message"}
    answers = sorted(
        (e for e in raw.events if e["kind"] == "llm_scores" and e["message_id"] is not None),
        key=lambda e: e["recorded_at"],
        reverse=True,
    )
    answers = [e for e in answers if e["recorded_at"] >= since]
    pairs = []
    for answer in answers:
        message = messages.get((answer["user_id"], answer["message_id"]))
        if message is None:
            continue
        if message["player_mode"] == "shadow":
            sample = "shadow"
        elif message["player_mode"] == "bayes" and message["fallback_reason"] == "audit" and message["fallback_needed"]:
            sample = "audit"
        else:
            continue
        pairs.append((sample, {"message": message, "answer": answer}))
        if len(pairs) == prm["pairs"]:
            break
    return pairs


def same_signs(pair: dict) -> list[bool]:
    """For each metric, whether the engine's net evidence in the message and the LLM's delta have one sign."""
    observation = eventlog.unpack("message", bytes(pair["message"]["input"]))["observation"]
    deltas = eventlog.unpack("llm_scores", bytes(pair["answer"]["input"]))["deltas"]
    return [
        np.sign(observation["plus"][k] - observation["minus"][k]) == np.sign(deltas.get(name, 0.0))
        for k, name in enumerate(METRICS)
    ]


def window_messages(raw: Raw, now: dt.datetime, w: int) -> list[dict]:
    since = now - dt.timedelta(seconds=w)
    return [e for e in raw.events if e["kind"] == "message" and e["recorded_at"] >= since]


def expected_signals(raw: Raw, now: dt.datetime, windows: list[int], prm: dict, partitions: int) -> dict:
    """Every signal's (value, samples) computed here from the raw rows of all partitions at instant `now`."""
    out: dict = {}
    cold_start = next(iter(raw.cold_start))
    for w in windows:
        msgs = window_messages(raw, now, w)
        n = len(msgs)
        out[("messages_per_second", w, None)] = (n / w, n)
        granted = sum(1 for m in msgs if m["fallback_needed"])
        out[("fallback_rate", w, None)] = (granted / n if n else None, n)
        for reason in ("cold_start", "no_signals", "uncertain", "audit"):
            hits = sum(1 for m in msgs if m["fallback_reason"] == reason and m["fallback_needed"])
            out[("llm_granted", w, reason)] = (hits / n if n else None, n)
        for reason in ("no_signals", "uncertain", "audit"):
            hits = sum(1 for m in msgs if m["fallback_reason"] == reason and not m["fallback_needed"])
            out[("llm_refused", w, reason)] = (hits / n if n else None, n)
        budgeted = [m for m in msgs if m["fallback_reason"] not in ("cold_start", "bayesian_sufficient")]
        refused = sum(1 for m in budgeted if not m["fallback_needed"])
        out[("llm_budget_exhaustion", w, None)] = (refused / len(budgeted) if budgeted else None, len(budgeted))
        observed = [m["observations"] for m in msgs if m["observations"] is not None]
        no_signal = sum(1 for o in observed if o == 0)
        out[("no_signal_share", w, None)] = (no_signal / len(observed) if observed else None, len(observed))
        players = sorted({m["user_id"] for m in msgs})
        variances = [
            np.mean([stats.beta(*raw.states[u][0]["m"][k]).var() for k in METRIC_KEYS])
            for u in players
            if u in raw.states and raw.states[u][0]["n"] >= cold_start
        ]
        out[("posterior_variance", w, None)] = (float(np.mean(variances)) if variances else None, len(variances))
        timed = [m["db_time_us"] for m in msgs if m["db_time_us"] is not None]
        p50, p99 = np.percentile(timed, [50, 99], method="linear") / 1000 if timed else (None, None)
        out[("latency_p50_ms", w, None)] = (p50, len(timed))
        out[("latency_p99_ms", w, None)] = (p99, len(timed))
    # the most overdue player of all partitions
    overdue = [max(due, updated) for _, due, updated in raw.states.values() if due is not None and due <= now]
    out[("decay_lag_s", None, None)] = ((now - min(overdue)).total_seconds() if overdue else 0.0, None)
    # the partition whose log is furthest behind its retention horizon
    lags = []
    for days, horizon, first in raw.retention:
        behind = horizon if horizon is not None else first
        if behind is not None:
            lags.append(max((now - dt.timedelta(days=days) - behind).total_seconds(), 0.0))
    out[("retention_lag_s", None, None)] = (max(lags) if lags else 0.0, None)
    pairs = agreement_pairs(raw, now, prm)
    for sample in ("shadow", "audit"):
        hits = [hit for s, pair in pairs if s == sample for hit in same_signs(pair)]
        out[("shadow_agreement", int(prm["agreement_h"] * 3600), sample)] = (
            float(np.mean(hits)) if hits else None,
            len(hits) // 4,
        )
    for i in range(partitions):
        out[("partition_up", None, str(i))] = (1.0, None)
    return out


def status_of(value, samples, t) -> str:
    if value is None or (samples is not None and samples < t["min_samples"]):
        return "ok"

    def beyond(threshold):
        if threshold is None:
            return False
        return value > threshold if t["direction"] == "above" else value < threshold

    return "critical" if beyond(t["critical"]) else "warn" if beyond(t["warn"]) else "ok"


def check_health(proxy, partitions, windows=None) -> tuple[dict, Raw, dt.datetime]:
    """The proxy's bayes.health(windows) against the computation here from the raw rows, row by row."""
    prm = proxy_params(proxy)
    before = sizes(partitions)
    now, got = health_now(proxy, windows)
    after = sizes(partitions)
    raw = Raw(partitions)
    want = expected_signals(raw, now, sorted(set(windows)) if windows else prm["windows"], prm, len(partitions))
    thresholds = {t["signal"]: t for t in dict_rows(proxy.execute("select * from bayes.health_threshold"))}
    # sizes grow only: between the readings before and after
    assert before[0] <= got[("event_log_bytes", None, None)]["value"] <= after[0]
    assert before[1] <= got[("state_table_bytes", None, None)]["value"] <= after[1]
    sized = {("event_log_bytes", None, None), ("state_table_bytes", None, None)}
    assert set(got) == set(want) | sized
    for key, (value, samples) in want.items():
        row = got[key]
        assert row["samples"] == samples, key
        if value is None:
            assert row["value"] is None, key
        elif key[0] in ("decay_lag_s", "retention_lag_s"):
            # the database subtracts timestamps in microseconds, Python in timedelta: equal to the microsecond
            assert row["value"] == pytest.approx(value, abs=1e-6), key
        else:
            assert row["value"] == pytest.approx(value, rel=1e-12, abs=1e-15), key
    for key, row in got.items():
        t = thresholds[key[0]]
        assert (row["warn"], row["critical"], row["unit"]) == (t["warn"], t["critical"], t["unit"]), key
        assert row["status"] == status_of(row["value"], row["samples"], t), key
    return got, raw, now


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------


def test_every_signal_combines_every_partition_exactly(pstack, traffic, still_partitions):
    n = len(still_partitions)
    with psycopg.connect(pstack["DB_URL"], autocommit=True) as proxy:
        got, raw, now = check_health(proxy, still_partitions)
        w = proxy_params(proxy)["windows"][0]
        # what the traffic was made to show, on every partition
        assert {m["partition"] for m in window_messages(raw, now, w)} == set(range(n))
        assert [got[("partition_up", None, str(i))]["value"] for i in range(n)] == [1] * n
        assert got[("decay_lag_s", None, None)]["value"] > 0
        # (retention_lag_s hangs on each partition's first event, which other tests wrote: checked equal only)
        assert got[("shadow_agreement", 86400, "shadow")]["samples"] > 50
        assert got[("shadow_agreement", 86400, "audit")]["samples"] > 0
        assert 0 < got[("no_signal_share", w, None)]["value"] < 1
        assert got[("latency_p99_ms", w, None)]["value"] > got[("latency_p50_ms", w, None)]["value"] > 0
        # other windows, asked for (each once, in order)
        check_health(proxy, still_partitions, [60, 7 * 86400, 60])


def per_partition(raw: Raw, now: dt.datetime, w: int, n: int) -> list[list[dict]]:
    msgs = window_messages(raw, now, w)
    return [[m for m in msgs if m["partition"] == i] for i in range(n)]


def test_percentiles_are_those_of_the_union_not_an_average_of_the_partitions(pstack, traffic, still_partitions):
    n = len(still_partitions)
    with psycopg.connect(pstack["DB_URL"], autocommit=True) as proxy:
        now, got = health_now(proxy)
        raw = Raw(still_partitions)
        for w in proxy_params(proxy)["windows"]:
            union = [m["db_time_us"] for m in window_messages(raw, now, w) if m["db_time_us"] is not None]
            # PostgreSQL's percentile_cont over the union of the partitions' times, in one query: the same float
            exact = proxy.execute(
                "select percentile_cont(array[0.5, 0.99]) within group (order by t) from unnest(%s::integer[]) as t",
                (union,),
            ).fetchone()[0]
            assert [got[("latency_p50_ms", w, None)]["value"], got[("latency_p99_ms", w, None)]["value"]] == [
                exact[0] / 1000,
                exact[1] / 1000,
            ]
            # the average of the partitions' percentiles is another number
            parts = per_partition(raw, now, w, n)
            for q, signal in ((50, "latency_p50_ms"), (99, "latency_p99_ms")):
                averaged = np.mean([np.percentile([m["db_time_us"] for m in p], q) for p in parts]) / 1000
                assert got[(signal, w, None)]["value"] != pytest.approx(averaged, rel=1e-6), (signal, w)
            # and the ratios are ratios of the sums, not averages of the partitions' ratios
            for signal, hit in (
                ("fallback_rate", lambda m: m["fallback_needed"]),
                ("no_signal_share", lambda m: m["observations"] == 0),
            ):
                averaged = np.mean([sum(map(hit, p)) / len(p) for p in parts])
                assert got[(signal, w, None)]["value"] != pytest.approx(averaged, rel=1e-6), (signal, w)


def test_shadow_agreement_reads_the_newest_pairs_of_all_partitions(pstack, traffic, still_partitions):
    with psycopg.connect(pstack["DB_URL"]) as proxy:
        # at most 9 pairs: the newest 9 of all partitions, not 9 of each (each has more than 9 of its own)
        for conn in still_partitions:
            assert conn.execute("select count(*) from bayes.player_event where kind = 'llm_scores'").fetchone()[0] > 9
        proxy.execute("update bayes.params set value = '9' where name = 'health_agreement_pairs'")
        got, _, _ = check_health(proxy, still_partitions)
        assert sum(got[("shadow_agreement", 86400, s)]["samples"] for s in ("shadow", "audit")) == 9
        # the newest 40 come from more than one partition, merged by when they were written
        proxy.execute("update bayes.params set value = '40' where name = 'health_agreement_pairs'")
        got, raw, now = check_health(proxy, still_partitions)
        assert sum(got[("shadow_agreement", 86400, s)]["samples"] for s in ("shadow", "audit")) == 40
        newest = agreement_pairs(raw, now, proxy_params(proxy))
        assert len({pair["answer"]["partition"] for _, pair in newest}) > 1
        proxy.rollback()


def test_min_samples_and_thresholds_are_the_proxys_on_the_combined_counts(pstack, traffic, still_partitions):
    with psycopg.connect(pstack["DB_URL"]) as proxy:
        w = proxy_params(proxy)["windows"][0]
        now, got = health_now(proxy)
        row = got[("no_signal_share", w, None)]
        combined, value = row["samples"], row["value"]
        raw = Raw(still_partitions)
        parts = per_partition(raw, now, w, len(still_partitions))
        largest = max(sum(1 for m in p if m["observations"] is not None) for p in parts)
        assert largest < combined
        proxy.execute(
            "update bayes.health_threshold set warn = %s, critical = %s, min_samples = %s"
            " where signal = 'no_signal_share'",
            (value / 4, value / 2, combined),
        )
        assert health_now(proxy)[1][("no_signal_share", w, None)]["status"] == "critical"
        # more samples than all the partitions hold together: ok, though it is beyond both thresholds
        proxy.execute(
            "update bayes.health_threshold set min_samples = %s where signal = 'no_signal_share'", (combined + 1,)
        )
        assert health_now(proxy)[1][("no_signal_share", w, None)]["status"] == "ok"
        proxy.rollback()


def test_bad_windows_are_refused_at_the_proxy_and_only_the_service_role_reads_health(pstack, traffic):
    with psycopg.connect(pstack["DB_URL"]) as proxy:
        for windows in ([5], [604801], [None]):
            with pytest.raises(errors.InvalidParameterValue, match="p_windows_s"):
                proxy.execute("select * from bayes.health(%s::integer[])", (windows,))
            proxy.rollback()
        for role in ("anon", "authenticated"):
            proxy.execute(f"set local role {role}")
            with pytest.raises(errors.InsufficientPrivilege):
                proxy.execute("select * from bayes.health()")
            proxy.rollback()
        proxy.execute("set local role service_role")
        assert proxy.execute("select count(*) from bayes.health()").fetchone()[0] > 0
        # the partitions' calls are the proxy's own: not the service role's
        with pytest.raises(errors.InsufficientPrivilege):
            proxy.execute("select * from bayes_remote.health_parts(now(), array[300], now(), 10)")
        proxy.rollback()


# ---------------------------------------------------------------------------
# A single node given every partition's rows
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def single_node(single_proc) -> str:
    url = create_database(single_proc, SINGLE_NODE_DB)
    bootstrap_and_migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for job in ("bayes-record-health", "bayes-run-decay", "bayes-run-retention"):
            conn.execute("select cron.unschedule(%s)", (job,))
        wait_for_cron(conn)
    return url


STATE_COLUMNS = "user_id, state, version, last_message_at, decayed_at, created_at, updated_at, decay_due_at"
EVENT_COLUMNS = (
    "user_id, occurred_at, message_key, kind, player_mode, n, mood, fallback_reason, fallback_needed, message_id,"
    " input, recorded_at, db_time_us, observations"
)


def test_a_single_node_with_every_partitions_rows_in_one_log_computes_the_same(
    pstack, traffic, still_partitions, single_node
):
    """Every partition's states and events copied into one log (events in the order they were recorded, every
    instant moved by the time between the proxy's health and the single node's, in the single node's transaction:
    its now() is the proxy's instant then): the single node's own bayes.health gives the proxy's values. Not the
    sizes (other tables), nor retention_lag_s: the single node reads one retention horizon, the proxy the
    furthest behind of the partitions' own."""
    with psycopg.connect(pstack["DB_URL"], autocommit=True) as proxy:
        proxy_now, got = health_now(proxy)
    states, events = [], []
    for conn in still_partitions:
        states += conn.execute(f"select {STATE_COLUMNS} from public.user_bayesian_state").fetchall()
        events += conn.execute(f"select {EVENT_COLUMNS}, event_id from bayes.player_event").fetchall()
    events.sort(key=lambda e: (e[11], e[-1]))  # recorded_at, then each partition's order
    moved_events = [(*e[:-1],) for e in events]
    with psycopg.connect(single_node, options="-c bayes.state_writer=engine") as single:
        single.execute("truncate auth.users cascade")
        single.execute("truncate bayes.player_event, bayes.event_result, bayes.health_snapshot")
        single.commit()
        shift = single.execute("select now()").fetchone()[0] - proxy_now

        def moved(value):
            return value + shift if isinstance(value, dt.datetime) else value

        with single.cursor() as cur:
            cur.executemany(
                "insert into auth.users (id, email) values (%s, %s)",
                [(s[0], f"{s[0]}@players.test") for s in states],
            )
            cur.executemany(
                f"insert into public.user_bayesian_state ({STATE_COLUMNS}) values ({', '.join(['%s'] * 8)})",
                [tuple(moved(v) if i != 1 else Jsonb(v) for i, v in enumerate(s)) for s in states],
            )
            cur.executemany(
                f"insert into bayes.player_event ({EVENT_COLUMNS}) values ({', '.join(['%s'] * 14)})",
                [tuple(moved(v) for v in e) for e in moved_events],
            )
        alone = rows_by_key(dict_rows(single.execute("select * from bayes.health()")))
        single.rollback()
    compared = set(got) - {
        ("event_log_bytes", None, None),
        ("state_table_bytes", None, None),
        ("retention_lag_s", None, None),
    }
    compared -= {key for key in got if key[0] == "partition_up"}
    assert compared <= set(alone)
    assert len(compared) == len(alone) - 3
    for key in compared:
        a, b = got[key], alone[key]
        assert (a["samples"], a["status"]) == (b["samples"], b["status"]), key
        if a["value"] is None or key[0] != "posterior_variance":
            assert a["value"] == b["value"], key
        else:  # a mean of floats added in another order
            assert a["value"] == pytest.approx(b["value"], rel=1e-12), key


# ---------------------------------------------------------------------------
# Snapshots, alerts and metrics at the proxy
# ---------------------------------------------------------------------------


def get_metrics(client: Client, accept: str | None = PROMETHEUS_2_ACCEPT):
    session = client.sb.postgrest.session
    request = session.build_request("GET", "rpc/bayes_metrics")
    del request.headers["accept"]
    if accept is not None:
        request.headers["accept"] = accept
    return session.send(request)


def test_the_proxys_snapshot_alerts_and_metrics_are_the_combined_view(
    pstack, traffic, still_partitions, pservice, panon, pplayer_client
):
    with psycopg.connect(pstack["DB_URL"], autocommit=True) as proxy:
        # the proxy's pg_cron job takes no snapshot while this one is checked
        proxy.execute("select pg_advisory_lock(bayes.health_lock_key())")
        try:
            with proxy.transaction():
                proxy.execute("select bayes.record_health()")
                taken_at = proxy.execute("select now()").fetchone()[0]
                health = rows_by_key(dict_rows(proxy.execute("select * from bayes.health()")))
            snapshot = rows_by_key(
                dict_rows(proxy.execute("select * from bayes.health_snapshot where taken_at = %s", (taken_at,)))
            )
            # the snapshot is the combined health at its instant (the sizes move with autovacuum)
            assert set(snapshot) == set(health)
            for key, row in snapshot.items():
                if key[0] not in ("event_log_bytes", "state_table_bytes"):
                    assert (row["value"], row["samples"], row["status"]) == (
                        health[key]["value"],
                        health[key]["samples"],
                        health[key]["status"],
                    ), key
            alerts = rows_by_key(dict_rows(proxy.execute("select * from bayes.alerts()")))
            assert set(alerts) == {k for k, r in snapshot.items() if r["status"] != "ok"}
            assert alerts  # the cold starts make fallback_rate fire
            response = get_metrics(pservice)
            assert response.status_code == 200, response.text
            assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            samples = assert_exposition_is(
                response.text,
                proxy.execute(HEALTH_SQL).fetchall(),
                proxy.execute(THRESHOLD_SQL).fetchall(),
                proxy.execute(SNAPSHOT_SQL).fetchone()[0],
            )
            n = len(still_partitions)
            for i in range(n):
                assert samples[("bayes_partition_up", frozenset({("partition", str(i))}))] == 1
            w = str(proxy_params(proxy)["windows"][0])
            assert (
                samples[("bayes_messages_per_second", frozenset({("window", w)}))]
                == (snapshot[("messages_per_second", int(w), None)]["value"])
            )
        finally:
            proxy.execute("select pg_advisory_unlock(bayes.health_lock_key())")
    assert get_metrics(panon).status_code == 401
    player = get_metrics(pplayer_client(uuid.uuid4()))
    assert player.status_code == 403
    assert player.json()["code"] == "42501"


# ---------------------------------------------------------------------------
# A partition stopped, on a stack of this module's own
# ---------------------------------------------------------------------------


def as_postgres(*command: str) -> list[str]:
    return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + list(command)


@pytest.fixture(scope="module")
def own_stack():
    """A partitioned stack of 2 partitions of its own (ports 40 above the partitioned test stack's), its proxy's
    snapshot job unscheduled (the test takes the snapshots); stopped and deleted at the end."""
    base = os.environ.get("BAYES_PARTITIONED_DB_PORT")
    if not base:
        pytest.fail("BAYES_PARTITIONED_DB_PORT is not set: run scripts/test")
    env = dict(os.environ)
    env.update(
        {
            "BAYES_STACK_DIR": os.environ["BAYES_PARTITIONED_STACK_DIR"] + "-health",
            "BAYES_DB_PORT": str(int(base) + 40),
            "BAYES_API_PORT": str(int(os.environ["BAYES_PARTITIONED_API_PORT"]) + 40),
            "BAYES_REST_PORT": str(int(os.environ["BAYES_PARTITIONED_REST_PORT"]) + 40),
            "BAYES_PARTITION_PORT": "",
        }
    )
    stack = [str(ROOT / "scripts" / "stack")]

    def down():
        subprocess.run([*stack, "down"], env=env, capture_output=True)
        shutil.rmtree(env["BAYES_STACK_DIR"], ignore_errors=True)

    down()
    try:
        subprocess.run([*stack, "up", "--partitions", "2"], env=env, check=True, capture_output=True)
        out = subprocess.run([*stack, "env"], env=env, check=True, capture_output=True, text=True).stdout
        values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        values["STACK_DIR"] = env["BAYES_STACK_DIR"]
        with psycopg.connect(values["DB_URL"], autocommit=True) as conn:
            conn.execute("select cron.unschedule('bayes-record-health')")
            wait_for_cron(conn)
        yield values
    finally:
        down()


def pg_ctl(stack: dict, partition: int, action: str) -> None:
    data = Path(stack["STACK_DIR"]) / f"partition-{partition}"
    command = ["/usr/lib/postgresql/15/bin/pg_ctl", action, "-D", str(data / "pgdata"), "-w"]
    command += ["-m", "fast"] if action == "stop" else ["-l", str(data / "log" / "postgres.log")]
    subprocess.run(as_postgres(*command), check=True, capture_output=True)


def snapshot_rows(conn) -> dict:
    return rows_by_key(
        dict_rows(
            conn.execute(
                "select * from bayes.health_snapshot where taken_at = (select max(taken_at) from bayes.health_snapshot)"
            )
        )
    )


def test_a_partition_down_is_an_error_naming_it_and_a_critical_alert(own_stack, tmp_path):
    proxy_url = own_stack["DB_URL"]
    port = int(own_stack["PARTITION_URLS"].split(",")[1].rsplit(":", 1)[1].split("/")[0])
    service = Client(own_stack["API_URL"], own_stack["SERVICE_ROLE_KEY"])
    with psycopg.connect(proxy_url, autocommit=True) as proxy:
        players = [uuid.uuid4() for _ in range(8)]
        for k, user_id in enumerate(players):
            proxy.execute(
                "select public.bayes_process_message(%s, 'thank you, I trust you', now(), %s)", (user_id, f"m{k}")
            )
        proxy.execute("select bayes.record_health()")
        first = snapshot_rows(proxy)
        assert first[("partition_up", None, "1")]["value"] == 1
        assert first[("messages_per_second", 300, None)]["samples"] == 8
        pg_ctl(own_stack, 1, "stop")
        try:
            # bayes.health: an error that names the partition, no number
            with pytest.raises(errors.ConnectionFailure) as failure:
                proxy.execute("select * from bayes.health()")
            diag = failure.value.diag
            assert diag.message_primary == "bayes.health: partition 1 of 2 does not answer"
            (connstr,) = proxy.execute(
                "select substr(o, strpos(o, '=') + 1) from pg_foreign_server as s, unnest(s.srvoptions) as o"
                " where s.srvname = 'bayes_partitions' and o like 'partition\\_1=%'"
            ).fetchone()
            assert f"port={port} " in connstr
            assert diag.message_detail.startswith(f"partition 1 ({connstr}): ")
            assert "Connection refused" in diag.message_detail
            assert "partition_up" in diag.message_hint
            # the snapshot: partition_up alone, 0 and critical for the partition down
            with proxy.transaction():
                assert proxy.execute("select bayes.record_health()").fetchone()[0] == 1
            down = snapshot_rows(proxy)
            assert {k: (r["value"], r["status"]) for k, r in down.items()} == {
                ("partition_up", None, "0"): (1, "ok"),
                ("partition_up", None, "1"): (0, "critical"),
            }
            changes = dict_rows(
                proxy.execute(
                    "select signal, label, status_from::text, status_to::text from bayes.health_change"
                    " where changed_at = (select max(changed_at) from bayes.health_change)"
                )
            )
            assert changes == [{"signal": "partition_up", "label": "1", "status_from": "ok", "status_to": "critical"}]
            alerts = dict_rows(proxy.execute("select signal, label, status::text, value from bayes.alerts()"))
            assert alerts == [{"signal": "partition_up", "label": "1", "status": "critical", "value": 0}]
            response = get_metrics(service)
            assert response.status_code == 200, response.text
            samples = assert_exposition_is(
                response.text,
                proxy.execute(HEALTH_SQL).fetchall(),
                proxy.execute(THRESHOLD_SQL).fetchall(),
                proxy.execute(SNAPSHOT_SQL).fetchone()[0],
            )
            assert samples[("bayes_partition_up", frozenset({("partition", "1")}))] == 0
            assert samples[("bayes_health_status", frozenset({("signal", "partition_up"), ("partition", "1")}))] == 2
            assert not any(family == "bayes_messages_per_second" for family, _ in samples)
            # and scripts/health says it, the right way round (partition_up fires below its threshold)
            out = str(tmp_path / "health.png")
            picture = subprocess.run(
                [str(ROOT / "scripts" / "health"), "--db-url", proxy_url, "--hours", "1", "--out", out],
                capture_output=True,
                text=True,
                check=True,
            )
            assert "CRITICAL partition_up{1} (instant): 0 answered < critical 1 answered;" in picture.stdout
        finally:
            pg_ctl(own_stack, 1, "start")
        # back: every signal again, partition_up ok
        deadline = time.monotonic() + 30
        while True:
            try:
                proxy.execute("select count(*) from bayes.health()")
                break
            except errors.ConnectionFailure:
                assert time.monotonic() < deadline, "the partition did not come back"
                time.sleep(0.5)
        with proxy.transaction():
            proxy.execute("select bayes.record_health()")
        back = snapshot_rows(proxy)
        assert back[("partition_up", None, "1")]["status"] == "ok"
        assert back[("messages_per_second", 300, None)]["samples"] == 8
        assert set(back) == set(first)
        assert proxy.execute("select count(*) from bayes.alerts() where signal = 'partition_up'").fetchone()[0] == 0
