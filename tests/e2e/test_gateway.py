"""The gateway refuses what PostgREST would take only in part, or coerce
(issue 12, defects 2, 7 and 8), through the real path: raw HTTP and supabase-py
through nginx to PostgREST and the database.

- A body that is not one JSON object (an array of any length, nested arrays, a
  scalar, null) is BG001: PostgREST 12 would call the function with the first
  element of an array and drop the rest without a word.
- An argument given twice (a repeated query argument, or a key repeated in the
  body, however it is spelt) is BG003: PostgREST would take one of them.
- An RPC body that is not JSON (a form, CSV, ...), a repeated Content-Type, or
  the `columns` query parameter is BG004: each lets PostgREST take one of
  several inputs, or drop some.
- An argument whose JSON type does not match its SQL type is BG002: PostgREST
  would cast an object to its JSON text, a string to a number, 1 to true.
- Every error page the gateway itself produces is JSON in PostgREST's shape.

Whatever is refused writes nothing: the tests check the state rows and the
event log of every player named in a refused request."""

from __future__ import annotations

import json
import socket
import uuid
from urllib.parse import urlsplit

import httpx
import pytest
from bayes_dev.support import new_player
from postgrest.exceptions import APIError

pytestmark = pytest.mark.e2e

READERS = ("bayes_get_state", "bayes_boss_readiness", "bayes_fallback_check")
# The writers that create a state for a player who has none, and those that need one.
CREATORS = ("bayes_process_message", "bayes_advance_chapter")


def valid_args(fn: str, user_id: uuid.UUID, i: int = 0) -> dict:
    """Arguments each RPC accepts (with a state for the player, or an auth.users row for the creators)."""
    uid = str(user_id)
    return {
        "bayes_process_message": {"p_user_id": uid, "p_message": "I love you", "p_message_id": f"gw-{i}"},
        "bayes_apply_llm_scores": {"p_user_id": uid, "p_deltas": {"intimacy": 3}, "p_message_id": f"gw-{i}"},
        "bayes_record_outcome": {"p_user_id": uid, "p_decision": "reply", "p_engaged": True},
        "bayes_advance_chapter": {"p_user_id": uid, "p_chapter": 2},
        "bayes_get_state": {"p_user_id": uid},
        "bayes_boss_readiness": {"p_user_id": uid, "p_method": "normal"},
        "bayes_fallback_check": {"p_user_id": uid},
    }[fn]


def public_functions(db) -> dict[str, dict[str, str]]:
    """{function: {argument: SQL type}} of schema public, read from the catalog."""
    rows = db.execute(
        """
        select p.proname, a.name, format_type(a.typ, null)
        from pg_proc p
        cross join lateral unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]), p.proargnames,
                                  coalesce(p.proargmodes, array_fill('i'::"char", array[p.pronargs])))
                   as a (typ, name, mode)
        where p.pronamespace = 'public'::regnamespace and a.mode in ('i', 'b', 'v')
        """
    ).fetchall()
    out: dict[str, dict[str, str]] = {}
    for fn, arg, typ in rows:
        out.setdefault(fn, {})[arg] = typ
    return out


@pytest.fixture(scope="module")
def functions(stack):
    import psycopg

    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        fns = public_functions(conn)
    assert set(fns) == set(READERS) | set(CREATORS) | {"bayes_apply_llm_scores", "bayes_record_outcome"}, (
        "a new RPC in public: give it valid arguments in valid_args"
    )
    return fns


@pytest.fixture
def http(stack):
    headers = {"apikey": stack["SERVICE_ROLE_KEY"], "Authorization": f"Bearer {stack['SERVICE_ROLE_KEY']}"}
    with httpx.Client(base_url=stack["API_URL"], headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def players(db):
    """Three players with a chapter-1 state, and three who exist in auth.users only."""
    with_state = [new_player(db) for _ in range(3)]
    for user_id in with_state:
        db.execute(
            "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(1))", (user_id,)
        )
    return {"with_state": with_state, "signed_up": [new_player(db) for _ in range(3)]}


def targets(fn: str, players) -> list[uuid.UUID]:
    return players["signed_up"] if fn in CREATORS else players["with_state"]


def snapshot(db, users) -> list[tuple]:
    """(player, state version or None, number of events) of each player."""
    return db.execute(
        "select u, (select version from public.user_bayesian_state s where s.user_id = u),"
        " (select count(*) from bayes.player_event e where e.user_id = u)"
        " from unnest(%s::uuid[]) with ordinality as t (u, i) order by i",
        (list(users),),
    ).fetchall()


def assert_error(resp: httpx.Response, status: int, code: str) -> dict:
    assert resp.status_code == status, f"{resp.status_code} {resp.text[:300]}"
    assert resp.headers["content-type"].startswith("application/json"), resp.headers.get("content-type")
    body = resp.json()
    assert set(body) == {"code", "details", "hint", "message"}, body
    assert body["code"] == code, body
    assert body["message"], body
    return body


def post(http, fn, body: str, content_type="application/json", **kw) -> httpx.Response:
    headers = {"Content-Type": content_type, **kw.pop("headers", {})}
    return http.post(f"/rest/v1/rpc/{fn}", content=body.encode(), headers=headers, **kw)


# -- defect 2: an array body, or any other way of giving several inputs ------------------------------

ARRAY_SHAPES = {
    "one": lambda objs: [objs[0]],
    "two": lambda objs: objs[:2],
    "three": lambda objs: objs[:3],
    "empty": lambda objs: [],
    "nested-one": lambda objs: [[objs[0]]],
    "nested-each": lambda objs: [[o] for o in objs],
    "nested-all": lambda objs: [objs],
    "object-then-array": lambda objs: [objs[0], [objs[1]]],
}
PREFERS = (None, "params=multiple-objects", "params=single-object", "handling=strict, params=multiple-objects")
RPCS = (
    "bayes_process_message",
    "bayes_apply_llm_scores",
    "bayes_record_outcome",
    "bayes_advance_chapter",
    *READERS,
)


@pytest.mark.parametrize("fn", RPCS)
def test_an_array_body_is_refused_whole_over_http(http, db, players, fn, functions):
    users = targets(fn, players)
    objs = [valid_args(fn, u, i) for i, u in enumerate(users)]
    before = snapshot(db, users)
    tried = 0
    for shape, make in ARRAY_SHAPES.items():
        for prefer in PREFERS:
            headers = {"Prefer": prefer} if prefer else {}
            resp = post(http, fn, json.dumps(make(objs)), headers=headers)
            body = assert_error(resp, 400, "BG001")
            assert "array" in body["message"], (shape, body)
            tried += 1
    # the same with a charset, and without any Content-Type (PostgREST reads JSON then)
    assert_error(post(http, fn, json.dumps(objs), "application/json; charset=utf-8"), 400, "BG001")
    assert_error(http.post(f"/rest/v1/rpc/{fn}", content=json.dumps(objs).encode()), 400, "BG001")
    assert snapshot(db, users) == before, "a refused request wrote something"
    assert tried == len(ARRAY_SHAPES) * len(PREFERS)


@pytest.mark.parametrize("fn", RPCS)
def test_an_array_through_supabase_py_raises_and_writes_nothing(service, db, players, fn):
    users = targets(fn, players)
    objs = [valid_args(fn, u, i) for i, u in enumerate(users)]
    before = snapshot(db, users)
    for shape in ("one", "two", "three", "empty", "nested-one", "nested-each"):
        with pytest.raises(APIError) as err:
            service.sb.rpc(fn, ARRAY_SHAPES[shape](objs)).execute()
        assert err.value.code == "BG001", (shape, err.value)
        assert service.status == 400
    assert snapshot(db, users) == before


@pytest.mark.parametrize("fn", RPCS)
@pytest.mark.parametrize("body", ["1", "-2.5", '"text"', "null", "true", "false", '  "a"  '])
def test_a_scalar_or_null_body_is_refused(http, fn, body):
    assert_error(post(http, fn, body), 400, "BG001")


@pytest.mark.parametrize("fn", RPCS)
def test_a_key_repeated_in_the_body_is_refused(http, db, players, fn):
    users = targets(fn, players)
    a, b = (str(u) for u in users[:2])
    args = valid_args(fn, users[0])
    rest = json.dumps({k: v for k, v in args.items() if k != "p_user_id"})[1:-1]
    rest = f", {rest}" if rest else ""
    before = snapshot(db, users)
    bodies = [
        f'{{"p_user_id": "{a}", "p_user_id": "{b}"{rest}}}',
        f'{{"p_user_id": "{a}", "\\u0070_user_id": "{b}"{rest}}}',
        f'{{"p_user_id": "{a}"{rest}, "p_user_id": "{b}"}}',
        f'{{"p_user_id": "{a}"{rest}, "p_user_id": null}}',
        f'{{"p_user_id": "{a}", "p_user_id": "{a}"{rest}}}',
    ]
    for body in bodies:
        msg = assert_error(post(http, fn, body), 400, "BG003")
        assert "p_user_id" in msg["message"]
    assert snapshot(db, users) == before


@pytest.mark.parametrize("fn", READERS)
def test_a_repeated_query_argument_is_refused(http, db, players, fn):
    a, b = (str(u) for u in players["with_state"][:2])
    queries = [
        f"p_user_id={a}&p_user_id={b}",
        f"p_user_id={a};p_user_id={b}",  # PostgREST splits on ';' too
        f"p_user_id={a}&&p_user_id={b}",
        f"p_user_id={a}&%70_user_id={b}",  # the same name, percent-encoded
        f"p_user_id={a}&p_user_id",  # PostgREST ignores the second silently
        f"p_user_id={a}&p_user_id=",
        # names PostgREST reads as p_user_id: it trims them, and stops at a byte it does not expect
        f"p_user_id={a}&p_user_id%20={b}",
        f"p_user_id={a}&%20p_user_id={b}",
        f"p_user_id={a}&p_user_id%01={b}",
        f"p_user_id={a}&p_user_id%00x={b}",
        f"p_user_id={a}&p_user_id%E2%80%8B={b}",
        f"p_user_id={a}&select=n&select=chapter",
    ]
    if fn == "bayes_boss_readiness":
        queries.append(f"p_user_id={a}&p_method=normal&p_method=monte_carlo")
    for query in queries:
        for method in ("GET", "HEAD", "POST"):
            resp = http.request(method, f"/rest/v1/rpc/{fn}?{query}")
            if method == "HEAD":
                assert resp.status_code == 400, (query, resp.status_code)
            else:
                assert_error(resp, 400, "BG003")
    # a single argument still works
    assert http.get(f"/rest/v1/rpc/{fn}?p_user_id={a}").json()["user_id"] == a


@pytest.mark.parametrize("fn", RPCS)
def test_non_json_bodies_and_columns_are_refused(http, db, players, fn):
    users = targets(fn, players)
    a, b = (str(u) for u in users[:2])
    args = valid_args(fn, users[0])
    before = snapshot(db, users)
    refused = [
        post(http, fn, f"p_user_id={a}&p_user_id={b}", "application/x-www-form-urlencoded"),
        post(http, fn, f"p_user_id={a}", "application/x-www-form-urlencoded"),
        post(http, fn, f"p_user_id\n{a}\n{b}\n", "text/csv"),
        post(http, fn, json.dumps(args), "text/plain"),
        post(http, fn, json.dumps(args), "application/octet-stream"),
        post(http, fn, json.dumps(args), "APPLICATION/JSON"),
        # two Content-Types: PostgREST takes the first
        http.post(
            f"/rest/v1/rpc/{fn}",
            content=json.dumps([args, args]).encode(),
            headers=[("Content-Type", "application/json"), ("Content-Type", "text/csv")],
        ),
        # a Content-Type after a hundred other headers
        http.post(
            f"/rest/v1/rpc/{fn}",
            content=f"p_user_id\n{a}\n{b}\n".encode(),
            headers=[*((f"X-Filler-{i}", "x") for i in range(120)), ("Content-Type", "text/csv")],
        ),
        # columns: PostgREST passes only the listed keys and drops the others without a word
        post(http, fn, json.dumps(args), params={"columns": "p_user_id"}),
    ]
    for resp in refused:
        assert_error(resp, 400, "BG004")
    assert snapshot(db, users) == before


def test_one_object_still_goes_through(service, http, players):
    user_id = players["with_state"][0]
    resp = post(http, "bayes_get_state", json.dumps({"p_user_id": str(user_id)}))
    assert resp.status_code == 200 and resp.json()["user_id"] == str(user_id)
    assert service.rpc("bayes_fallback_check", {"p_user_id": str(user_id)}).data["user_id"] == str(user_id)
    resp = post(http, "bayes_get_state", json.dumps({"p_user_id": str(user_id)}), "application/json; charset=utf-8")
    assert resp.status_code == 200
    # an object with params=multiple-objects is still one call
    resp = post(http, "bayes_get_state", json.dumps({"p_user_id": str(user_id)}), headers={"Prefer": "tx=commit"})
    assert resp.status_code == 200


# -- defect 7: the JSON type of each argument must match its SQL type --------------------------------

STRING_TYPES = {"text", "uuid", "timestamp with time zone", "timestamp without time zone", "date", "interval"}
NUMBER_TYPES = {"double precision", "numeric", "real"}
INTEGER_TYPES = {"integer", "bigint", "smallint"}
# Wrong JSON values (as JSON text) for each family of SQL types, and the JSON type the gateway must name.
WRONG = {
    "string": [
        ('{"text": "I love you"}', "object"),
        ('["I love you"]', "array"),
        ("1", "number"),
        ("-1.5e3", "number"),
        ("true", "boolean"),
        ("false", "boolean"),
        ("{}", "object"),
        ("[]", "array"),
    ],
    "number": [
        ('"40"', "string"),
        ('"NaN"', "string"),
        ('{"v": 40}', "object"),
        ("[40]", "array"),
        ("true", "boolean"),
        ("false", "boolean"),
    ],
    "integer": [
        ("2.0", "number"),
        ("2.5", "number"),
        ("2e0", "number"),
        ('"2"', "string"),
        ('{"c": 2}', "object"),
        ("[2]", "array"),
        ("true", "boolean"),
    ],
    "boolean": [
        ('"true"', "string"),
        ('"false"', "string"),
        ("1", "number"),
        ("0", "number"),
        ('{"b": true}', "object"),
        ("[true]", "array"),
    ],
}


def family(sql_type: str) -> str | None:
    if sql_type in STRING_TYPES:
        return "string"
    if sql_type in NUMBER_TYPES:
        return "number"
    if sql_type in INTEGER_TYPES:
        return "integer"
    if sql_type == "boolean":
        return "boolean"
    assert sql_type in ("json", "jsonb"), f"a new SQL type {sql_type}: say what JSON it takes"
    return None


def with_raw(args: dict, name: str, raw: str) -> str:
    """args as a JSON object text, the value of `name` replaced by the JSON text raw."""
    rest = [f"{json.dumps(k)}: {json.dumps(v)}" for k, v in args.items() if k != name]
    return "{" + ", ".join([*rest, f"{json.dumps(name)}: {raw}"]) + "}"


@pytest.mark.parametrize("fn", RPCS)
def test_an_argument_of_the_wrong_json_type_is_refused(http, db, players, functions, fn):
    users = targets(fn, players)
    before = snapshot(db, users)
    tried = 0
    for name, sql_type in functions[fn].items():
        fam = family(sql_type)
        if fam is None:
            continue
        for raw, json_type in WRONG[fam]:
            body = assert_error(post(http, fn, with_raw(valid_args(fn, users[0]), name, raw)), 400, "BG002")
            for word in (name, sql_type, json_type):
                assert word in body["message"], (raw, body)
            tried += 1
    assert tried >= len(functions[fn])
    assert snapshot(db, users) == before


def test_an_object_for_a_message_is_not_scored_as_its_text(http, db, players):
    user_id = players["signed_up"][0]
    args = {"p_user_id": str(user_id), "p_message_id": "warm-object"}
    assert_error(
        post(http, "bayes_process_message", with_raw(args, "p_message", '{"text": "I love you"}')), 400, "BG002"
    )
    assert_error(post(http, "bayes_process_message", with_raw(args, "p_message_id", '{"id": 1}')), 400, "BG002")
    assert snapshot(db, [user_id]) == [(user_id, None, 0)]
    # a string that looks like JSON is a player's text, and is scored as such
    ok = post(http, "bayes_process_message", json.dumps({**args, "p_message": '{"text": "I love you"}'}))
    assert ok.status_code == 200, ok.text
    assert any(f.startswith("warm") for f in ok.json()["features"]), ok.json()["features"]


def test_right_types_and_nulls_go_through(http, players):
    user_id = str(players["signed_up"][1])
    args = {
        "p_user_id": user_id,
        "p_message": "hello there",
        "p_sent_at": None,
        "p_message_id": None,
        "p_reply_gap_s": 40,  # an integral number is a number
        "p_topic_changed": None,
    }
    resp = post(http, "bayes_process_message", json.dumps(args))
    assert resp.status_code == 400 and resp.json()["code"] == "22004", resp.text  # p_sent_at null: the database's rule
    args["p_sent_at"] = "2026-11-01T10:00:00Z"
    args["p_reply_gap_s"] = 40.5
    args["p_topic_changed"] = False
    assert post(http, "bayes_process_message", json.dumps(args)).status_code == 200
    resp = post(http, "bayes_advance_chapter", json.dumps({"p_user_id": user_id, "p_chapter": 2}))
    assert resp.status_code == 200, resp.text
    # json/jsonb arguments take any JSON value: the database checks them
    resp = post(http, "bayes_apply_llm_scores", json.dumps({"p_user_id": user_id, "p_deltas": "intimacy"}))
    assert resp.json()["code"] == "22023", resp.text
    # an unknown argument name stays PostgREST's 404
    resp = post(http, "bayes_get_state", json.dumps({"p_user_id": user_id, "p_nope": 1}))
    assert resp.status_code == 404 and resp.json()["code"] == "PGRST202"
    # not JSON at all stays PostgREST's PGRST102
    resp = post(http, "bayes_get_state", '{"p_user_id": ')
    assert resp.status_code == 400 and resp.json()["code"] == "PGRST102"


def test_the_guard_reads_past_escapes_and_brackets_inside_strings(http, db, players):
    """The guard skips values without decoding them: what hides inside a string
    (escaped quotes, backslashes, brackets, a fake key) must not end it early."""
    user_id = str(players["with_state"][0])
    tricky = [
        r'"he said \"hi\" \\"',
        r'"\\\\"',
        r'"}, \"p_user_id\": 1, {"',
        '"]]]}}}[[[{{{"',
        r'"\\u0022 \\"',
        r'"\u0022, \u0022p_user_id\u0022: 1"',
        '"' + "x" * 70000 + '"',
    ]
    for text in tricky:
        assert json.loads(text) is not None
        deltas = f'{{"intimacy": 1, "note": [{text}, {{"k": {text}}}]}}'
        body = f'{{"p_message_id": {text}, "p_deltas": {deltas}, "p_user_id": 1}}'
        got = assert_error(post(http, "bayes_apply_llm_scores", body), 400, "BG002")
        assert "p_user_id" in got["message"], got
        body = f'{{"p_message_id": {text}, "p_deltas": {deltas}, "p_user_id": "{user_id}", "p_message_id": null}}'
        assert_error(post(http, "bayes_apply_llm_scores", body), 400, "BG003")
    # and a body of them all, right, goes through to the database
    body = f'{{"p_user_id": "{user_id}", "p_method": {tricky[0]}}}'
    resp = post(http, "bayes_boss_readiness", body)
    assert resp.status_code == 400 and resp.json()["code"] == "22023", resp.text


def test_supabase_py_gets_the_code_of_a_wrong_type(service, players):
    with pytest.raises(APIError) as err:
        service.rpc("bayes_advance_chapter", {"p_user_id": str(players["signed_up"][2]), "p_chapter": "2"})
    assert err.value.code == "BG002" and "p_chapter" in err.value.message


# -- defect 8: every error page of the gateway is JSON in PostgREST's shape --------------------------


def raw_request(api_url: str, data: bytes, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are; the status, headers and body of the answer."""
    url = urlsplit(api_url)
    with socket.create_connection((url.hostname, url.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def assert_raw_error(answer, status: int, code: str) -> None:
    got, headers, body = answer
    assert got == status, (got, body[:300])
    assert headers["content-type"].startswith("application/json"), headers
    data = json.loads(body)
    assert set(data) == {"code", "details", "hint", "message"} and data["code"] == code, data


@pytest.mark.parametrize("path", ["/rest/v1/rpc/bayes_get_state", "/rest/v1/user_bayesian_state", "/nope"])
def test_an_oversized_body_is_a_json_413(http, path):
    big = b'{"p_user_id": "' + b"x" * (1024 * 1024) + b'"}'
    body = assert_error(http.post(path, content=big, headers={"Content-Type": "application/json"}), 413, "BG413")
    assert "1 MB" in body["message"] or "1m" in body["message"] or "1048576" in body["message"]

    def chunks():  # chunked: no Content-Length to refuse it early
        for _ in range(20):
            yield b"x" * 65536

    resp = http.post(path, content=chunks(), headers={"Content-Type": "application/json"})
    if path == "/nope":  # no length to refuse it by: the path is refused first
        assert_error(resp, 404, "BG404")
    else:
        assert_error(resp, 413, "BG413")


def test_an_oversized_body_through_supabase_py_raises_bg413(service, players):
    with pytest.raises(APIError) as err:
        service.rpc("bayes_process_message", {"p_user_id": str(players["signed_up"][0]), "p_message": "x" * 1_100_000})
    assert err.value.code == "BG413"


@pytest.mark.parametrize("path", ["/", "/nope", "/rest", "/rest/v1", "/rest/v2/rpc/x", "/health/x"])
def test_an_unknown_path_is_a_json_404(http, path):
    for method in ("GET", "POST", "DELETE"):
        assert_error(http.request(method, path), 404, "BG404")


def test_the_health_check_and_postgrest_errors_are_unchanged(http):
    assert http.get("/health").text == "ok\n"
    resp = http.get("/rest/v1/no_such_table")
    assert resp.status_code == 404 and resp.json()["code"] == "42P01"


def test_gateway_errors_of_the_request_line_and_headers_are_json(stack):
    api = stack["API_URL"]
    host = urlsplit(api).netloc
    assert_raw_error(raw_request(api, f"TRACE /rest/v1/ HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()), 405, "BG405")
    assert_raw_error(raw_request(api, b"GARBAGE\r\n\r\n"), 400, "BG400")
    assert_raw_error(raw_request(api, b"GET /rest/v1/ HTTP/1.1\r\n\r\n"), 400, "BG400")  # no Host
    assert_raw_error(
        raw_request(api, f"GET /rest/v1/ HTTP/1.1\r\nHost: {host}\r\nBad Header\r\n\r\n".encode()), 400, "BG400"
    )
    long_uri = "/rest/v1/rpc/bayes_get_state?p_user_id=" + "a" * 9000
    assert_raw_error(raw_request(api, f"GET {long_uri} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()), 414, "BG414")
    long_header = f"GET /rest/v1/ HTTP/1.1\r\nHost: {host}\r\nX-Big: {'a' * 9000}\r\n\r\n"
    assert_raw_error(raw_request(api, long_header.encode()), 431, "BG431")
    assert_raw_error(
        raw_request(api, f"POST /rest/v1/rpc/x HTTP/1.1\r\nHost: {host}\r\nTransfer-Encoding: gzip\r\n\r\n".encode()),
        501,
        "BG501",
    )
    assert_raw_error(raw_request(api, f"GET /rest/v1/ HTTP/2.0\r\nHost: {host}\r\n\r\n".encode()), 505, "BG505")
