"""The main job's demo runs against the stack and shows what it promises."""

from __future__ import annotations

import datetime as dt
import importlib.util
import os
import re
import struct
import subprocess
import sys
import time

import psycopg
import pytest
from bayes_dev.support import ROOT

pytestmark = pytest.mark.e2e

# One line per message: number, gap, message, composite [95%], ..., P(ready) (the boss readiness).
MESSAGE_LINE = re.compile(
    r"^\s+(?P<n>\d+)\s+(?P<gap>-|\d+[sd])  .{34}\s+(?P<c>\d+\.\d) \[(?P<lo>\d+\.\d), (?P<hi>\d+\.\d)\]"
    r".* P\(ready\) (?P<p>\d\.\d\d)$"
)
# One cell per player in the rows of the decay table.
CELL = re.compile(r"(\d+\.\d) \[(\d+\.\d), (\d+\.\d)\]  P\(ready\) (\d\.\d\d)( ready)?")
AWAY = re.compile(r"\(away: (\d+(?:\.\d)?) h of decay applied before this message\)")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_demo():
    spec = importlib.util.spec_from_file_location("demo", ROOT / "scripts" / "demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def png_written(path, started: float) -> tuple[int, int, int]:
    """A PNG file written by this run (signature, IHDR first, IEND last): its width, height and bytes."""
    assert path.stat().st_mtime >= started - 1
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    width, height = struct.unpack(">II", data[16:24])
    return width, height, len(data)


def section(out: str, start: str, end: str) -> list[str]:
    """The lines after the line starting with `start`, up to the next line starting with `end`."""
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines) if line.startswith(start))
    j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith(end))
    return lines[i + 1 : j]


def messages(lines: list[str]) -> list[dict]:
    found = []
    for line in lines:
        m = MESSAGE_LINE.match(line)
        if m:
            found.append({k: (v if k == "gap" else float(v)) for k, v in m.groupdict().items()})
    return found


FEATURE_ROWS_SQL = "select name, value from bayes.params where name like 'feature\\_%'"


@pytest.fixture(scope="module")
def before_demo(stack):
    """The feature_* rows and the rollout as the demo finds them."""
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        rows = dict(conn.execute(FEATURE_ROWS_SQL).fetchall())
        (percent,) = conn.execute("select bayes_percent::float8 from bayes.rollout").fetchone()
    return rows, percent


@pytest.fixture(scope="module")
def demo_run(stack, before_demo):
    started = time.time()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, env=os.environ, timeout=180
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning" not in proc.stderr, proc.stderr  # e.g. the demo could not keep pg_cron's decay out
    return proc.stdout, started


def test_demo_drives_real_rpcs(demo_run):
    out, _ = demo_run
    for name in ("ava", "ben", "cleo"):
        assert f"\n{name}  (player" in out
    assert "boss threshold 55" in out and "boss threshold 60" in out and "boss threshold 65" in out
    assert "ben's state: refused, 42501" in out
    assert "ben's boss readiness: refused, 42501" in out
    assert "writing her own state: refused, 42501" in out
    assert "anon key, ava's state: refused, 42501" in out
    assert '"duplicate": true' in out
    # the conversations: one line per message, with every quantity the main job promises
    sections = {
        "ava": ("ava, chapter 1", "ben, chapter 2", 16),
        "ben": ("ben, chapter 2", "cleo, chapter 3", 6),
        "cleo": ("cleo, chapter 3", "time passes", 5),
    }
    for start, end, count in sections.values():
        lines = section(out, start, end)
        found = messages(lines)
        assert [m["n"] for m in found] == list(range(1, count + 1)), lines
        assert all(m["lo"] <= m["c"] <= m["hi"] for m in found)
        assert all(" in " in line or "skip (p" in line for line in lines if MESSAGE_LINE.match(line))
    ben = section(out, "ben, chapter 2", "cleo, chapter 3")
    away = [float(h) for h in AWAY.findall("\n".join(ben))]
    assert away == [72 - 16]  # three days away, the chapter-2 grace of 16 h first
    assert "LLM consulted" in out
    for name, chapter, count in (("ava", 1, 16 + 8), ("ben", 2, 6), ("cleo", 3, 5)):
        assert f"\n{name}, chapter {chapter}\n" in out
        assert f"chapter {chapter}, messages {count}, row version" in out


def decay_table(out: str) -> tuple[list[str], dict[str, int], dict[int, dict[str, tuple]]]:
    lines = section(out, "time passes", "  fallback check")
    header = next(line for line in lines if line.lstrip().startswith("after"))
    names = re.findall(r"(\w+) \(ch\d, threshold \d+\)", header)
    thresholds = {n: int(t) for n, t in re.findall(r"(\w+) \(ch\d, threshold (\d+)\)", header)}
    rows = {}
    for line in lines:
        m = re.match(r"^\s+\+(\d+) h\s+(.*)$", line)
        if m:
            cells = CELL.findall(m.group(2))
            assert len(cells) == len(names), line
            rows[int(m.group(1))] = {
                n: (float(c), float(lo), float(hi), float(p), bool(ready))
                for n, (c, lo, hi, p, ready) in zip(names, cells)
            }
    return names, thresholds, rows


def test_readiness_falls_while_away_and_rises_when_she_returns(demo_run):
    out, _ = demo_run
    names, thresholds, rows = decay_table(out)
    assert names == ["ava", "ben", "cleo"] and thresholds == {"ava": 55, "ben": 60, "cleo": 65}
    steps = sorted(rows)
    assert steps == [0, 6, 12, 24, 48, 96]
    grace = {"ava": 8, "ben": 16, "cleo": 24}
    for name in names:
        series = [rows[h][name] for h in steps]
        for c, lo, hi, p, ready in series:
            assert lo <= c <= hi
            assert ready == (p >= 0.7)
        # absence never raises a mean, so never the composite
        assert all(b[0] <= a[0] for a, b in zip(series, series[1:])), (name, series)
        # nothing moves until the grace is over (a player exactly at the boundary is not decayed)
        for h in steps:
            if h <= grace[name]:
                assert rows[h][name] == rows[0][name], (name, h)

    # ava was ready for her boss when she left; every step past her grace lowers her readiness
    ava = [rows[h]["ava"] for h in steps]
    p_ava = [cell[3] for cell in ava]
    assert ava[0][4] and ava[0][0] >= thresholds["ava"]
    past_grace = [p for h, p in zip(steps, p_ava) if h > grace["ava"]]
    assert len(past_grace) >= 3 and all(b < a for a, b in zip(past_grace, past_grace[1:]))
    assert past_grace[0] < p_ava[0]
    assert not ava[-1][4] and p_ava[0] - p_ava[-1] >= 0.3
    composite_ava = [cell[0] for cell in ava]
    assert composite_ava[-1] < thresholds["ava"] <= composite_ava[0]

    # she comes back after the last decay instant: a few warm messages, and her readiness rises again
    back = section(out, "ava comes back", "states now")
    found = messages(back)
    assert [m["n"] for m in found] == list(range(17, 17 + len(found))) and len(found) >= 3
    assert found[0]["gap"] == "4d"
    # only the minutes since the last bulk decay instant are left for the lazy decay of her first message
    away = AWAY.findall("\n".join(back))
    assert len(away) == 1 and 0 < float(away[0]) < 1
    p_back = [m["p"] for m in found]
    assert p_back[0] <= p_ava[-1] + 0.05
    assert all(b > a for a, b in zip(p_back, p_back[1:])), p_back
    assert p_back[-1] >= 0.7 and p_back[-1] - p_ava[-1] >= 0.3
    assert found[-1]["c"] > thresholds["ava"] > composite_ava[-1]

    fallback = section(out, "  fallback check", "ava comes back")
    reason = re.compile(r"^\s+(\w+)\s+(cold_start|uncertain|bayesian_sufficient)\s+needed (true|false) ", re.M)
    reasons = {name: (why, needed) for name, why, needed in reason.findall("\n".join(fallback))}
    assert set(reasons) == {"ava", "ben", "cleo"}


def test_the_long_life_asks_the_llm_within_the_budget(demo_run):
    """dana's 200 messages: the cold start, then at most B + (messages after it) * B/W grants (MODEL.md v2
    section 7, B = 3, W = 100), against what v1's rules say of the same results."""
    out, _ = demo_run
    lines = section(out, "dana lives longer", "states now")
    table = dict(re.findall(r"^\s+(\d+-\d+|all)\s+(\d+)\s+\d+%", "\n".join(lines), re.M))
    assert list(table) == ["1-10", "11-20", "21-50", "51-100", "101-200", "all"], lines
    asked = {k: int(v) for k, v in table.items()}
    assert asked["all"] == sum(v for k, v in asked.items() if k != "all")
    assert asked["1-10"] >= 9  # the cold start: messages 1-9, always granted
    assert asked["all"] - 9 <= 3 + (200 - 9) * 3 / 100
    v1 = int(re.search(r"v1 would have asked on (\d+) of 200", "\n".join(lines)).group(1))
    assert v1 >= 4 * asked["all"]
    fired = re.search(r"rules that fired: (.+); budget left ([\d.]+)", "\n".join(lines))
    counts = {m[0]: (int(m[1]), int(m[2])) for m in re.findall(r"(\w+) (\d+) \(asked (\d+)\)", fired.group(1))}
    assert sum(n for n, _ in counts.values()) == 200 and sum(k for _, k in counts.values()) == asked["all"]
    assert counts["cold_start"] == (9, 9) and counts.get("bayesian_sufficient", (0, 0))[1] == 0
    assert 0 <= float(fired.group(2)) <= 3


def playbook(out: str) -> dict[str, str]:
    """The playbook round's text, step by step: {"1": ..., ..., "6": ...}."""
    lines = section(out, "the migration playbook, one short round", "plot: ")
    steps: dict[str, list[str]] = {}
    for line in lines:
        m = re.match(r"^(\d)\. ", line)
        if m:
            steps[m.group(1)] = []
        if steps:
            steps[list(steps)[-1]].append(line)
    return {k: "\n".join(v) for k, v in steps.items()}


def test_the_first_part_is_in_mode_bayes(demo_run):
    """Steps 1-5 follow fallback.needed, as a bayes-mode backend does: the demo says it sets the rollout to
    100% for them (the demo itself checks every result's mode), and puts it back at the end."""
    out, _ = demo_run
    m = re.search(r"^rollout: update bayes.rollout set bayes_percent = 100 \(it was (\d+(?:\.\d+)?)\)", out, re.M)
    assert m, out[:1000]
    assert out.index("rollout: update bayes.rollout") < out.index("\nava, chapter 1\n")
    found = re.search(r"psql> update bayes.rollout set bayes_percent = (\S+);\s+\(as the demo found it\)", out)
    assert found and float(found.group(1)) == float(m.group(1))


def test_the_playbook_round(demo_run, before_demo, db):
    """One round of docs/migration-playbook.md: the shadow cohort's figures agree with each other from step
    to step, the calibration is applied exactly when its verdict is better, the cohort's move shows in the
    next result's mode, and the demo leaves the weights and the rollout as it found them."""
    out, _ = demo_run
    demo = load_demo()
    players, per_player = len(demo.SHADOW_PLAYERS), demo.SHADOW_MESSAGES
    sent = players * per_player
    steps = playbook(out)
    assert list(steps) == ["1", "2", "3", "4", "5", "6"], list(steps)

    # 1. shadow: every result says mode shadow, and the backend reported an answer to every message
    m = re.search(r"results: mode shadow on (\d+) of (\d+) messages; LLM answers reported: (\d+)", steps["1"])
    assert m and int(m.group(1)) == int(m.group(2)) == int(m.group(3)) == sent, steps["1"]
    assert "update bayes.rollout set bayes_percent = 0;" in steps["1"]

    # 2. the report: one row per metric, mood and boss_ready, figures in their ranges
    m = re.search(r"the window holds the shadow messages of (\d+) players: the round's (\d+)", steps["2"])
    assert m and int(m.group(2)) == players, steps["2"]
    in_window = int(m.group(1))
    rows = {}
    for line in steps["2"].splitlines():
        cells = line.split()
        if len(cells) == 8 and cells[0] in ("shadow", "audit"):
            rows[(cells[0], cells[1])] = [None if c == "-" else float(c) for c in cells[2:]]
    metrics = ("intimacy", "passion", "trust", "secureness")
    assert [item for sample, item in rows if sample == "shadow"] == [*metrics, "mood", "boss_ready"], rows
    pairs = rows[("shadow", "intimacy")][0]
    for metric in metrics:
        n, corr, sign, mad, missed, agreement = rows[("shadow", metric)]
        assert n == pairs and agreement is None
        assert corr is None or -1 <= corr <= 1
        assert 0 <= sign <= 1 and mad >= 0 and 0 <= missed <= 1
    assert rows[("shadow", "mood")][0] == pairs  # the backend reported a mood with every answer
    assert 0 <= rows[("shadow", "mood")][5] <= 1
    ready_pairs, *_, ready_agreement = rows[("shadow", "boss_ready")]
    assert 0 <= ready_agreement <= 1

    # 3. evaluate: the buckets add up, the cold start is always asked, the budget bounds the rest
    buckets = dict(re.findall(r"^\s+(\d+-\d+|all)\s+(\d+)\s+\d+%$", steps["3"], re.M))
    assert list(buckets)[0] == "1-10" and list(buckets)[-1] == "all", steps["3"]
    calls = {k: int(v) for k, v in buckets.items()}
    assert calls["all"] == sum(v for k, v in calls.items() if k != "all")
    fid = re.search(
        r"over the (\d+) messages after message (\d+): boss-ready agreement (\d\.\d+) .*?"
        r"mean \|composite difference\| (\d+\.\d+) points",
        " ".join(steps["3"].split()),
    )
    assert fid, steps["3"]
    compared, after = int(fid.group(1)), int(fid.group(2))
    assert compared == ready_pairs  # the report's boss_ready row is this replay
    assert abs(float(fid.group(3)) - ready_agreement) <= 0.005 + 1e-9

    # 4. calibrate: every player of the window trained on or held out; applied exactly when better
    cal = re.search(
        r"Fitted on (\d+) messages of (\d+) players .*? evaluated on the (\d+) held-out players",
        " ".join(steps["4"].split()),
    )
    assert cal, steps["4"]
    training_pairs, training, held_out = map(int, cal.groups())
    assert training + held_out == in_window and training >= 1 and held_out >= 1
    table = {
        label: (float(a.rstrip("%")), float(b.rstrip("%")))
        for label, a, b in re.findall(
            r"^\s+(boss-ready agreement|mean \|composite difference\|)\s+(\S+)\s+(\S+)$", steps["4"], re.M
        )
    }
    assert set(table) == {"boss-ready agreement", "mean |composite difference|"}, steps["4"]
    verdict = re.search(r"verdict (\w+): (applied|not applied)", steps["4"])
    assert verdict, steps["4"]
    assert verdict.group(1) in ("better", "worse", "mixed", "same", "not_evaluated")
    assert (verdict.group(2) == "applied") == (verdict.group(1) == "better")
    (agree_before, agree_after), (mad_before, mad_after) = (
        table["boss-ready agreement"],
        table["mean |composite difference|"],
    )
    if verdict.group(1) == "better":
        assert mad_after <= mad_before and agree_after >= agree_before
    if verdict.group(1) == "worse":
        assert mad_after >= mad_before and agree_after <= agree_before
    if in_window == players:  # nobody else's shadow messages in the window: exact counts
        assert pairs == sent
        assert calls["1-10"] >= 9 * players  # the cold start: messages 1-9, always granted
        assert calls["all"] - calls["1-10"] <= players * (3 + (per_player - 9) * 3 / 100)
        assert compared == players * (per_player - after)
        assert training_pairs == training * per_player

    # 5. the cohort moved: the next message's result says mode bayes, and the backend follows fallback.needed
    m = re.search(
        r"(\w+)'s next message \(#(\d+)\): mode (\w+); fallback \w+, needed (true|false)"
        r" -> the backend (asks|does not ask)",
        steps["5"],
    )
    assert m, steps["5"]
    assert m.group(1) == demo.SHADOW_PLAYERS[0][1] and int(m.group(2)) == per_player + 1
    assert m.group(3) == "bayes"
    assert (m.group(4) == "true") == (m.group(5) == "asks")
    assert "update bayes.rollout set bayes_percent = 100;" in steps["5"]

    # 6. the rollback: the weights the demo found are back, and so is the rollout
    assert "update bayes.params as p set value = s.value from feature_rows_saved as s" in steps["6"]
    rows_before, percent_before = before_demo
    assert dict(db.execute(FEATURE_ROWS_SQL).fetchall()) == rows_before
    (percent,) = db.execute("select bayes_percent::float8 from bayes.rollout").fetchone()
    assert percent == percent_before
    assert percent == float(re.search(r"bayes_percent = (\S+);\s+\(as the demo found it\)", steps["6"]).group(1))


def test_demo_draws_the_png(demo_run):
    out, started = demo_run
    m = re.search(r"^plot: (.+\.png)$", out, re.M)
    assert m, out[-500:]
    path = ROOT / "out" / "demo_composite.png"
    assert m.group(1) == str(path)
    width, height, size = png_written(path, started)
    assert width >= 800 and height >= 600
    assert size > 30_000  # three panels of points, bands and lines, not an empty canvas


def test_demo_shows_the_health_of_its_traffic(demo_run, db):
    """The demo's snapshots are in bayes.health_snapshot and hold its traffic; its table has every main
    signal; it prints as many alert lines as it counts; its picture is a PNG written by this run."""
    out, started = demo_run
    lines = out[out.index("\nhealth of the engine during the demo") :].splitlines()[1:]
    demo = load_demo()
    sent = 16 + 8 + 6 + 5 + demo.LONG_LIFE[2] + len(demo.SHADOW_PLAYERS) * demo.SHADOW_MESSAGES + 1
    snapshot_line = re.compile(r"^    (\d\d:\d\d:\d\d) UTC  (.+?)\s+(\d+ changes of status|skipped: .*)$")
    snapshots = [snapshot_line.match(line) for line in lines[2:6]]
    assert all(snapshots), lines[:6]
    phases = [m.group(2) for m in snapshots]
    assert phases == [
        "before the demo's traffic",
        "after ava, ben and cleo",
        "after dana's 200 messages",
        "after the playbook round",
    ]
    # each snapshot the demo took is in the table, in the second it printed; the last one holds the demo's
    # messages (the duplicate is not one) in its hour's window
    day = dt.datetime.fromtimestamp(started, dt.UTC).date()
    for m in snapshots:
        if m.group(3).startswith("skipped"):
            continue  # the pg_cron job was taking that minute's snapshot at that very instant
        at = dt.datetime.combine(day, dt.time.fromisoformat(m.group(1)), dt.UTC)
        if at.timestamp() < started - 60:  # the demo ran across a UTC midnight
            at += dt.timedelta(days=1)
        found = db.execute(
            "select samples from bayes.health_snapshot where signal = 'messages_per_second'"
            " and window_s = 3600 and taken_at >= %s and taken_at < %s + interval '1 second'",
            (at, at),
        ).fetchall()
        assert found, m.group(0)  # (two snapshots of the demo can fall in one second)
        if m.group(2) == "after the playbook round":
            assert max(samples for (samples,) in found) >= sent

    table = lines[lines.index("  psql> select * from bayes.health();") + 1 :]
    names = {line.split()[0] for line in table[1:] if line.startswith("    ") and not line.startswith("     ")}
    for signal in (
        "fallback_rate",
        "no_signal_share",
        "posterior_variance",
        "latency_p50_ms",
        "latency_p99_ms",
        "messages_per_second",
        "llm_budget_exhaustion",
        "decay_lag_s",
        "retention_lag_s",
        "event_log_bytes",
        "state_table_bytes",
        "shadow_agreement{shadow}",
    ):
        assert signal in names, (signal, table[:25])
    start = next(k for k, line in enumerate(lines) if line.startswith("  psql> select * from bayes.alerts();"))
    count = int(re.search(r": (\d+)\)$", lines[start]).group(1))
    start += 1
    alerts = lines[start : start + count]
    assert all(re.match(r"^    (WARN|CRITICAL) +\w+", line) for line in alerts), alerts
    assert len(alerts) == count and not re.match(r"^    (WARN|CRITICAL) ", lines[start + count])

    m = re.search(r"^health plot: (\S+\.png)", out, re.M)
    path = ROOT / "out" / "demo_health.png"
    assert m and m.group(1) == str(path)
    width, height, size = png_written(path, started)
    assert width >= 1200 and height >= 1000 and size > 60_000  # ten panels, not an empty canvas


@pytest.mark.parametrize(
    "clock",
    [
        "00:00:30",
        "00:01:59",
        "02:59:00",
        "03:02:00",
        "03:05:00",
        "12:00:00",
        "22:59:59",
        "23:01:00",
        "23:30:00",
        "23:59:59",
    ],
)
def test_the_timeline_fits_utc_days_at_any_hour(clock):
    """The printed numbers do not depend on when the demo runs: the story ends a few minutes (at most about
    four hours) before now, inside the engine's time window, and no conversation straddles a UTC midnight
    (`steady` counts per UTC day)."""
    demo = load_demo()
    now = dt.datetime.fromisoformat(f"2026-11-20T{clock}+00:00")
    t0 = demo.anchor(now)
    for _, name, _ in demo.PLAYERS:
        times = demo.timeline(t0, demo.CONVERSATIONS[name])
        assert times[-1] == t0
        demo.check_utc_days(times)
        assert times[0] >= now - dt.timedelta(hours=720)  # max_message_age_h
    _, back = demo.return_timeline(t0)
    assert back[0] > t0 + dt.timedelta(hours=max(demo.DECAY_STEPS_H))
    # the whole story is in the past: no send time ahead of the database clock
    assert now - dt.timedelta(hours=4, minutes=3) <= back[-1] <= now - dt.timedelta(minutes=2)
