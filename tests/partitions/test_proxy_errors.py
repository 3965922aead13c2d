"""Errors through the proxy of the partitioned mode (issue 17) are the single
node's: for every RPC and every error of MODEL.md section 9 (and the others
the RPCs raise), the same bad call on both sides gives the same SQLSTATE,
message, detail and hint through SQL, and the same HTTP status and JSON body
through the API; nothing is written; a NULL player is refused at the proxy
before any partition is contacted; and the errors leave no trace in the
session (PL/Proxy's notices stay in the proxy).

The error-format contract verified here: the proxy raises a partition's
error with the partition's SQLSTATE, message, detail and hint exactly, no
prefix (PL/Proxy's "<function>(<n>): [<database>] REMOTE ERROR: ",
"Remote detail: " and "Remote hint: " are removed); the context differs (it
names the proxy's functions). The errors of the engine's Python keep their
"plpy.Error: " prefix, as on a single node."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import psycopg
import pytest
from bayes_dev.support import Client, act_as, player_jwt
from bayes_engine import model
from postgrest.exceptions import APIError
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.e2e

PLAYER = "<the player>"  # a player with a chapter-2 state on both sides
STRANGER = "<an unknown player>"  # an id without a state on either side (the single node: nor an auth.users row)


class Ahead:
    """A send time relative to the clock, taken once per case (the same argument on both sides)."""

    def __init__(self, **delta):
        self.delta = dt.timedelta(**delta)

    def at(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.delta


NAN, INF = float("nan"), float("inf")

# (id, rpc, arguments): PLAYER and STRANGER are replaced by ids, an Ahead by its instant.
CASES = [
    ("message: null player", "bayes_process_message", {"p_user_id": None, "p_message": "x"}),
    ("message: null text", "bayes_process_message", {"p_user_id": PLAYER, "p_message": None}),
    ("message: null time", "bayes_process_message", {"p_user_id": PLAYER, "p_message": "x", "p_sent_at": None}),
    ("message: over 64 KiB", "bayes_process_message", {"p_user_id": PLAYER, "p_message": "x" * 65537}),
    (
        "message: over 64 KiB of UTF-8",
        "bayes_process_message",
        {"p_user_id": PLAYER, "p_message": "\U0001f602" * 16385},
    ),
    ("message: NaN gap", "bayes_process_message", {"p_user_id": PLAYER, "p_message": "x", "p_reply_gap_s": NAN}),
    ("message: infinite gap", "bayes_process_message", {"p_user_id": PLAYER, "p_message": "x", "p_reply_gap_s": INF}),
    ("message: negative gap", "bayes_process_message", {"p_user_id": PLAYER, "p_message": "x", "p_reply_gap_s": -5}),
    (
        "message: negative gap of 17 digits",
        "bayes_process_message",
        {"p_user_id": PLAYER, "p_message": "x", "p_reply_gap_s": -1 / 3},
    ),
    (
        "message: infinite time",
        "bayes_process_message",
        {"p_user_id": PLAYER, "p_message": "x", "p_sent_at": "infinity"},
    ),
    (
        "message: minus infinity",
        "bayes_process_message",
        {"p_user_id": PLAYER, "p_message": "x", "p_sent_at": "-infinity"},
    ),
    (
        "message: year 3000",
        "bayes_process_message",
        {"p_user_id": PLAYER, "p_message": "x", "p_sent_at": "3000-01-01T00:00:00Z"},
    ),
    (
        "message: 6 min ahead",
        "bayes_process_message",
        {"p_user_id": PLAYER, "p_message": "x", "p_sent_at": Ahead(minutes=6)},
    ),
    (
        "message: 721 h ago",
        "bayes_process_message",
        {"p_user_id": PLAYER, "p_message": "x", "p_sent_at": Ahead(hours=-721)},
    ),
    (
        "message: 4713 BC",
        "bayes_process_message",
        {"p_user_id": PLAYER, "p_message": "x", "p_sent_at": "4713-01-01 00:00:00+00 BC"},
    ),
    ("message: empty id", "bayes_process_message", {"p_user_id": PLAYER, "p_message": "x", "p_message_id": ""}),
    ("message: long id", "bayes_process_message", {"p_user_id": PLAYER, "p_message": "x", "p_message_id": "i" * 201}),
    ("message: not a uuid", "bayes_process_message", {"p_user_id": "not-a-uuid", "p_message": "x"}),
    ("llm: null player", "bayes_apply_llm_scores", {"p_user_id": None, "p_deltas": {"trust": 1}}),
    ("llm: null deltas", "bayes_apply_llm_scores", {"p_user_id": PLAYER, "p_deltas": None}),
    ("llm: no deltas", "bayes_apply_llm_scores", {"p_user_id": PLAYER, "p_deltas": {}}),
    ("llm: deltas not an object", "bayes_apply_llm_scores", {"p_user_id": PLAYER, "p_deltas": [1, 2]}),
    ("llm: unknown metric", "bayes_apply_llm_scores", {"p_user_id": PLAYER, "p_deltas": {"charm": 2}}),
    ("llm: delta out of range", "bayes_apply_llm_scores", {"p_user_id": PLAYER, "p_deltas": {"trust": 10.01}}),
    ("llm: delta NaN", "bayes_apply_llm_scores", {"p_user_id": PLAYER, "p_deltas": {"trust": "NaN"}}),
    ("llm: delta not a number", "bayes_apply_llm_scores", {"p_user_id": PLAYER, "p_deltas": {"trust": [1]}}),
    (
        "llm: vices without a message",
        "bayes_apply_llm_scores",
        {"p_user_id": PLAYER, "p_deltas": {"trust": 1}, "p_vices": {"risk_taking": 0.5}},
    ),
    (
        "llm: unknown vice",
        "bayes_apply_llm_scores",
        {"p_user_id": PLAYER, "p_deltas": {"trust": 1}, "p_message_id": "m0", "p_vices": {"drinking": 0.5}},
    ),
    (
        "llm: vice weight out of range",
        "bayes_apply_llm_scores",
        {"p_user_id": PLAYER, "p_deltas": {"trust": 1}, "p_message_id": "m0", "p_vices": {"risk_taking": 1.5}},
    ),
    (
        "llm: vices not an object",
        "bayes_apply_llm_scores",
        {"p_user_id": PLAYER, "p_deltas": {"trust": 1}, "p_message_id": "m0", "p_vices": ["risk_taking"]},
    ),
    (
        "llm: unknown mood",
        "bayes_apply_llm_scores",
        {"p_user_id": PLAYER, "p_deltas": {"trust": 1}, "p_message_id": "m0", "p_mood": "grumpy"},
    ),
    (
        "llm: long id",
        "bayes_apply_llm_scores",
        {"p_user_id": PLAYER, "p_deltas": {"trust": 1}, "p_message_id": "i" * 201},
    ),
    ("llm: unknown player", "bayes_apply_llm_scores", {"p_user_id": STRANGER, "p_deltas": {"trust": 1}}),
    ("outcome: null player", "bayes_record_outcome", {"p_user_id": None, "p_decision": "skip", "p_engaged": True}),
    (
        "outcome: unknown decision",
        "bayes_record_outcome",
        {"p_user_id": PLAYER, "p_decision": "ignore", "p_engaged": True},
    ),
    ("outcome: null decision", "bayes_record_outcome", {"p_user_id": PLAYER, "p_decision": None, "p_engaged": True}),
    ("outcome: null engaged", "bayes_record_outcome", {"p_user_id": PLAYER, "p_decision": "skip", "p_engaged": None}),
    (
        "outcome: unknown player",
        "bayes_record_outcome",
        {"p_user_id": STRANGER, "p_decision": "skip", "p_engaged": True},
    ),
    ("chapter: null player", "bayes_advance_chapter", {"p_user_id": None, "p_chapter": 2}),
    ("chapter: 7", "bayes_advance_chapter", {"p_user_id": PLAYER, "p_chapter": 7}),
    ("chapter: 0", "bayes_advance_chapter", {"p_user_id": PLAYER, "p_chapter": 0}),
    ("chapter: backwards", "bayes_advance_chapter", {"p_user_id": PLAYER, "p_chapter": 1}),
    ("chapter: null", "bayes_advance_chapter", {"p_user_id": PLAYER, "p_chapter": None}),
    ("state: null player", "bayes_get_state", {"p_user_id": None}),
    ("state: unknown player", "bayes_get_state", {"p_user_id": STRANGER}),
    ("readiness: null player", "bayes_boss_readiness", {"p_user_id": None}),
    ("readiness: unknown method", "bayes_boss_readiness", {"p_user_id": PLAYER, "p_method": "bootstrap"}),
    ("readiness: null method", "bayes_boss_readiness", {"p_user_id": PLAYER, "p_method": None}),
    ("readiness: null player, bad method", "bayes_boss_readiness", {"p_user_id": None, "p_method": "bootstrap"}),
    ("readiness: unknown player", "bayes_boss_readiness", {"p_user_id": STRANGER}),
    ("fallback: null player", "bayes_fallback_check", {"p_user_id": None}),
    ("fallback: unknown player", "bayes_fallback_check", {"p_user_id": STRANGER}),
]

WRITERS = {
    "bayes_process_message": {"p_message": "hi"},
    "bayes_apply_llm_scores": {"p_deltas": {"trust": 1}},
    "bayes_record_outcome": {"p_decision": "skip", "p_engaged": True},
    "bayes_advance_chapter": {"p_chapter": 3},
}
READERS = {"bayes_get_state": {}, "bayes_boss_readiness": {}, "bayes_fallback_check": {}}

# The clock in the time window's refusals (bayes_engine.model.check_sent_at): the database's now() at the
# call, and the distance to it. Compared by their rule: the clock lies within the call, the distance is the
# distance from the send time to that clock.
CLOCK = re.compile(r"is (?P<distance>.+?) (?P<side>ahead of|before) the database clock \((?P<clock>[^)]+)\)")


class Sides:
    """The single node and the partitioned mode, through SQL (psycopg) and the API (supabase-py)."""

    def __init__(self, stack, pstack):
        self.db = psycopg.connect(stack["DB_URL"], autocommit=True)
        self.proxy = psycopg.connect(pstack["DB_URL"], autocommit=True)
        self.partitions = [psycopg.connect(url, autocommit=True) for url in pstack["PARTITIONS"]]
        self.stacks = {"single": stack, "partitioned": pstack}
        self.notices: dict[str, list] = {"single": [], "partitioned": []}
        self.db.add_notice_handler(lambda d: self.notices["single"].append(d.message_primary))
        self.proxy.add_notice_handler(lambda d: self.notices["partitioned"].append(d.message_primary))

    def conn(self, side: str) -> psycopg.Connection:
        return self.db if side == "single" else self.proxy

    def home(self, user_id) -> psycopg.Connection:
        (i,) = self.proxy.execute("select hashtext(%s::text) & %s", (str(user_id), len(self.partitions) - 1)).fetchone()
        return self.partitions[i]

    def client(self, side: str, who: str, user_id=None) -> Client:
        env = self.stacks[side]
        if who == "service":
            return Client(env["API_URL"], env["SERVICE_ROLE_KEY"])
        if who == "anon":
            return Client(env["API_URL"], env["ANON_KEY"])
        return Client(env["API_URL"], env["ANON_KEY"], bearer=player_jwt(env["JWT_SECRET"], user_id))

    def close(self) -> None:
        for conn in (self.db, self.proxy, *self.partitions):
            conn.close()


@pytest.fixture(scope="module")
def sides(stack, pstack):
    s = Sides(stack, pstack)
    yield s
    s.close()


def written(sides: Sides, user_id) -> tuple:
    """What each side holds of the player: his row and his events (single node, then his partition)."""
    read = (
        "select (select to_jsonb(s) from public.user_bayesian_state as s where s.user_id = %(u)s),"
        " (select count(*) from bayes.player_event where user_id = %(u)s),"
        " (select max(event_id) from bayes.player_event where user_id = %(u)s)"
    )
    return sides.db.execute(read, {"u": user_id}).fetchone(), sides.home(user_id).execute(
        read, {"u": user_id}
    ).fetchone()


@pytest.fixture(scope="module")
def player(sides) -> uuid.UUID:
    """A player with a chapter-2 state and a message m0 on both sides (an auth.users row on the single node)."""
    user_id = uuid.uuid4()
    sides.db.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)
    for conn in (sides.db, sides.proxy):
        conn.execute(
            "select public.bayes_process_message(%s, 'hello there, how are you?', %s, 'm0')", (user_id, sent_at)
        )
        conn.execute("select public.bayes_advance_chapter(%s, 2)", (user_id,))
    return user_id


def bind(args: dict, player: uuid.UUID, stranger: uuid.UUID) -> dict:
    out = {}
    for name, value in args.items():
        if value == PLAYER:
            value = player
        elif value == STRANGER:
            value = stranger
        elif isinstance(value, Ahead):
            value = value.at()
        out[name] = value
    return out


def sql_error(conn: psycopg.Connection, fn: str, args: dict, role: str | None = None, sub=None) -> dict:
    """The error of public.<fn>(named arguments) on conn, as role (with the JWT claims PostgREST would set)."""
    named = ", ".join(f"{name} => %({name})s{'::timestamptz' if name == 'p_sent_at' else ''}" for name in args)
    values = {name: Jsonb(v) if isinstance(v, dict | list) else v for name, v in args.items()}
    try:
        with conn.transaction():
            if role:
                act_as(conn, role, sub)
            conn.execute(f"select public.{fn}({named})", values)
    except psycopg.Error as exc:
        d = exc.diag
        return {
            "sqlstate": d.sqlstate,
            "message": d.message_primary,
            "detail": d.message_detail,
            "hint": d.message_hint,
        }
    pytest.fail(f"{fn}({args}) raised nothing")


def api_error(client: Client, fn: str, args: dict) -> dict:
    params = {}
    for name, value in args.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, dt.datetime):
            value = value.isoformat()
        elif isinstance(value, float) and value != value:
            value = "NaN"  # JSON has no NaN: the string, as a client would send it
        elif value == INF:
            value = "Infinity"
        params[name] = value
    with pytest.raises(APIError) as err:
        client.rpc(fn, params)
    e = err.value
    return {"status": client.status, "code": e.code, "message": e.message, "details": e.details, "hint": e.hint}


def by_rule(error: dict, started: dt.datetime, ended: dt.datetime) -> dict:
    """The error with the clock of a time-window refusal replaced by its rule: checked here, masked there."""
    out = dict(error)
    message = out.get("message") or ""
    match = CLOCK.search(message)
    assert bool(match) == ("database clock" in message), message
    if match:
        clock = dt.datetime.fromisoformat(match["clock"].replace("Z", "+00:00"))
        assert started - dt.timedelta(seconds=1) <= clock <= ended + dt.timedelta(seconds=1), message
        sent = re.search(r"p_sent_at (epoch second \S+|\S+) is", message)[1]
        if sent.startswith("epoch second "):
            sent_s = float(sent.removeprefix("epoch second "))
        else:
            sent_s = dt.datetime.fromisoformat(sent.replace("Z", "+00:00")).timestamp()
        assert match["distance"] == model._duration(abs(sent_s - clock.timestamp())), message
        out["message"] = CLOCK.sub(r"is <distance> \g<side> the database clock (<now>)", message)
    return out


@pytest.mark.parametrize(("fn", "args"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_same_bad_call_is_the_same_error_through_sql(sides, player, fn, args):
    stranger = uuid.uuid4()
    before = written(sides, player)
    bound = bind(args, player, stranger)
    errors = {}
    for side in ("single", "partitioned"):
        started = dt.datetime.now(dt.UTC)
        error = sql_error(sides.conn(side), fn, bound)
        errors[side] = by_rule(error, started, dt.datetime.now(dt.UTC))
    assert errors["partitioned"] == errors["single"]
    assert errors["single"]["sqlstate"] in ("22004", "22023", "22001", "P0002", "22P02"), errors["single"]
    assert written(sides, player) == before, "nothing written"
    assert written(sides, stranger) == ((None, 0, None), (None, 0, None))


@pytest.mark.parametrize(("fn", "args"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_same_bad_call_is_the_same_error_through_the_api(sides, player, fn, args):
    stranger = uuid.uuid4()
    before = written(sides, player)
    bound = bind(args, player, stranger)
    errors = {}
    for side in ("single", "partitioned"):
        started = dt.datetime.now(dt.UTC)
        error = api_error(sides.client(side, "service"), fn, bound)
        errors[side] = by_rule(error, started, dt.datetime.now(dt.UTC))
    assert errors["partitioned"] == errors["single"]
    assert 400 <= errors["single"]["status"] < 500, errors["single"]
    assert written(sides, player) == before, "nothing written"
    assert written(sides, stranger) == ((None, 0, None), (None, 0, None))


API_ONLY = [
    ("no such argument", "bayes_get_state", {"p_user_id": PLAYER, "p_player": 1}),
    ("a required argument missing", "bayes_process_message", {"p_user_id": PLAYER}),
    ("a chapter that is not a number", "bayes_advance_chapter", {"p_user_id": PLAYER, "p_chapter": "two"}),
]


@pytest.mark.parametrize(("fn", "args"), [c[1:] for c in API_ONLY], ids=[c[0] for c in API_ONLY])
def test_what_the_gateway_refuses_is_refused_alike(sides, player, fn, args):
    bound = bind(args, player, uuid.uuid4())
    single = api_error(sides.client("single", "service"), fn, bound)
    assert api_error(sides.client("partitioned", "service"), fn, bound) == single


@pytest.mark.parametrize("fn", [*WRITERS, *READERS])
def test_who_may_not_call_gets_the_same_refusal(sides, player, fn):
    """anon on every RPC; a player on his own id for a writer (players never write), on another's for a reader."""
    stranger = uuid.uuid4()
    args = {"p_user_id": player, **WRITERS.get(fn, READERS.get(fn))}
    before = written(sides, player)
    callers = [("anon", None, "anon")]
    callers.append(("authenticated", player if fn in WRITERS else stranger, "player"))
    for role, sub, who in callers:
        single = sql_error(sides.db, fn, args, role, sub)
        assert single["sqlstate"] == "42501"
        assert sql_error(sides.proxy, fn, args, role, sub) == single, (role, fn)
        single = api_error(sides.client("single", who, sub), fn, args)
        assert single["status"] in (401, 403) and single["code"] == "42501"
        assert api_error(sides.client("partitioned", who, sub), fn, args) == single, (who, fn)
    assert written(sides, player) == before


def test_the_players_own_reads_are_allowed_alike(sides, player):
    for fn in READERS:
        results = [
            sides.client(side, "player", player).rpc(fn, {"p_user_id": str(player)}).data
            for side in ("single", "partitioned")
        ]
        for result in results:
            result.pop("updated_at", None)  # the instant of each side's own write
        assert results[1] == results[0]


def test_a_corrupt_state_is_the_same_error(sides):
    """A stored state the codec refuses (planted past the table's check, as a restore might write it): the
    codec's XX001 (HTTP 500) and 0A000 (a newer engine's state, HTTP 400), alike."""
    for corruption, code in (
        ("jsonb_set(state, '{h}', '[1, 1, 1, 1, 1, 1]')", "XX001"),
        ("jsonb_set(state, '{v}', '3')", "0A000"),
    ):
        user_id = uuid.uuid4()
        sides.db.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
        for conn in (sides.db, sides.home(user_id)):
            conn.execute(
                "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(1))",
                (user_id,),
            )
            with conn.transaction():
                conn.execute("set local session_replication_role = replica")
                conn.execute(
                    f"update public.user_bayesian_state set state = {corruption} where user_id = %s", (user_id,)
                )
        for fn in READERS:
            single = sql_error(sides.db, fn, {"p_user_id": user_id})
            assert single["sqlstate"] == code
            assert sql_error(sides.proxy, fn, {"p_user_id": user_id}) == single
            single = api_error(sides.client("single", "service"), fn, {"p_user_id": user_id})
            assert api_error(sides.client("partitioned", "service"), fn, {"p_user_id": user_id}) == single


def test_errors_leave_no_notice_and_the_next_call_works(sides, player):
    """After a partition's error PL/Proxy reconnects to it on the next call (its connection was left
    mid-query) and says so in a NOTICE; the proxy keeps it: the session sees what a single node's sees."""
    for notices in sides.notices.values():
        notices.clear()
    for side in ("single", "partitioned"):
        conn = sides.conn(side)
        for _ in range(3):
            sql_error(conn, "bayes_record_outcome", {"p_user_id": player, "p_decision": "ignore", "p_engaged": True})
            conn.execute("select public.bayes_get_state(%s)", (player,)).fetchone()
    assert sides.notices == {"single": [], "partitioned": []}


def test_a_null_player_is_refused_before_any_partition_is_contacted(pstack, sides):
    """A fresh proxy session: each RPC with a NULL player is 22004, and no partition sees a new connection of
    the proxy's login (bayes_proxy) that ran an RPC's entry point. The control: one valid call of the same
    session opens exactly one, on the player's partition (PL/Proxy connects on a session's first call to a
    partition and keeps the connection). Connections that ran something else (the proxy's own jobs: its
    health snapshot, its parameters) are not this session's."""
    entry = r"bayes_partition\.(" + "|".join((*WRITERS, *READERS)) + r")\("

    def proxy_backends() -> list[set[int]]:
        return [
            {
                pid
                for (pid,) in conn.execute(
                    "select pid from pg_stat_activity where usename = 'bayes_proxy' and query ~ %s", (entry,)
                )
            }
            for conn in sides.partitions
        ]

    with psycopg.connect(pstack["DB_URL"], autocommit=True) as fresh:
        before = proxy_backends()
        for fn, args in (*WRITERS.items(), *READERS.items()):
            error = sql_error(fresh, fn, {"p_user_id": None, **args})
            assert (error["sqlstate"], error["message"]) == ("22004", "p_user_id must not be null"), fn
        assert [now - then for now, then in zip(proxy_backends(), before, strict=True)] == [set()] * len(before), (
            "no partition was contacted"
        )
        user_id = uuid.uuid4()
        fresh.execute("select public.bayes_process_message(%s, 'hello', now(), 'm1')", (user_id,))
        after = proxy_backends()
        home = sides.partitions.index(sides.home(user_id))
        new = [len(now - then) for now, then in zip(after, before, strict=True)]
        assert new == [1 if i == home else 0 for i in range(len(new))], new


def test_an_unknown_player_writes_in_the_partitioned_mode(sides):
    """Item 4 of issue 17: the single node checks the player against auth.users (P0002 for an id Supabase
    Auth does not know); a partition has no auth.users, and a player exists when he first writes, with the
    same result as a known player's first message on a single node."""
    user_id = uuid.uuid4()
    sent_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    args = {"p_user_id": user_id, "p_message": "hi there!", "p_sent_at": sent_at, "p_message_id": "m1"}
    error = sql_error(sides.db, "bayes_process_message", args)
    assert error == {
        "sqlstate": "P0002",
        "message": f"no player {user_id} in auth.users",
        "detail": None,
        "hint": "Players are created by Supabase Auth; pass the id of an existing auth.users row.",
    }
    assert sides.proxy.execute("select count(*) from auth.users where id = %s", (user_id,)).fetchone() == (0,)
    (partitioned,) = sides.proxy.execute(
        "select public.bayes_process_message(%s, %s, %s, %s)::text", (user_id, "hi there!", sent_at, "m1")
    ).fetchone()
    sides.db.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
    (single,) = sides.db.execute(
        "select public.bayes_process_message(%s, %s, %s, %s)::text", (user_id, "hi there!", sent_at, "m1")
    ).fetchone()
    assert json.loads(partitioned) == json.loads(single)
    assert json.loads(partitioned)["n"] == 1
