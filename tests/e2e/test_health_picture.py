"""scripts/health on the test stack: real traffic through the API, snapshots recorded by
bayes.record_health, a PNG that is one, and a summary that says what bayes.alerts() says."""

from __future__ import annotations

import datetime as dt
import os
import re
import struct
import subprocess
import uuid

import psycopg
import pytest
from bayes_dev.support import ROOT, new_player
from PIL import Image

pytestmark = pytest.mark.e2e

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The test's own names of the windows, not the script's.
WINDOWS = {300: "5 min", 3600: "1 h", 86400: "24 h", None: "instant"}
ALERT = re.compile(
    r"^  (?P<status>CRITICAL|WARN)\s+(?P<signal>\w+)(?:\{(?P<label>\w+)\})? \((?P<window>[^)]+)\):"
    r" (?P<value>\S+(?: [a-zA-Z]+)?) (?P<sign>[<>]) (?P<level>warn|critical) (?P<threshold>\S+(?: [a-zA-Z]+)?)"
    r"(?:, (?P<samples>\d+) samples)?; firing since (?P<firing>[\d-]+ [\d:]+) UTC"
    r"(?:, (?P<again>warn|critical) since (?P<since>[\d-]+ [\d:]+) UTC)?$"
)
SCALES = {"%": 0.01, "ms": 1.0, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0, "/s": 1.0}
SCALES |= {"B": 1.0, "KiB": 2.0**10, "MiB": 2.0**20, "GiB": 2.0**30}


def quantity(text: str) -> tuple[float, float]:
    """A printed value and half the step of its last digit, in the signal's own unit (shares as fractions,
    lags in seconds): '20.4%' -> (0.204, 0.0005)."""
    m = re.fullmatch(r"(-?\d+(?:\.(\d+))?)\s?(%|/s|[a-zA-Z]+)?", text)
    assert m, text
    scale = SCALES[m.group(3)] if m.group(3) else 1.0
    decimals = len(m.group(2) or "")
    return float(m.group(1)) * scale, 0.5 * 10.0**-decimals * scale


def close(text: str, value: float) -> bool:
    printed, half_step = quantity(text)
    return abs(printed - value) <= half_step * (1 + 1e-9) + 1e-12


def utc_seconds(t: dt.datetime) -> str:
    return f"{t.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"


@pytest.fixture
def health_lock(stack):
    """A session that holds the snapshots' advisory lock: the pg_cron job's snapshot of every minute is
    skipped (bayes.record_health returns null) while the test records its own on this session."""
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(bayes.health_lock_key())")
        try:
            yield conn
        finally:
            conn.execute("select pg_advisory_unlock(bayes.health_lock_key())")


@pytest.fixture
def messages_per_second_warns(health_lock):
    """An operator's threshold: messages_per_second warns above 0 per second (it has no threshold by default),
    so that the test's own traffic fires an alert whatever the rest of the window holds. Put back after."""
    conn = health_lock
    (saved,) = conn.execute("select warn from bayes.health_threshold where signal = 'messages_per_second'").fetchone()
    conn.execute("update bayes.health_threshold set warn = 0 where signal = 'messages_per_second'")
    try:
        yield conn
    finally:
        conn.execute("update bayes.health_threshold set warn = %s where signal = 'messages_per_second'", (saved,))


def record(conn) -> dt.datetime:
    changes, taken_at = conn.execute("select bayes.record_health(), now()").fetchone()
    assert changes is not None  # this session holds the lock: the snapshot is ours
    return taken_at


def run_health(stack, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(ROOT / "scripts" / "health"), "--db-url", stack["DB_URL"], *args],
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
    )


def send(service, players: list[uuid.UUID], numbers: range, start: dt.datetime) -> None:
    """Messages of new players through supabase-py, message k sent k minutes after start: cold starts,
    interleaved."""
    for k in numbers:
        for user_id in players:
            service.rpc(
                "bayes_process_message",
                {
                    "p_user_id": str(user_id),
                    "p_message": "hey, how was your day? I missed you" if k % 2 else "ok",
                    "p_message_id": f"health-{k}",
                    "p_sent_at": (start + dt.timedelta(minutes=k)).isoformat(),
                    "p_reply_gap_s": 60,
                },
            )
            assert service.status == 200


def test_scripts_health_draws_real_snapshots_and_says_what_bayes_alerts_says(
    stack, service, messages_per_second_warns, tmp_path
):
    conn = messages_per_second_warns
    players = [new_player(conn) for _ in range(3)]
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=20)
    taken = [record(conn)]
    send(service, players, range(0, 8), start)
    taken.append(record(conn))
    send(service, players, range(8, 16), start)
    taken.append(record(conn))

    out = tmp_path / "health.png"
    proc = run_health(stack, "--since", taken[0].isoformat(), "--out", str(out))
    alerts = conn.execute(
        "select signal, window_s, label, status::text, value, samples, warn, critical, firing_since, status_since"
        " from bayes.alerts()"
    ).fetchall()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()

    # what it wrote: the three snapshots of this test, nothing else (the job's were skipped)
    port, first, last = conn.info.port, utc_seconds(taken[0]), utc_seconds(taken[-1])
    assert lines[0] == f"wrote {out}: 3 snapshots of 127.0.0.1:{port}/postgres, {first} to {last} UTC", lines[0]
    data = out.read_bytes()
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR" and data[-8:-4] == b"IEND"
    width, height = struct.unpack(">II", data[16:24])
    with Image.open(out) as image:
        image.verify()
        assert image.format == "PNG" and image.size == (width, height)
    assert width >= 1200 and height >= 1000
    assert len(data) > 60_000  # ten panels of lines, thresholds and markers, not an empty canvas

    # the summary: one line per row of bayes.alerts(), in its order, each saying what the row says
    assert lines[1] == f"firing at the last snapshot (bayes.alerts()): {len(alerts) or 'nothing'}"
    printed = [ALERT.match(line) for line in lines[2:]]
    assert all(printed) and len(printed) == len(alerts), proc.stdout
    for m, (signal, window_s, label, status, value, samples, warn, critical, firing, since) in zip(printed, alerts):
        assert (m["status"].lower(), m["signal"], m["label"], m["window"]) == (status, signal, label, WINDOWS[window_s])
        assert close(m["value"], value), (m["value"], value)
        assert m["level"] == status and close(m["threshold"], critical if status == "critical" else warn)
        assert m["sign"] == ("<" if warn is not None and critical is not None and critical < warn else ">")
        assert (int(m["samples"]) if m["samples"] else None) == samples
        assert m["firing"] == utc_seconds(firing)
        assert (m["since"] or m["firing"]) == utc_seconds(since) and m["again"] in (None, status)

    # the test's own traffic fired its alert: 48 messages in both windows, at least
    fired = {(a[0], a[1]): a for a in alerts}
    for window_s in (300, 3600):
        signal, _, _, status, value, samples, *_ = fired[("messages_per_second", window_s)]
        assert status == "warn" and samples >= 48 and value == pytest.approx(samples / window_s)


def test_scripts_health_says_when_there_is_nothing_to_draw(stack, db, tmp_path):
    db.execute("select bayes.record_health()")  # a snapshot exists (this one, or the job's of this instant)
    out = tmp_path / "nothing.png"
    later = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    proc = run_health(stack, "--since", later, "--out", str(out))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("health: no snapshot in ") and "(a longer --hours" in proc.stdout
    assert not out.exists()


def test_scripts_health_says_when_it_cannot_read_the_database(tmp_path):
    proc = subprocess.run(
        [str(ROOT / "scripts" / "health"), "--db-url", "postgresql://postgres@127.0.0.1:1/postgres"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "health: cannot read 127.0.0.1:1/postgres" in proc.stderr and "is the stack up?" in proc.stderr
