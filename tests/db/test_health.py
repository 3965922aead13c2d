"""bayes.health, bayes.record_health and bayes.alerts (issue 16), on real traffic.

Every message goes through the real bayes_process_message (and the LLM's
answers through bayes_apply_llm_scores), committed; each signal of
bayes.health is checked against its own computation in Python from the raw
rows (the event log, the state table, the retention runs, the relation
sizes), and the snapshots, the changes of status and the NOTIFYs of
record_health against a real listener connection.

The health signals count every message of the last minutes, so this module
has a cluster of its own (pg_cron lives in one database per cluster): the
shared test database holds every other test's recent messages. Each test
starts from an empty log (`wipe`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import time
import uuid

import numpy as np
import psycopg
import pytest
from bayes_dev import decay_runs, retention_runs
from bayes_dev.support import bootstrap_and_migrate, create_database, cron_cluster, new_player
from bayes_engine import encoder, params
from psycopg import errors
from psycopg.types.json import Jsonb
from scipy import stats

pytestmark = pytest.mark.db

DBNAME = "bayes_health"
# bayes.health_lock_key(): held while the migrations run (see health_db); the
# fixture checks that the function returns it.
HEALTH_LOCK_KEY = 7300215847719049218
METRICS = ("intimacy", "passion", "trust", "secureness")
METRIC_KEYS = ("i", "p", "t", "s")

health_proc = cron_cluster(DBNAME)

# Texts whose metric features the encoder finds (checked by test_the_texts_are_what_they_say).
FEATURE_TEXTS = (
    "I think you are amazing and kind, thank you for listening. What do you dream about?",
    "whatever, this is boring",
    "stop it. I hate when you do that, it is annoying",
    "ok",
    "I feel like I can be honest with you. I have a secret I never told anyone, it is about my family and how"
    " afraid I was growing up. Do you ever feel that way? I hope you do not think less of me for it, I just want"
    " to be real with someone for once and you feel safe.",
)
# Texts in which it finds none: no_signals.
NO_SIGNAL_TEXTS = (
    "The train leaves the station at noon on most days",
    "haha that is so funny 😂 you always make me laugh",
    "let's go to a bar tonight and do something crazy and wild",
)


class HealthDb:
    def __init__(self, url: str, jobs: list[tuple]):
        self.url = url
        self.jobs_after_migrations = jobs


@pytest.fixture(scope="module")
def health_db(health_proc) -> HealthDb:
    url = create_database(health_proc, DBNAME)
    # The migrations schedule bayes-record-health every minute; a run between
    # them and the unschedule below would write a snapshot of its own. The
    # snapshot lock held meanwhile makes any such run return null, writing nothing.
    with psycopg.connect(url, autocommit=True) as guard:
        guard.execute("select pg_advisory_lock(%s)", (HEALTH_LOCK_KEY,))
        bootstrap_and_migrate(url)
        assert guard.execute("select bayes.health_lock_key()").fetchone()[0] == HEALTH_LOCK_KEY
        jobs = guard.execute(
            "select jobname, schedule, command, active from cron.job where jobname like 'bayes-%' order by jobname"
        ).fetchall()
        # here the tests take the snapshots (and run decay and retention) themselves
        for job in ("bayes-record-health", "bayes-run-decay", "bayes-run-retention"):
            guard.execute("select cron.unschedule(%s)", (job,))
        deadline = time.monotonic() + 60
        while guard.execute(
            "select count(*) from cron.job_run_details where status in ('starting', 'running')"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "a pg_cron run did not finish"
            time.sleep(0.2)
        # messages sent at the instants the tests choose (months back)
        guard.execute("update bayes.params set value = '87600' where name = 'max_message_age_h'")
        guard.execute("select pg_advisory_unlock(%s)", (HEALTH_LOCK_KEY,))
    return HealthDb(url, jobs)


@pytest.fixture(scope="module")
def migrated_params(health_db) -> list[tuple[str, str]]:
    with psycopg.connect(health_db.url) as conn:
        return conn.execute("select name, value::text from bayes.params order by name").fetchall()


@pytest.fixture(scope="module")
def migrated_thresholds(health_db) -> list[tuple]:
    with psycopg.connect(health_db.url) as conn:
        return conn.execute("select * from bayes.health_threshold order by signal").fetchall()


@pytest.fixture
def db(health_db, migrated_params, migrated_thresholds):
    """An autocommit connection to an empty log: no player, event, snapshot or run; the migrations' parameters,
    thresholds and rollout (everyone shadow)."""
    with psycopg.connect(health_db.url, autocommit=True) as conn:
        wipe(conn, migrated_params, migrated_thresholds)
        yield conn


@pytest.fixture
def listener(health_db):
    with psycopg.connect(health_db.url, autocommit=True) as conn:
        conn.execute("listen bayes_health")
        yield conn


def wipe(conn, migrated_params, migrated_thresholds) -> None:
    conn.execute("delete from auth.users")
    conn.execute(
        "truncate bayes.player_event, bayes.event_result, bayes.player_checkpoint, bayes.health_snapshot,"
        " bayes.health_change, bayes.retention_run, bayes.retention_skipped, bayes.decay_run, bayes.decay_skipped"
    )
    for name, value in migrated_params:
        conn.execute(
            "update bayes.params set value = %s::jsonb where name = %s and value is distinct from %s::jsonb",
            (value, name, value),
        )
    conn.execute("delete from bayes.health_threshold")
    with conn.cursor() as cur:
        cur.executemany(
            "insert into bayes.health_threshold values (" + ", ".join(["%s"] * len(migrated_thresholds[0])) + ")",
            migrated_thresholds,
        )
    conn.execute("update bayes.rollout set bayes_percent = 0")


# ---------------------------------------------------------------------------
# Traffic
# ---------------------------------------------------------------------------


def rollout_bucket(user_id: uuid.UUID) -> int:
    """bayes.user_bucket(user_id, 'rollout'), computed here (sql/functions/22_rollout.sql)."""
    return int(hashlib.md5(f"rollout:{user_id}".encode()).hexdigest()[:8], 16) % 10000


def player_in(conn, mode: str, bayes_percent: float) -> uuid.UUID:
    """A new player (auth.users) whose mode under bayes_percent is `mode`."""
    while True:
        user_id = uuid.uuid4()
        if (rollout_bucket(user_id) < bayes_percent * 100) == (mode == "bayes"):
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
            return user_id


class Traffic:
    """What the tests sent, as they sent it: (user, message id) -> text; the LLM's deltas by (user, message id)."""

    def __init__(self, conn):
        self.conn = conn
        self.texts: dict[tuple[str, str], str] = {}
        self.deltas: dict[tuple[str, str], dict] = {}
        self.results: list[dict] = []
        self._count = 0

    def send(self, user_id, text: str, sent_at: dt.datetime | None = None) -> dict:
        self._count += 1
        mid = f"m{self._count}"
        (result,) = self.conn.execute(
            "select public.bayes_process_message(%s, %s, p_sent_at => coalesce(%s, now()), p_message_id => %s)",
            (user_id, text, sent_at, mid),
        ).fetchone()
        self.texts[(str(user_id), mid)] = text
        self.results.append(result)
        return result

    def answer(self, user_id, message_id: str, deltas: dict) -> None:
        self.conn.execute(
            "select public.bayes_apply_llm_scores(%s, %s, %s)", (user_id, Jsonb(deltas), message_id)
        ).fetchone()
        self.deltas[(str(user_id), message_id)] = deltas


def round_robin(traffic: Traffic, players: list, texts, count: int) -> None:
    for k in range(count):
        traffic.send(players[k % len(players)], texts[k % len(texts)])


def llm_deltas(rnd: random.Random) -> dict:
    """An LLM's answer: deltas in [-10, 10] for some metrics (a missing metric is 0), zeros among them."""
    return {name: rnd.choice((-6, -2, 0, 3, 8)) for name in METRICS if rnd.random() < 0.8}


# ---------------------------------------------------------------------------
# The computation in Python, from the raw rows
# ---------------------------------------------------------------------------


def status_of(value, samples, warn, critical, direction, min_samples) -> str:
    if value is None or (samples is not None and samples < min_samples):
        return "ok"

    def beyond(threshold):
        if threshold is None:
            return False
        return value > threshold if direction == "above" else value < threshold

    return "critical" if beyond(critical) else "warn" if beyond(warn) else "ok"


def rows_by_key(rows) -> dict:
    return {(r["signal"], r["window_s"], r["label"]): r for r in rows}


def dict_rows(cur) -> list[dict]:
    names = [d.name for d in cur.description]
    return [dict(zip(names, row)) for row in cur.fetchall()]


def health_now(conn, windows=None) -> tuple[dt.datetime, dict]:
    """bayes.health() and now() of one transaction."""
    with conn.transaction():
        now = conn.execute("select now()").fetchone()[0]
        cur = conn.execute("select * from bayes.health(%s)", (windows,))
        return now, rows_by_key(dict_rows(cur))


def relation_bytes(conn, relation: str) -> int:
    """pg_total_relation_size, rebuilt from its parts: every fork of the table, of its indexes, of its TOAST
    table and of the TOAST table's index."""
    return conn.execute(
        """
        with parts as (
            select c.oid from pg_class as c where c.oid = %(rel)s::regclass
            union all
            select i.indexrelid from pg_index as i where i.indrelid = %(rel)s::regclass
            union all
            select c.reltoastrelid from pg_class as c where c.oid = %(rel)s::regclass and c.reltoastrelid <> 0
            union all
            select i.indexrelid from pg_index as i
            join pg_class as c on c.reltoastrelid = i.indrelid where c.oid = %(rel)s::regclass
        )
        select sum(pg_relation_size(p.oid, f.fork))::bigint
        from parts as p cross join unnest(array['main', 'fsm', 'vm', 'init']) as f (fork)
        """,
        {"rel": relation},
    ).fetchone()[0]


def expected_signals(conn, now: dt.datetime, windows: list[int], traffic: Traffic | None, prm: dict) -> dict:
    """Every signal's (value, samples) computed here from the raw rows at instant `now`."""
    events = dict_rows(
        conn.execute(
            "select event_id, user_id::text, kind::text, message_id, player_mode::text, fallback_reason::text,"
            " fallback_needed, recorded_at, occurred_at, db_time_us, observations from bayes.player_event"
            " order by event_id"
        )
    )
    states = {
        str(u): (s, due, updated)
        for u, s, due, updated in conn.execute(
            "select user_id, state, decay_due_at, updated_at from public.user_bayesian_state"
        )
    }
    out: dict = {}
    for w in windows:
        since = now - dt.timedelta(seconds=w)
        msgs = [e for e in events if e["kind"] == "message" and e["recorded_at"] >= since]
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
        # the players past their cold start
        variances = [
            np.mean([stats.beta(*states[u][0]["m"][k]).var() for k in METRIC_KEYS])
            for u in players
            if u in states and states[u][0]["n"] >= prm["cold_start_messages"]
        ]
        out[("posterior_variance", w, None)] = (float(np.mean(variances)) if variances else None, len(variances))
        timed = [m["db_time_us"] for m in msgs if m["db_time_us"] is not None]
        p50, p99 = np.percentile(timed, [50, 99], method="linear") / 1000 if timed else (None, None)
        out[("latency_p50_ms", w, None)] = (p50, len(timed))
        out[("latency_p99_ms", w, None)] = (p99, len(timed))
    # overdue since the due time, or since the row's last write when that came later
    overdue = [max(due, updated) for _, due, updated in states.values() if due is not None and due <= now]
    out[("decay_lag_s", None, None)] = ((now - min(overdue)).total_seconds() if overdue else 0.0, None)
    horizons = [h for (h,) in conn.execute("select horizon from bayes.retention_run where status = 'done'")]
    behind = max(horizons) if horizons else (events[0]["occurred_at"] if events else None)
    lag = (now - dt.timedelta(days=prm["event_retention_days"]) - behind).total_seconds() if behind else None
    out[("retention_lag_s", None, None)] = (max(lag, 0.0) if lag is not None else None, None)
    # the newest health_agreement_pairs pairs answered in the agreement window
    since = now - dt.timedelta(hours=prm["health_agreement_window_h"])
    by_key = {(e["user_id"], e["message_id"]): e for e in events if e["kind"] == "message"}
    pairs = []
    for answer in reversed(events):
        if answer["kind"] != "llm_scores" or answer["recorded_at"] < since or answer["message_id"] is None:
            continue
        message = by_key.get((answer["user_id"], answer["message_id"]))
        if message is None:
            continue
        if message["player_mode"] == "shadow":
            sample = "shadow"
        elif message["fallback_reason"] == "audit" and message["fallback_needed"]:
            sample = "audit"
        else:
            continue
        pairs.append((sample, (answer["user_id"], answer["message_id"])))
        if len(pairs) == prm["health_agreement_pairs"]:
            break
    lexicon = prm["lexicon"]
    for sample in ("shadow", "audit"):
        hits = []
        for s, key in pairs:
            if s != sample:
                continue
            obs = encoder.encode_message(traffic.texts[key], None, None, None, 600.0, 28800.0, lexicon)
            deltas = traffic.deltas[key]
            for k, name in enumerate(METRICS):
                hits.append(np.sign(obs.plus[k] - obs.minus[k]) == np.sign(deltas.get(name, 0)))
        value = float(np.mean(hits)) if hits else None
        out[("shadow_agreement", int(prm["health_agreement_window_h"] * 3600), sample)] = (value, len(hits) // 4)
    return out


def db_params(conn) -> dict:
    snapshot = conn.execute("select bayes.params_snapshot()").fetchone()[0]
    prm = params.Params.from_snapshot(snapshot)
    values = dict(conn.execute("select name, (value #>> '{}') from bayes.params where name ~ '^(health|event_)'"))
    return {
        "event_retention_days": float(values["event_retention_days"]),
        "cold_start_messages": prm.g["cold_start_messages"],
        "health_agreement_window_h": float(values["health_agreement_window_h"]),
        "health_agreement_pairs": int(float(values["health_agreement_pairs"])),
        "windows": [int(float(values["health_window_short_s"])), int(float(values["health_window_long_s"]))],
        "lexicon": params.lexicon_of(prm),
    }


def record(conn) -> tuple[int | None, dt.datetime]:
    """bayes.record_health() in a transaction of its own (committed: its NOTIFYs are sent); its result and now()."""
    with conn.transaction():
        changes, now = conn.execute("select bayes.record_health(), now()").fetchone()
    return changes, now


def notifications(listener, count: int) -> list[dict]:
    """The next `count` NOTIFYs on bayes_health, then whatever else arrives within half a second (nothing)."""
    got = [json.loads(n.payload) for n in listener.notifies(timeout=10, stop_after=count)] if count else []
    got += [json.loads(n.payload) for n in listener.notifies(timeout=0.5)]
    for n in got:
        n["changed_at"] = dt.datetime.fromisoformat(n["changed_at"])
    return got


def snapshot(conn, taken_at) -> dict:
    return rows_by_key(dict_rows(conn.execute("select * from bayes.health_snapshot where taken_at = %s", (taken_at,))))


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------


def test_the_texts_are_what_they_say(db):
    lexicon = db_params(db)["lexicon"]
    for text in FEATURE_TEXTS:
        assert encoder.encode_message(text, None, None, None, 600.0, 28800.0, lexicon).features, text
    for text in NO_SIGNAL_TEXTS:
        assert not encoder.encode_message(text, None, None, None, 600.0, 28800.0, lexicon).features, text


def test_the_migrations_schedule_the_snapshot_job_every_minute(health_db):
    jobs = {job[0]: job[1:] for job in health_db.jobs_after_migrations}
    assert jobs["bayes-record-health"] == ("* * * * *", "select bayes.record_health()", True)


def test_schedule_health_replaces_the_one_job(db):
    with db.transaction(force_rollback=True):
        first = db.execute("select bayes.schedule_health('*/5 * * * *')").fetchone()[0]
        second = db.execute("select bayes.schedule_health('17 * * * *')").fetchone()[0]
        jobs = db.execute("select jobid, schedule, command from cron.job where jobname = 'bayes-record-health'")
        assert jobs.fetchall() == [(second, "17 * * * *", "select bayes.record_health()")]
        assert first == second
        default = db.execute("select bayes.schedule_health()").fetchone()[0]
        assert db.execute("select jobid, schedule from cron.job where jobname = 'bayes-record-health'").fetchall() == [
            (default, "* * * * *")
        ]
    with pytest.raises(errors.NullValueNotAllowed, match="p_schedule"):
        db.execute("select bayes.schedule_health(null)")


def check_changes_and_notifications(db, listener, previous_at, taken_at, changes) -> list[dict]:
    """The snapshot taken at `taken_at` against the one at `previous_at`: each signal whose status differs (from ok
    when it had none) has exactly one row in bayes.health_change and one NOTIFY, with its payload; no other."""
    now = snapshot(db, taken_at)
    before = snapshot(db, previous_at) if previous_at else {}
    want = [
        {
            "signal": key[0],
            "window_s": key[1],
            "label": key[2],
            "from": before[key]["status"] if key in before else "ok",
            "to": row["status"],
            "value": row["value"],
            "samples": row["samples"],
            "changed_at": taken_at,
        }
        for key, row in now.items()
        if row["status"] != (before[key]["status"] if key in before else "ok")
    ]
    recorded = [
        {
            "signal": c["signal"],
            "window_s": c["window_s"],
            "label": c["label"],
            "from": c["status_from"],
            "to": c["status_to"],
            "value": c["value"],
            "samples": c["samples"],
            "changed_at": c["changed_at"],
        }
        for c in dict_rows(db.execute("select * from bayes.health_change where changed_at = %s", (taken_at,)))
    ]
    heard = notifications(listener, changes)

    def order(rows):
        return sorted(rows, key=lambda r: (r["signal"], r["window_s"] or 0, r["label"] or ""))

    assert changes == len(want)
    assert order(recorded) == order(want)
    assert order(heard) == order(want)
    return want


def test_no_signal_share_goes_ok_warn_critical_ok_with_one_notification_per_change(db, listener):
    players = [new_player(db) for _ in range(4)]
    traffic = Traffic(db)
    thresholds = dict(db.execute("select signal, array[warn, critical] from bayes.health_threshold").fetchall())
    warn, critical = thresholds["no_signal_share"]
    windows = db_params(db)["windows"]

    # an empty log: every signal ok, nothing to announce
    changes, first = record(db)
    assert changes == 0
    assert {r["status"] for r in snapshot(db, first).values()} == {"ok"}
    check_changes_and_notifications(db, listener, None, first, changes)

    steps = [  # (texts, count, the status of no_signal_share after the step)
        (FEATURE_TEXTS, 24, "ok"),  # 0/24
        (NO_SIGNAL_TEXTS, 8, "warn"),  # 8/32 = 0.25
        (NO_SIGNAL_TEXTS, 16, "critical"),  # 24/48 = 0.5
        (FEATURE_TEXTS, 80, "ok"),  # 24/128 = 0.1875
    ]
    sent = no_signal = 0
    previous = first
    statuses = ["ok"]
    for texts, count, status in steps:
        round_robin(traffic, players, texts, count)
        sent += count
        no_signal += count if texts is NO_SIGNAL_TEXTS else 0
        share = no_signal / sent
        assert status == ("critical" if share > critical else "warn" if share > warn else "ok")
        changes, taken_at = record(db)
        got = snapshot(db, taken_at)
        for w in windows:
            row = got[("no_signal_share", w, None)]
            assert (row["value"], row["samples"], row["status"]) == (share, sent, status)
        announced = check_changes_and_notifications(db, listener, previous, taken_at, changes)
        no_signal_changes = [a for a in announced if a["signal"] == "no_signal_share"]
        if status == statuses[-1]:
            assert no_signal_changes == []
        else:
            assert sorted((a["window_s"], a["from"], a["to"]) for a in no_signal_changes) == [
                (w, statuses[-1], status) for w in sorted(windows)
            ]
        statuses.append(status)
        previous = taken_at
    assert statuses == ["ok", "ok", "warn", "critical", "ok"]
    assert sum(1 for r in traffic.results if r["observations"] == 0) == no_signal

    # nothing sent since: nothing changes, nothing is announced
    changes, taken_at = record(db)
    assert changes == 0
    assert check_changes_and_notifications(db, listener, previous, taken_at, changes) == []


@pytest.fixture
def mixed_traffic(db) -> Traffic:
    """Committed traffic of every kind: shadow players whose every message the LLM answers, bayes players (half the
    rollout, every rule audited: audit_rate 1) whose granted messages it answers, a player who wrote 100 days ago
    (older than the event log's retention) and one who wrote 3 days ago (overdue for the bulk decay)."""
    rnd = random.Random(16)
    db.execute("update bayes.rollout set bayes_percent = 50")
    db.execute("update bayes.params set value = '1' where name = 'audit_rate'")
    traffic = Traffic(db)
    now = db.execute("select now()").fetchone()[0]
    ancient = player_in(db, "shadow", 50)
    for k in range(3):
        traffic.send(ancient, FEATURE_TEXTS[k], now - dt.timedelta(days=100, hours=-k))
    absent = player_in(db, "bayes", 50)
    for k in range(12):
        traffic.send(absent, FEATURE_TEXTS[k % len(FEATURE_TEXTS)], now - dt.timedelta(days=3, hours=12 - k))
    shadow = [player_in(db, "shadow", 50) for _ in range(3)]
    bayes = [player_in(db, "bayes", 50) for _ in range(3)]
    texts = FEATURE_TEXTS + NO_SIGNAL_TEXTS
    for _ in range(25):
        for user_id in shadow + bayes:
            result = traffic.send(user_id, texts[rnd.randrange(len(texts))])
            assert result["mode"] == ("shadow" if user_id in shadow else "bayes")
            if result["mode"] == "shadow" or result["fallback"]["needed"]:
                traffic.answer(user_id, result["message_id"], llm_deltas(rnd))
    reasons = {(r["fallback"]["reason"], r["fallback"]["needed"]) for r in traffic.results if r["mode"] == "bayes"}
    assert {("audit", True), ("audit", False), ("no_signals", False), ("cold_start", True)} <= reasons
    return traffic


def check_health(conn, traffic, windows=None) -> dict:
    """bayes.health(windows) against the computation here, row by row; the rows."""
    prm = db_params(conn)
    sizes_before = {r: relation_bytes(conn, r) for r in ("bayes.player_event", "bayes.event_result")}
    state_before = relation_bytes(conn, "public.user_bayesian_state")
    now, got = health_now(conn, windows)
    sizes_after = {r: relation_bytes(conn, r) for r in ("bayes.player_event", "bayes.event_result")}
    state_after = relation_bytes(conn, "public.user_bayesian_state")
    want = expected_signals(conn, now, windows or prm["windows"], traffic, prm)
    thresholds = {
        t["signal"]: t for t in dict_rows(conn.execute("select * from bayes.health_threshold order by signal"))
    }
    # the sizes move only if autovacuum adds a map between the two readings
    assert got[("event_log_bytes", None, None)]["value"] in {sum(sizes_before.values()), sum(sizes_after.values())}
    assert got[("state_table_bytes", None, None)]["value"] in {state_before, state_after}
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
        assert (row["warn"], row["critical"], row["unit"]) == (t["warn"], t["critical"], t["unit"])
        assert row["status"] == status_of(
            row["value"], row["samples"], t["warn"], t["critical"], t["direction"], t["min_samples"]
        ), key
    return got


def test_every_signal_equals_its_computation_from_the_raw_rows(db, mixed_traffic):
    got = check_health(db, mixed_traffic)
    w = db_params(db)["windows"][0]
    # what the traffic was made to show
    assert got[("decay_lag_s", None, None)]["value"] > 0
    assert got[("retention_lag_s", None, None)]["value"] > 9 * 86400
    assert got[("shadow_agreement", 86400, "shadow")]["samples"] > 50
    assert got[("shadow_agreement", 86400, "audit")]["samples"] > 0
    assert 0 < got[("llm_budget_exhaustion", w, None)]["value"] < 1
    assert 0 < got[("no_signal_share", w, None)]["value"] < 1
    assert got[("latency_p99_ms", w, None)]["value"] > got[("latency_p50_ms", w, None)]["value"] > 0
    # other windows, asked for
    check_health(db, mixed_traffic, [60, 7 * 86400])
    # the bulk decay and the retention of the event log catch up: lags from their runs
    decay_runs.run_decay(db, None)
    retention_runs.run_retention(db, None)
    got = check_health(db, mixed_traffic)
    assert got[("decay_lag_s", None, None)]["value"] == 0
    assert 0 < got[("retention_lag_s", None, None)]["value"] < 600


def test_shadow_agreement_reads_the_newest_pairs_of_its_window(db, mixed_traffic):
    with db.transaction(force_rollback=True):
        # a bayes player's answered cold start: the newest answers, none of them a pair
        rnd = random.Random(3)
        newcomer = player_in(db, "bayes", 50)
        for k in range(6):
            result = mixed_traffic.send(newcomer, FEATURE_TEXTS[k % len(FEATURE_TEXTS)])
            assert result["fallback"]["reason"] == "cold_start"
            mixed_traffic.answer(newcomer, result["message_id"], llm_deltas(rnd))
        db.execute("update bayes.params set value = '9' where name = 'health_agreement_pairs'")
        got = check_health(db, mixed_traffic)
        assert sum(got[("shadow_agreement", 86400, s)]["samples"] for s in ("shadow", "audit")) == 9
        db.execute("update bayes.params set value = '0' where name = 'health_agreement_window_h'")
        got = check_health(db, mixed_traffic)
        assert [got[("shadow_agreement", 0, s)]["samples"] for s in ("shadow", "audit")] == [0, 0]


def signal_row(conn, signal: str, window_s=-1, label=None) -> dict:
    """One row of bayes.health(): window_s -1 means the short window."""
    now, got = health_now(conn)
    if window_s == -1:
        window_s = db_params(conn)["windows"][0]
    return got[(signal, window_s, label)]


def test_the_thresholds_are_rows_an_update_changes_at_the_next_call(db):
    players = [new_player(db) for _ in range(3)]
    traffic = Traffic(db)
    round_robin(traffic, players, FEATURE_TEXTS, 21)
    round_robin(traffic, players, NO_SIGNAL_TEXTS, 9)  # 9/30 = 0.3: warn
    row = signal_row(db, "no_signal_share")
    assert (row["value"], row["samples"], row["status"]) == (0.3, 30, "warn")
    with db.transaction(force_rollback=True):
        db.execute("update bayes.health_threshold set critical = 0.25 where signal = 'no_signal_share'")
        assert (signal_row(db, "no_signal_share")["status"], signal_row(db, "no_signal_share")["critical"]) == (
            "critical",
            0.25,
        )
        db.execute("update bayes.health_threshold set warn = 0.3, critical = 0.5 where signal = 'no_signal_share'")
        assert signal_row(db, "no_signal_share")["status"] == "ok"  # beyond means strictly beyond
        db.execute("update bayes.health_threshold set warn = null, critical = null where signal = 'no_signal_share'")
        assert signal_row(db, "no_signal_share")["status"] == "ok"  # a null threshold never fires
        # min_samples: the share of fewer messages than this is ok, whatever its value
        db.execute(
            "update bayes.health_threshold set warn = 0.1, critical = 0.2, min_samples = 31"
            " where signal = 'no_signal_share'"
        )
        assert signal_row(db, "no_signal_share")["status"] == "ok"
        db.execute("update bayes.health_threshold set min_samples = 30 where signal = 'no_signal_share'")
        assert signal_row(db, "no_signal_share")["status"] == "critical"
        # a signal without thresholds gets some
        db.execute("update bayes.health_threshold set warn = 0 where signal = 'messages_per_second'")
        assert signal_row(db, "messages_per_second")["status"] == "warn"
    assert signal_row(db, "no_signal_share")["status"] == "warn"


def test_a_below_threshold_fires_below(db):
    """shadow_agreement pages when the engine agrees with the LLM too little."""
    rnd = random.Random(7)
    traffic = Traffic(db)
    players = [new_player(db) for _ in range(2)]  # the migrations' rollout: shadow
    for k in range(30):
        result = traffic.send(players[k % 2], FEATURE_TEXTS[k % len(FEATURE_TEXTS)])
        traffic.answer(players[k % 2], result["message_id"], llm_deltas(rnd))
    got = check_health(db, traffic)
    row = got[("shadow_agreement", 86400, "shadow")]
    value = row["value"]
    assert row["samples"] == 30 and 0 < value < 1
    with db.transaction(force_rollback=True):
        db.execute("update bayes.health_threshold set min_samples = 30 where signal = 'shadow_agreement'")
        for warn, critical, status in [
            (value, value - 0.1, "ok"),  # not below
            (value + 0.01, value - 0.1, "warn"),
            (value + 0.2, value + 0.01, "critical"),
            (value - 0.2, value - 0.3, "ok"),
        ]:
            db.execute(
                "update bayes.health_threshold set warn = %s, critical = %s where signal = 'shadow_agreement'",
                (warn, critical),
            )
            assert signal_row(db, "shadow_agreement", 86400, "shadow")["status"] == status, (warn, critical)
        db.execute("update bayes.health_threshold set min_samples = 31 where signal = 'shadow_agreement'")
        assert signal_row(db, "shadow_agreement", 86400, "shadow")["status"] == "ok"


@pytest.mark.parametrize(
    ("change", "constraint"),
    [
        ("warn = 0.5, critical = 0.4", "health_threshold_ordered"),  # above: warn after critical
        ("direction = 'below', warn = 0.2, critical = 0.4", "health_threshold_ordered"),
        ("direction = 'sideways'", "health_threshold_direction_known"),
        ("min_samples = -1", "health_threshold_min_samples_nonnegative"),
        ("warn = 'NaN'", "health_threshold_finite"),
        ("critical = 'Infinity'", "health_threshold_finite"),
        ("signal = 'No Signal'", "health_threshold_signal_name"),
        ("label_name = 'Reason!'", "health_threshold_label_name"),
    ],
)
def test_an_invalid_threshold_row_is_refused(db, change, constraint):
    with pytest.raises(errors.CheckViolation, match=constraint):
        db.execute(f"update bayes.health_threshold set {change} where signal = 'no_signal_share'")
    with pytest.raises(errors.NotNullViolation):
        db.execute("insert into bayes.health_threshold (signal, description) values ('new_signal', 'no unit')")


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("health_window_short_s", "5", "must be in \\[10, 604800\\]"),
        ("health_window_long_s", "604801", "must be in \\[10, 604800\\]"),
        ("health_window_short_s", '"300"', "must be a number"),
        ("health_agreement_window_h", "-1", "must be in \\[0, 87600\\]"),
        ("health_agreement_pairs", "0", "must be in \\[1, 1000000000\\]"),
        ("health_snapshot_retention_days", "0", "must be in \\[1, 36500\\]"),
        ("health_snapshot_retention_days", "null", "health_snapshot_retention_days"),
    ],
)
def test_an_invalid_health_parameter_is_refused_with_22023(db, name, value, message):
    before = db.execute("select value from bayes.params where name = %s", (name,)).fetchone()
    with pytest.raises(errors.InvalidParameterValue, match=message):
        db.execute("update bayes.params set value = %s::jsonb where name = %s", (value, name))
    assert db.execute("select value from bayes.params where name = %s", (name,)).fetchone() == before


def alerts(conn) -> dict:
    return rows_by_key(dict_rows(conn.execute("select * from bayes.alerts()")))


def check_alerts_are_the_last_snapshot(conn, taken_at) -> dict:
    """bayes.alerts() lists exactly the signals of the last snapshot that are not ok, as it found them."""
    firing = alerts(conn)
    last = {k: r for k, r in snapshot(conn, taken_at).items() if r["status"] != "ok"}
    assert set(firing) == set(last)
    for key, row in firing.items():
        assert (row["status"], row["value"], row["samples"]) == (
            last[key]["status"],
            last[key]["value"],
            last[key]["samples"],
        )
    return firing


def test_alerts_say_what_fires_and_since_when(db):
    players = [new_player(db) for _ in range(4)]
    traffic = Traffic(db)
    windows = db_params(db)["windows"]
    _, first = record(db)
    assert alerts(db) == {}
    round_robin(traffic, players, FEATURE_TEXTS, 30)
    round_robin(traffic, players, NO_SIGNAL_TEXTS, 10)  # 10/40: warn
    _, warned = record(db)
    firing = check_alerts_are_the_last_snapshot(db, warned)
    for w in windows:
        row = firing[("no_signal_share", w, None)]
        assert (row["status"], row["firing_since"], row["status_since"]) == ("warn", warned, warned)
        assert (row["warn"], row["critical"]) == (0.2, 0.4)
    round_robin(traffic, players, FEATURE_TEXTS, 4)  # 10/44: still warn
    _, still = record(db)
    firing = check_alerts_are_the_last_snapshot(db, still)
    for w in windows:
        row = firing[("no_signal_share", w, None)]
        assert (row["status"], row["firing_since"], row["status_since"]) == ("warn", warned, warned)
    round_robin(traffic, players, NO_SIGNAL_TEXTS, 20)  # 30/64: critical
    _, critical = record(db)
    firing = check_alerts_are_the_last_snapshot(db, critical)
    for w in windows:
        row = firing[("no_signal_share", w, None)]
        assert (row["status"], row["firing_since"], row["status_since"]) == ("critical", warned, critical)
    # the critical ones first
    statuses = [row["status"] for row in dict_rows(db.execute("select * from bayes.alerts()"))]
    assert statuses == sorted(statuses, key=["critical", "warn"].index)
    round_robin(traffic, players, FEATURE_TEXTS, 100)  # 30/164: ok
    _, calm = record(db)
    firing = check_alerts_are_the_last_snapshot(db, calm)
    assert not any(key[0] == "no_signal_share" for key in firing)
    assert first < warned < still < critical < calm


def test_a_snapshot_under_way_makes_another_return_null_and_write_nothing(db, health_db, listener):
    players = [new_player(db) for _ in range(2)]
    round_robin(Traffic(db), players, NO_SIGNAL_TEXTS, 30)  # no_signal_share critical: a change to announce
    counts = "select (select count(*) from bayes.health_snapshot), (select count(*) from bayes.health_change)"
    with psycopg.connect(health_db.url, autocommit=True) as other:
        other.execute("select pg_advisory_lock(bayes.health_lock_key())")
        try:
            before = db.execute(counts).fetchone()
            changes, _ = record(db)
            assert changes is None
            assert db.execute(counts).fetchone() == before == (0, 0)
            assert notifications(listener, 0) == []
        finally:
            other.execute("select pg_advisory_unlock(bayes.health_lock_key())")
    changes, taken_at = record(db)
    assert changes > 0
    check_changes_and_notifications(db, listener, None, taken_at, changes)


def test_snapshots_and_changes_are_kept_health_snapshot_retention_days(db):
    # what record_health wrote at these ages (its snapshot of one signal, and the change it announced)
    old_rows = (
        "insert into bayes.health_snapshot (taken_at, signal, window_s, label, value, samples, status)"
        " values (now() - %(age)s::interval, 'no_signal_share', 300, null, 0.5, 40, 'critical')",
        "insert into bayes.health_change (changed_at, signal, window_s, label, status_from, status_to, value, samples)"
        " values (now() - %(age)s::interval, 'no_signal_share', 300, null, 'ok', 'critical', 0.5, 40)",
    )
    ages = ["8 days", "7 days 1 second", "6 days 23 hours", "1 hour"]
    kept_at = "select now() - {at} from bayes.{table} where signal = 'no_signal_share' and {at} < now() order by 1"

    def kept_after_a_snapshot(retention_days: str | None) -> dict:
        with db.transaction(force_rollback=True):
            if retention_days is not None:
                db.execute(
                    "update bayes.params set value = %s where name = 'health_snapshot_retention_days'",
                    (retention_days,),
                )
            for age in ages:
                for statement in old_rows:
                    db.execute(statement, {"age": age})
            record(db)
            return {
                table: [r[0] for r in db.execute(kept_at.format(table=table, at=at))]
                for table, at in (("health_snapshot", "taken_at"), ("health_change", "changed_at"))
            }

    week = [dt.timedelta(hours=1), dt.timedelta(days=6, hours=23)]
    assert kept_after_a_snapshot(None) == {"health_snapshot": week, "health_change": week}
    # the retention is a parameter
    day = [dt.timedelta(hours=1)]
    assert kept_after_a_snapshot("1") == {"health_snapshot": day, "health_change": day}


def test_windows_asked_for_are_checked_and_each_counted_once(db):
    players = [new_player(db) for _ in range(2)]
    round_robin(Traffic(db), players, FEATURE_TEXTS, 5)
    once = signal_row_in(db, [300], "messages_per_second", 300)
    assert once["samples"] == 5
    assert signal_row_in(db, [300, 300, 60], "messages_per_second", 300) == once
    for windows in ([0], [-300], [None], [300, None], [9], [604801]):
        with pytest.raises(errors.InvalidParameterValue, match="p_windows_s"):
            db.execute("select * from bayes.health(%s::integer[])", (windows,))
    # none asked for: the signals of the instant and the agreement of the last day only
    assert {key[1] for key in health_now(db, [])[1]} == {None, 86400}


def signal_row_in(conn, windows, signal, window_s, label=None) -> dict:
    return health_now(conn, windows)[1][(signal, window_s, label)]


def test_a_second_snapshot_in_the_same_transaction_records_and_announces_nothing(db, listener):
    players = [new_player(db) for _ in range(2)]
    round_robin(Traffic(db), players, NO_SIGNAL_TEXTS, 30)  # no_signal_share critical: changes to record
    with db.transaction():
        first = db.execute("select bayes.record_health()").fetchone()[0]
        second = db.execute("select bayes.record_health()").fetchone()[0]
        taken_at = db.execute("select now()").fetchone()[0]
    assert first > 0 and second == 0
    check_changes_and_notifications(db, listener, None, taken_at, first)
