"""The caller's DateStyle and TimeZone through the proxy (issue 17).

PL/Proxy sends arguments as text, written by the proxy's session: before the
proxy's functions pinned DateStyle ISO and TimeZone UTC, a session in
'SQL, DMY' sent 2026-11-03 as 03/11/2026, which the partition read as
March 11. Here a proxy session with another DateStyle and TimeZone gets the
answers a single-node session with the same settings gets (the same text: the
instants written with the caller's offset) and stores the instants it meant.
Each player sends a message a moment ago, then two of an earlier day whose
day-of-month could be a month (an older message changes no clock: the reads
do not depend on the instant they are made)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from zoneinfo import ZoneInfo

import psycopg
import pytest

pytestmark = pytest.mark.e2e

SESSIONS = [
    ("ISO, MDY", "UTC"),
    ("SQL, DMY", "UTC"),
    ("German", "UTC"),
    ("SQL, DMY", "Asia/Kolkata"),
    ("German", "America/New_York"),
    ("ISO, DMY", "America/New_York"),
    ("Postgres, DMY", "Asia/Kolkata"),
]


def swappable_day(now: dt.datetime) -> dt.date:
    """The latest day before today whose day of the month is also a month, and another one than its own."""
    day = now.date() - dt.timedelta(days=1)
    while day.day > 12 or day.day == day.month:
        day -= dt.timedelta(days=1)
    return day


def call(conn, fn: str, sql_args: str, args: tuple) -> dict:
    (text,) = conn.execute(f"select public.{fn}({sql_args})::text", args).fetchone()
    return json.loads(text)


@pytest.mark.parametrize(("datestyle", "timezone"), SESSIONS, ids=[f"{d} {t}" for d, t in SESSIONS])
def test_a_session_with_other_time_settings_gets_what_a_single_node_gives(stack, pstack, datestyle, timezone):
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    day = swappable_day(now)
    zone = ZoneInfo(timezone)
    recent = now - dt.timedelta(minutes=20)
    first = dt.datetime(day.year, day.month, day.day, 10, 0, tzinfo=dt.UTC)  # a typed argument
    local = f"{day.isoformat()} 10:05"  # a literal of the caller's own session: 10:05 in his time zone
    second = dt.datetime(day.year, day.month, day.day, 10, 5, tzinfo=zone)
    user_id = uuid.uuid4()
    answers = {}
    with (
        psycopg.connect(stack["DB_URL"], autocommit=True) as single,
        psycopg.connect(pstack["DB_URL"], autocommit=True) as proxy,
    ):
        single.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
        for side, conn in (("single", single), ("partitioned", proxy)):
            conn.execute(
                "select set_config('datestyle', %s, false), set_config('timezone', %s, false)", (datestyle, timezone)
            )
            written_day = conn.execute("select %s::timestamptz::text", (first,)).fetchone()[0]
            if timezone == "UTC" and datestyle in ("SQL, DMY", "German"):
                # the text this session writes for the instant is day first: read month first, another instant
                with psycopg.connect(stack["DB_URL"], autocommit=True) as iso:
                    iso.execute("set datestyle = 'ISO, MDY'")
                    misread = iso.execute("select %s::timestamptz", (written_day,)).fetchone()[0]
                assert misread != first, written_day
            answers[side] = [
                call(conn, "bayes_process_message", "%s, 'hey, how are you today?', %s, 'm1', null", (user_id, recent)),
                call(conn, "bayes_process_message", "%s, 'I missed you so much', %s, 'm2', 30", (user_id, first)),
                call(
                    conn, "bayes_process_message", "%s, 'tell me a secret', %s::timestamptz, 'm3', 45", (user_id, local)
                ),
                call(conn, "bayes_get_state", "%s", (user_id,)),
                call(conn, "bayes_boss_readiness", "%s", (user_id,)),
                call(conn, "bayes_fallback_check", "%s", (user_id,)),
            ]
        (i,) = proxy.execute("select hashtext(%s::text) & %s", (str(user_id), len(pstack["PARTITIONS"]) - 1)).fetchone()
        with psycopg.connect(pstack["PARTITIONS"][i], autocommit=True) as home:
            stored = {}
            for side, conn in (("single", single), ("partitioned", home)):
                conn.execute("select set_config('datestyle', 'ISO', false), set_config('timezone', 'UTC', false)")
                stored[side] = (
                    conn.execute(
                        "select state, version, last_message_at, decayed_at, updated_at"
                        " from public.user_bayesian_state where user_id = %s",
                        (user_id,),
                    ).fetchone(),
                    conn.execute(
                        "select message_id, occurred_at, input from bayes.player_event"
                        " where user_id = %s order by event_id",
                        (user_id,),
                    ).fetchall(),
                )
    # the same answers, written alike (offsets of the caller's zone), but for the instant of each side's own write
    for side in answers:
        state = answers[side][3]
        updated_at = dt.datetime.fromisoformat(state.pop("updated_at"))
        assert updated_at == stored[side][0][4]
        assert updated_at.utcoffset() == stored[side][0][4].astimezone(zone).utcoffset()
    assert answers["partitioned"] == answers["single"]
    assert dt.datetime.fromisoformat(answers["partitioned"][3]["last_message_at"]) == recent
    # the same stored instants: the ones the caller meant
    assert stored["partitioned"][0][:4] == stored["single"][0][:4]
    assert stored["partitioned"][1] == stored["single"][1]
    assert [occurred_at for _, occurred_at, _ in stored["partitioned"][1]] == [recent, first, second]
