"""GET /rest/v1/rpc/bayes_metrics through the gateway and PostgREST (issue 16,
item 4), with supabase-py's own HTTP session: the Prometheus text exposition
format 0.0.4 to a plain GET, to Prometheus's scrape Accept headers and to
Accept: text/plain; 415 to a client that takes no text/plain; service_role
only. The body is parsed by prometheus_client's parser and checked against
bayes.health() read just before and just after the request (its values move
with time: a window slides, a table grows), and exactly, in one repeatable
read transaction, after real traffic."""

from __future__ import annotations

import datetime as dt
import math

import psycopg
import pytest
from bayes_dev.prometheus import HEALTH_SQL, THRESHOLD_SQL, assert_exposition_is, expected, parse
from bayes_dev.support import new_player

pytestmark = pytest.mark.e2e

PATH = "/rpc/bayes_metrics"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# What Prometheus sends with its default scrape_protocols: 2.49 to 2.55 ...
PROMETHEUS_2 = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
# ... and 3.x (PrometheusText1.0.0 added, UTF-8 names allowed)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
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


def health_now(db):
    return db.execute(HEALTH_SQL).fetchall(), db.execute(THRESHOLD_SQL).fetchall()


def between(value: float, before: float, after: float) -> bool:
    if math.isnan(before) and math.isnan(after):
        return math.isnan(value)
    known = [v for v in (before, after) if not math.isnan(v)]
    return (math.isnan(value) and len(known) == 1) or min(known) <= value <= max(known)


@pytest.mark.parametrize(
    "accept",
    [NO_ACCEPT, "*/*", PROMETHEUS_2, PROMETHEUS_3, "text/plain"],
    ids=["no-accept", "any", "prometheus-2", "prometheus-3", "text-plain"],
)
def test_a_scrape_gets_the_text_format_0_0_4_with_the_signals_of_health(traffic, service, db, accept):
    before = health_now(db)
    response = get(service, accept)
    after = health_now(db)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == CONTENT_TYPE
    families, samples = parse(response.text)
    want_families, want_before = expected(*before)
    _, want_after = expected(*after)
    assert families.keys() == want_families.keys()
    assert all(kind == "gauge" for kind, _ in families.values())
    assert {name: help_text for name, (_, help_text) in want_families.items() if help_text} == {
        name: help_text for name, (_, help_text) in families.items() if name in want_families and want_families[name][1]
    }
    assert samples.keys() == want_before.keys() == want_after.keys()
    moved = {
        k: (v, want_before[k], want_after[k])
        for k, v in samples.items()
        if not between(v, want_before[k], want_after[k])
    }
    assert not moved, moved
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


def test_the_exposition_is_exactly_health_in_one_transaction(traffic, stack):
    with psycopg.connect(stack["DB_URL"]) as conn:
        conn.execute("set transaction isolation level repeatable read")
        conn.execute("set local role service_role")
        text = conn.execute("select public.bayes_metrics()").fetchone()[0]
        samples = assert_exposition_is(text, *health_now(conn))
        conn.rollback()
    short = frozenset({("window", "300")})
    assert samples[("bayes_messages_per_second", short)] >= 30 / 300
    assert 0 < samples[("bayes_posterior_variance", short)] < 0.25
    assert samples[("bayes_event_log_bytes", frozenset())] > 0
