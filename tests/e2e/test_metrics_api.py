"""GET /rest/v1/rpc/bayes_metrics through the gateway and PostgREST (issue 16,
item 4), with supabase-py's own HTTP session: the Prometheus text exposition
format 0.0.4 to a plain GET, to Prometheus's scrape Accept headers and to
Accept: text/plain; 415 to a client that takes no text/plain; service_role
only. The body is parsed by prometheus_client's parser and checked, exactly,
against the last snapshot of bayes.health (bayes.health_snapshot), taken
after real traffic while the test holds the snapshot's lock (the stack's
pg_cron job then takes none)."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from bayes_dev.prometheus import (
    HEALTH_SQL,
    PROMETHEUS_2_ACCEPT,
    PROMETHEUS_3_ACCEPT,
    SNAPSHOT_SQL,
    THRESHOLD_SQL,
    assert_exposition_is,
    parse,
)
from bayes_dev.support import new_player

pytestmark = pytest.mark.e2e

PATH = "/rpc/bayes_metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PROMETHEUS_2 = PROMETHEUS_2_ACCEPT
PROMETHEUS_3 = PROMETHEUS_3_ACCEPT
NO_ACCEPT = None
MESSAGES = [
    "I love talking to you, you make me feel safe and happy 😊",
    "ok",
    "thank you, I trust you so much",
    "k",
    "haha you always make me laugh",
    "hm",
]


@pytest.fixture(scope="module")
def traffic(stack, service):
    """Thirty messages of three players, a third of them without any signal, sent a moment ago."""
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        players = [new_player(conn) for _ in range(3)]
    now = dt.datetime.now(dt.UTC)
    for i in range(30):
        service.rpc(
            "bayes_process_message",
            {
                "p_user_id": str(players[i % 3]),
                "p_message": MESSAGES[i % len(MESSAGES)],
                "p_message_id": f"metrics-{i}",
                "p_sent_at": (now - dt.timedelta(seconds=60 - i)).isoformat(),
                "p_reply_gap_s": 45,
            },
        )
    return players


def get(client, accept: str | None):
    session = client.sb.postgrest.session
    request = session.build_request("GET", PATH.lstrip("/"))
    del request.headers["accept"]
    if accept is not None:
        request.headers["accept"] = accept
    return session.send(request)


@pytest.fixture
def snapshot(stack, traffic):
    """A snapshot of bayes.health after the traffic, and its lock held: the pg_cron job takes no other one
    meanwhile. Yields a function that reads what the exposition must say (the last snapshot)."""
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(bayes.health_lock_key())")
        try:
            assert conn.execute("select bayes.record_health()").fetchone()[0] is not None

            def last():
                return (
                    conn.execute(HEALTH_SQL).fetchall(),
                    conn.execute(THRESHOLD_SQL).fetchall(),
                    conn.execute(SNAPSHOT_SQL).fetchone()[0],
                )

            yield last
        finally:
            conn.execute("select pg_advisory_unlock(bayes.health_lock_key())")


@pytest.mark.parametrize(
    "accept",
    [NO_ACCEPT, "*/*", PROMETHEUS_2, PROMETHEUS_3, "text/plain"],
    ids=["no-accept", "any", "prometheus-2", "prometheus-3", "text-plain"],
)
def test_a_scrape_gets_the_text_format_0_0_4_with_the_last_snapshot(snapshot, service, accept):
    response = get(service, accept)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    samples = assert_exposition_is(response.text, *snapshot())
    families, _ = parse(response.text)
    assert all(kind == "gauge" for kind, _ in families.values())
    # the traffic is in it: messages, their time in the database, the LLM asked on the cold start
    short = frozenset({("window", "300")})
    assert samples[("bayes_messages_per_second", short)] >= 30 / 300
    assert 0 < samples[("bayes_message_db_time_p99_seconds", short)] < 1
    assert samples[("bayes_llm_granted_ratio", short | {("reason", "cold_start")})] > 0


@pytest.mark.parametrize("accept", ["application/json", "application/openmetrics-text;version=1.0.0", "text/html"])
def test_a_client_that_takes_no_text_plain_gets_415(traffic, service, accept):
    response = get(service, accept)
    assert response.status_code == 415
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["code"] == "PT415"
    assert body["message"] == "bayes_metrics answers text/plain only"


def test_only_the_service_role_reads_the_metrics(traffic, anon, player_client, service):
    assert get(anon, PROMETHEUS_2).status_code == 401
    player = get(player_client(traffic[0]), PROMETHEUS_2)
    assert player.status_code == 403
    assert player.json()["code"] == "42501"
    assert "bayes_" not in player.text.replace("bayes_metrics", "")
    assert get(service, PROMETHEUS_2).status_code == 200


def test_the_snapshot_is_health_when_it_was_taken(traffic, stack):
    with psycopg.connect(stack["DB_URL"]) as conn:
        # the job's snapshot, in this transaction (rolled back): bayes.health at its now()
        conn.execute("select bayes.record_health()")
        health = conn.execute("select signal, window_s, label, value, status::text from bayes.health()").fetchall()
        snapshot = conn.execute(HEALTH_SQL).fetchall()
        conn.execute("set local role service_role")
        text = conn.execute("select public.bayes_metrics()").fetchone()[0]
        samples = assert_exposition_is(
            text, snapshot, conn.execute(THRESHOLD_SQL).fetchall(), conn.execute(SNAPSHOT_SQL).fetchone()[0]
        )
        conn.rollback()
    sized = ("event_log_bytes", "state_table_bytes")
    assert {r for r in snapshot if r[0] not in sized} == {r for r in health if r[0] not in sized}
    short = frozenset({("window", "300")})
    assert samples[("bayes_messages_per_second", short)] >= 30 / 300
    assert 0 < samples[("bayes_posterior_variance", short)] < 0.25
    assert samples[("bayes_event_log_bytes", frozenset())] > 0
