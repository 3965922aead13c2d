"""public.bayes_metrics on the test database: which Accept headers it takes,
and its exposition against the last snapshot of bayes.health, taken in the
same transaction (bayes.record_health), parsed by prometheus_client's own
parser (tests/e2e/test_metrics_api.py goes through PostgREST and the
gateway)."""

from __future__ import annotations

import json
import math

import psycopg
import pytest
from bayes_dev.prometheus import (
    HEALTH_SQL,
    METRIC_NAMES,
    PROMETHEUS_2_ACCEPT,
    PROMETHEUS_3_ACCEPT,
    SNAPSHOT_SQL,
    THRESHOLD_SQL,
    assert_exposition_is,
    parse,
)
from bayes_dev.support import new_player

pytestmark = pytest.mark.db

PROMETHEUS_2 = PROMETHEUS_2_ACCEPT
PROMETHEUS_3 = PROMETHEUS_3_ACCEPT
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "accepted"),
    [
        (None, True),
        ("", True),
        ("*/*", True),
        (PROMETHEUS_2, True),
        (PROMETHEUS_3, True),
        (BROWSER, True),
        ("text/plain", True),
        ("Text/Plain; charset=utf-8", True),
        ("text/*", True),
        ("text/plain;q=0.001", True),
        ("text/plain;version=0.0.4;q=0, text/plain;version=1.0.0;q=0.5", True),
        ("application/json", False),
        ("application/openmetrics-text;version=1.0.0", False),
        ("text/html", False),
        ("*/*;q=0", False),
        ("text/plain;q=0, */*", False),
        ("text/*;q=0, */*;q=1", False),
        ("text/plain;q=0.0", False),
    ],
)
def test_accept_headers_that_admit_text_plain(conn, accept, accepted):
    assert conn.execute("select bayes.prometheus_accepts(%s)", (accept,)).fetchone()[0] is accepted


def last_snapshot(conn):
    """The rows of the last snapshot, the thresholds and when the snapshot was taken: what the exposition says."""
    return (
        conn.execute(HEALTH_SQL).fetchall(),
        conn.execute(THRESHOLD_SQL).fetchall(),
        conn.execute(SNAPSHOT_SQL).fetchone()[0],
    )


def exposition_and_health(conn, headers: dict | None = None):
    """A snapshot of bayes.health now (in the test's transaction), the exposition, and what it must say."""
    conn.execute("select bayes.record_health()")
    if headers is not None:
        conn.execute("select set_config('request.headers', %s, true)", (json.dumps(headers),))
    text = conn.execute("select public.bayes_metrics()").fetchone()[0]
    health, thresholds, taken_at = last_snapshot(conn)
    # the snapshot is bayes.health at this transaction's now() (the sizes aside: autovacuum may add a map)
    sized = ("event_log_bytes", "state_table_bytes")
    now = conn.execute("select signal, window_s, label, value, status::text from bayes.health()").fetchall()
    assert {r for r in health if r[0] not in sized} == {r for r in now if r[0] not in sized}
    assert taken_at == conn.execute("select extract(epoch from now())::float8").fetchone()[0]
    return text, health, thresholds, taken_at


# Prometheus's conventions: base units, and the suffix that names them.
BASE_UNIT = {"ms": (0.001, "_seconds"), "s": (1, "_seconds"), "bytes": (1, "_bytes"), "share": (1, "_ratio")}


def test_every_signal_has_the_documented_metric_family(conn):
    assert dict(conn.execute("select signal, metric_name from bayes.health_threshold").fetchall()) == METRIC_NAMES


def test_metric_families_are_in_base_units_named_by_their_suffix(conn):
    for signal, name, scale, unit in conn.execute(
        "select signal, metric_name, metric_scale, unit from bayes.health_threshold"
    ).fetchall():
        factor, suffix = BASE_UNIT.get(unit, (1, ""))
        assert scale == factor, signal
        assert name.startswith("bayes_") and name.endswith(suffix), signal


def test_an_idle_engine_is_nan_where_health_is_null_zero_where_it_counts(conn):
    # no message in any window (rolled back with the test)
    conn.execute("delete from bayes.player_event")
    text, *snapshot = exposition_and_health(conn)
    samples = assert_exposition_is(text, *snapshot)
    assert math.isnan(samples[("bayes_fallback_ratio", frozenset({("window", "300")}))])
    assert math.isnan(samples[("bayes_message_db_time_p99_seconds", frozenset({("window", "3600")}))])
    assert samples[("bayes_messages_per_second", frozenset({("window", "300")}))] == 0
    assert samples[("bayes_health_status", frozenset({("signal", "fallback_rate"), ("window", "300")}))] == 0
    assert samples[("bayes_health_threshold", frozenset({("signal", "latency_p99_ms"), ("level", "warn")}))] == 0.001


def test_traffic_in_the_transaction_is_in_the_exposition(conn):
    user_id = new_player(conn)
    for i, text in enumerate(["ok", "hmm", "I love you, you make me so happy 😊", "k", "why?"] * 5):
        conn.execute(
            "select public.bayes_process_message(%s, %s, now() + make_interval(secs => %s), %s, 60)",
            (user_id, text, i, f"m{i}"),
        )
    text, *snapshot = exposition_and_health(conn, {"accept": PROMETHEUS_2})
    samples = assert_exposition_is(text, *snapshot)
    short = frozenset({("window", "300")})
    assert samples[("bayes_messages_per_second", short)] >= 25 / 300
    assert 0 < samples[("bayes_message_db_time_p50_seconds", short)] < 1
    assert 0 < samples[("bayes_fallback_ratio", short)] <= 1
    assert samples[("bayes_llm_granted_ratio", frozenset({("window", "300"), ("reason", "cold_start")}))] > 0
    assert conn.execute("select current_setting('response.headers')").fetchone()[0] == (
        '[{"Content-Type": "text/plain; version=0.0.4; charset=utf-8"}]'
    )


def test_help_text_is_escaped_as_the_format_requires(conn):
    description = 'Share of "the" messages \\ with a backslash,\na newline and\\nno escape'
    conn.execute("update bayes.health_threshold set description = %s where signal = 'fallback_rate'", (description,))
    text, *snapshot = exposition_and_health(conn)
    assert_exposition_is(text, *snapshot)
    families, _ = parse(text)
    assert families["bayes_fallback_ratio"] == ("gauge", description)
    assert '# HELP bayes_fallback_ratio Share of "the" messages \\\\ with a backslash,\\na newline and\\\\nno' in text


def test_an_accept_without_text_plain_is_refused_with_415(conn):
    conn.execute("select set_config('request.headers', %s, true)", (json.dumps({"accept": "application/json"}),))
    with pytest.raises(psycopg.Error) as raised:
        conn.execute("select public.bayes_metrics()")
    assert raised.value.sqlstate == "PT415"


def test_values_are_written_with_every_digit(conn):
    # a value of 17 significant digits survives, whatever the session's extra_float_digits
    conn.execute(
        "update bayes.health_threshold set warn = 0.12345678901234568, critical = 0.3 where signal = 'fallback_rate'"
    )
    conn.execute("select bayes.record_health()")
    conn.execute("set local extra_float_digits = 0")
    text = conn.execute("select public.bayes_metrics()").fetchone()[0]
    conn.execute("set local extra_float_digits = 1")  # psycopg reads floats as text too
    samples = assert_exposition_is(text, *last_snapshot(conn))
    assert samples[("bayes_health_threshold", frozenset({("signal", "fallback_rate"), ("level", "warn")}))] == (
        0.12345678901234568
    )
