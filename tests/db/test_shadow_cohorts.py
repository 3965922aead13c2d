"""Issue 14 on a real cluster: section 3 as rows of bayes.params (one UPDATE
changes the next message, a bad one is 22023 and changes nothing), the rollout
(stable buckets, the mode of every writer's result, effective on the next
call) and the LLM's vices and mood of a message (stored with its event, bad
values refused with nothing written)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import psycopg
import pytest
from bayes_dev.support import act_as, new_player
from bayes_engine import codec, events, model, vocab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs
from psycopg import errors

pytestmark = pytest.mark.db

T0 = dt.datetime(2026, 11, 20, 9, 0, tzinfo=dt.UTC)


def send(conn, user_id, text, minutes=0, message_id=None, gap=None):
    return conn.execute(
        "select public.bayes_process_message(%s, %s, %s, %s, %s)",
        (user_id, text, T0 + dt.timedelta(minutes=minutes), message_id, gap),
    ).fetchone()[0]


def last_event_input(conn, user_id):
    return conn.execute(
        "select bayes.event_input(kind, input) from bayes.player_event where user_id = %s"
        " order by event_id desc limit 1",
        (user_id,),
    ).fetchone()[0]


def written(conn, user_id):
    """What a refused call must leave as it was: the state row and the event log."""
    return conn.execute(
        "select s.state::text, s.version, (select count(*) from bayes.player_event as e where e.user_id = s.user_id)"
        " from public.user_bayesian_state as s where s.user_id = %s",
        (user_id,),
    ).fetchone()


def revision(conn):
    return conn.execute("select revision from bayes.params_revision").fetchone()[0]


def python_bucket(user_id, salt):
    """bayes.user_bucket restated: the first 32 bits of md5(salt || ':' || user_id), unsigned, mod 10000."""
    return int(hashlib.md5(f"{salt}:{user_id}".encode()).hexdigest()[:8], 16) % 10_000


def set_percent(conn, percent):
    conn.execute("update bayes.rollout set bayes_percent = %s", (percent,))


# ---------------------------------------------------------------- section 3 as parameter rows


def test_one_update_of_a_lexicon_changes_the_next_message(conn):
    user_id = new_player(conn)
    before = send(conn, user_id, "you are so cute, really", 0, "m0")
    assert before["features"] == [] and last_event_input(conn, user_id)["observation"]["plus"] == [0, 0, 0, 0]
    r = revision(conn)
    conn.execute("update bayes.params set value = value || '[\"cute\"]' where name = 'lexicon_positive'")
    assert revision(conn) == r + 1
    after = send(conn, user_id, "you are so cute, really", 1, "m1")
    assert after["features"] == ["warm_one"] and after["observations"] == 1
    observation = last_event_input(conn, user_id)["observation"]
    assert observation["features"] == ["warm_one"] and observation["plus"] == [0, 0.15, 0, 0]
    assert 3 in observation["symbols"]  # compliment: the HMM reads the same lists
    # the event log keeps what the encoder found: replay, with the lexicon changed, rebuilds the state
    assert conn.execute(
        "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (user_id, user_id)
    ).fetchone()[0]


def test_one_update_of_a_features_evidence_changes_the_next_message(conn):
    user_id = new_player(conn)
    send(conn, user_id, "I love you, you are wonderful", 0, "m0")
    assert last_event_input(conn, user_id)["observation"]["plus"] == [0, 0.49, 0, 0]
    conn.execute("update bayes.params set value = '{\"passion\": 0.8, \"trust\": -0.3}' where name = 'feature_warm'")
    result = send(conn, user_id, "I love you, you are wonderful", 1, "m1")
    observation = last_event_input(conn, user_id)["observation"]
    assert result["features"] == observation["features"] == ["warm"]
    assert observation["plus"] == [0, 0.8, 0, 0] and observation["minus"] == [0, 0, 0.3, 0]


def test_the_intercept_row_gives_every_message_evidence_and_no_observation(conn):
    user_id = new_player(conn)
    conn.execute(
        "update bayes.params set value = '{\"intimacy\": 0.1, \"secureness\": -0.2}' where name = 'feature_intercept'"
    )
    result = send(conn, user_id, "a neutral sentence of some length", 0, "m0")
    observation = last_event_input(conn, user_id)["observation"]
    assert result["observations"] == 0 and result["features"] == []
    assert observation["plus"] == [0.1, 0, 0, 0] and observation["minus"] == [0, 0, 0, 0.2]
    # cold start halves it, as any evidence (MODEL.md 4.1): alpha_i = 1.5 + 0.05, beta_s = 3 + 0.1
    state = conn.execute("select state from public.user_bayesian_state where user_id = %s", (user_id,)).fetchone()[0]
    assert state["m"]["i"][0] == pytest.approx(1.55) and state["m"]["s"][1] == pytest.approx(3.1)


BAD_UPDATES = [
    ("update bayes.params set value = '[\"Cute\"]' where name = 'lexicon_positive'", "global.lexicon_positive[0]"),
    ("update bayes.params set value = '\"cute\"' where name = 'lexicon_positive'", "global.lexicon_positive"),
    ("update bayes.params set value = '[\"so cute\"]' where name = 'lexicon_positive'", "global.lexicon_positive[0]"),
    ("update bayes.params set value = '[\"\"]' where name = 'lexicon_negative'", "global.lexicon_negative[0]"),
    ("update bayes.params set value = '[1]' where name = 'lexicon_personal'", "global.lexicon_personal[0]"),
    ("update bayes.params set value = '[\"\u24b6\"]' where name = 'lexicon_humor'", "global.lexicon_humor[0]"),
    ("update bayes.params set value = '{}' where name like 'lexicon%'", "global.lexicon_positive"),
    ("delete from bayes.params where name = 'lexicon_vice_substances'", "global.lexicon_vice_substances"),
    (
        "update bayes.params set value = '{\"passion\": 1.5}' where name = 'feature_warm'",
        "global.feature_warm.passion",
    ),
    (
        "update bayes.params set value = '{\"passion\": -2}' where name = 'feature_cold'",
        "global.feature_cold.passion",
    ),
    ("update bayes.params set value = '{\"charm\": 0.1}' where name = 'feature_warm'", "global.feature_warm"),
    ("update bayes.params set value = '[0.49]' where name = 'feature_warm'", "global.feature_warm"),
    ("update bayes.params set value = '{\"trust\": \"0.1\"}' where name = 'feature_intercept'", "feature_intercept"),
    ("update bayes.params set value = '{\"trust\": null}' where name = 'feature_absent'", "feature_absent.trust"),
    ("update bayes.params set value = '{\"trust\": 1e400}' where name = 'feature_steady'", "feature_steady.trust"),
    ("delete from bayes.params where name = 'feature_intercept'", "global.feature_intercept"),
]


@pytest.mark.parametrize("sql, key", BAD_UPDATES, ids=[f"{i}-{k}" for i, (_, k) in enumerate(BAD_UPDATES)])
def test_a_bad_update_of_section_3_is_22023_naming_the_key_and_changes_nothing(conn, sql, key):
    user_id = new_player(conn)
    first = send(conn, user_id, "I love you, you are wonderful", 0, "m0")
    r = revision(conn)
    snapshot = conn.execute("select bayes.params_snapshot()::text").fetchone()[0]
    conn.execute("savepoint s")
    with pytest.raises(errors.InvalidParameterValue) as err:
        conn.execute(sql)
    conn.execute("rollback to savepoint s")
    assert key in err.value.diag.message_primary, err.value.diag.message_primary
    assert err.value.diag.message_hint == "fix the row in bayes.params"
    assert revision(conn) == r
    assert conn.execute("select bayes.params_snapshot()::text").fetchone()[0] == snapshot
    again = send(conn, user_id, "I love you, you are wonderful", 1, "m1")
    assert again["features"] == first["features"] == ["warm"]


# ---------------------------------------------------------------- cohorts


def test_a_new_installation_puts_everyone_in_shadow(conn):
    assert conn.execute("select singleton, bayes_percent from bayes.rollout").fetchall() == [(True, 0)]
    players = [new_player(conn) for _ in range(50)]
    modes = conn.execute("select distinct bayes.player_mode(id) from unnest(%s::uuid[]) as id", (players,)).fetchall()
    assert modes == [("shadow",)]


@pytest.mark.parametrize("salt", ["rollout", "calibration", "", "s\u00e9l:\u00e9"])
def test_user_bucket_is_the_md5_bucket_an_independent_computation_gives(conn, salt):
    ids = [uuid.uuid4() for _ in range(300)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    got = conn.execute("select id, bayes.user_bucket(id, %s) from unnest(%s::uuid[]) as id", (salt, ids)).fetchall()
    assert {u: b for u, b in got} == {u: python_bucket(u, salt) for u in ids}
    again = conn.execute("select id, bayes.user_bucket(id, %s) from unnest(%s::uuid[]) as id", (salt, ids)).fetchall()
    assert again == got  # stable
    buckets = [b for _, b in got]
    assert all(0 <= b < 10_000 for b in buckets) and len(set(buckets)) > 250  # spread, not one value


def test_user_bucket_is_strict_and_the_salts_place_a_player_independently(conn):
    assert conn.execute(
        "select bayes.user_bucket(null, 'rollout'), bayes.user_bucket(%s, null)", (uuid.uuid4(),)
    ).fetchone() == (
        None,
        None,
    )
    ids = [uuid.uuid4() for _ in range(200)]
    rows = conn.execute(
        "select bayes.user_bucket(id, 'rollout'), bayes.user_bucket(id, 'calibration') from unnest(%s::uuid[]) as id",
        (ids,),
    ).fetchall()
    assert sum(a == b for a, b in rows) < 5


def test_player_mode_flips_for_exactly_the_players_the_percent_takes(conn):
    players = [new_player(conn) for _ in range(400)]
    bucket = {u: python_bucket(u, "rollout") for u in players}

    def modes():
        rows = conn.execute("select id, bayes.player_mode(id) from unnest(%s::uuid[]) as id", (players,)).fetchall()
        return {u: m for u, m in rows}

    previous = None
    for percent in (0, 0.01, 5, 12.5, 33.33, 50, 99.99, 100):
        set_percent(conn, percent)
        now = modes()
        want = {u: "bayes" if bucket[u] < percent * 100 else "shadow" for u in players}
        assert now == want, percent
        if previous is not None:  # raising the percent only moves players from shadow to bayes
            moved = {u for u in players if now[u] != previous[u]}
            assert all(previous[u] == "shadow" and now[u] == "bayes" for u in moved)
        previous = now
    assert set(previous.values()) == {"bayes"}
    set_percent(conn, 20)  # and lowering it moves back exactly those above the new line
    assert modes() == {u: "bayes" if bucket[u] < 2000 else "shadow" for u in players}


def test_a_changed_percent_changes_the_mode_of_the_next_call_and_the_boundary_is_exact(conn):
    user_id = new_player(conn)
    b = python_bucket(user_id, "rollout")
    assert send(conn, user_id, "hello there, how are you?", 0, "m0")["mode"] == "shadow"
    set_percent(conn, (b + 1) / 100)  # the smallest percent that takes him
    assert send(conn, user_id, "hello there, how are you?", 1, "m1")["mode"] == "bayes"
    set_percent(conn, b / 100)  # the largest that does not: his bucket is not below it
    assert send(conn, user_id, "hello there, how are you?", 2, "m2")["mode"] == "shadow"


def test_every_writers_result_says_the_mode(conn):
    user_id = new_player(conn)
    b = python_bucket(user_id, "rollout")
    for percent, mode in ((b / 100, "shadow"), ((b + 1) / 100, "bayes")):
        set_percent(conn, percent)
        results = [
            send(conn, user_id, "hello there, how are you?", 0, f"m-{mode}"),
            conn.execute(
                "select public.bayes_apply_llm_scores(%s, '{\"trust\": 2}', %s)", (user_id, f"m-{mode}")
            ).fetchone()[0],
            conn.execute("select public.bayes_record_outcome(%s, 'reply', true)", (user_id,)).fetchone()[0],
            conn.execute(
                "select public.bayes_advance_chapter(%s, %s)", (user_id, 2 if mode == "shadow" else 3)
            ).fetchone()[0],
            conn.execute("select public.bayes_advance_chapter(%s, 3)", (user_id,)).fetchone()[0],  # no-op the 2nd time
        ]
        assert [r["mode"] for r in results] == [mode] * 5
        assert conn.execute("select bayes.player_mode(%s)", (user_id,)).fetchone()[0] == mode
        # the logged result is the one returned
        logged = conn.execute(
            "select player_mode::text from bayes.player_event where user_id = %s order by event_id desc limit 1",
            (user_id,),
        ).fetchone()[0]
        assert logged == mode


def test_a_duplicate_returns_the_mode_of_its_first_call(conn):
    user_id = new_player(conn)
    b = python_bucket(user_id, "rollout")
    set_percent(conn, b / 100)
    first = send(conn, user_id, "hello there, how are you?", 0, "dup")
    llm = conn.execute("select public.bayes_apply_llm_scores(%s, '{\"trust\": 2}', 'dup')", (user_id,)).fetchone()[0]
    assert first["mode"] == llm["mode"] == "shadow"
    set_percent(conn, 100)
    again = send(conn, user_id, "hello there, how are you?", 0, "dup")
    llm_again = conn.execute(
        "select public.bayes_apply_llm_scores(%s, '{\"trust\": 2}', 'dup')", (user_id,)
    ).fetchone()[0]
    assert again == {**first, "duplicate": True} and again["mode"] == "shadow"
    assert llm_again == {**llm, "duplicate": True} and llm_again["mode"] == "shadow"
    assert send(conn, user_id, "hello there, how are you?", 1, "new")["mode"] == "bayes"


@pytest.mark.parametrize(
    "sql, sqlstate",
    [
        ("update bayes.rollout set bayes_percent = 100.01", "23514"),
        ("update bayes.rollout set bayes_percent = -0.01", "23514"),
        ("update bayes.rollout set bayes_percent = 'NaN'", "23514"),
        ("update bayes.rollout set bayes_percent = null", "23502"),
        ("update bayes.rollout set bayes_percent = 1000", "22003"),
        ("insert into bayes.rollout (singleton, bayes_percent) values (false, 50)", "23514"),
        ("insert into bayes.rollout (singleton, bayes_percent) values (true, 50)", "23505"),
    ],
)
def test_a_bad_rollout_is_refused_and_the_modes_stay(conn, sql, sqlstate):
    set_percent(conn, 40)
    players = [new_player(conn) for _ in range(50)]
    before = conn.execute(
        "select array_agg(bayes.player_mode(id)) from unnest(%s::uuid[]) as id", (players,)
    ).fetchone()
    conn.execute("savepoint s")
    with pytest.raises(psycopg.Error) as err:
        conn.execute(sql)
    conn.execute("rollback to savepoint s")
    assert err.value.sqlstate == sqlstate
    assert conn.execute("select bayes_percent from bayes.rollout").fetchall() == [(40,)]
    after = conn.execute("select array_agg(bayes.player_mode(id)) from unnest(%s::uuid[]) as id", (players,)).fetchone()
    assert after == before


def test_without_its_row_the_rollout_is_everyone_in_shadow(conn):
    """An operator who deletes the row (or truncates the table) gets the installation's default, never a
    result whose mode is null."""
    user_id = new_player(conn)
    set_percent(conn, 100)
    assert send(conn, user_id, "hello there, how are you?", 0, "m0")["mode"] == "bayes"
    conn.execute("delete from bayes.rollout")
    assert conn.execute("select bayes.player_mode(%s)", (user_id,)).fetchone()[0] == "shadow"
    assert send(conn, user_id, "hello there, how are you?", 1, "m1")["mode"] == "shadow"


@pytest.mark.parametrize("role", ["service_role", "authenticated", "anon"])
def test_only_the_owner_moves_the_cohorts(conn, role):
    user_id = new_player(conn)
    act_as(conn, role, user_id if role == "authenticated" else None)
    conn.execute("savepoint s")
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute("update bayes.rollout set bayes_percent = 100")
    conn.execute("rollback to savepoint s")
    if role == "service_role":  # the backend may read the share and a player's mode
        assert conn.execute("select bayes_percent from bayes.rollout").fetchone() == (0,)
        assert conn.execute("select bayes.player_mode(%s)", (user_id,)).fetchone() == ("shadow",)
    else:
        for sql in ("select bayes_percent from bayes.rollout", "select bayes.player_mode(%s)"):
            conn.execute("savepoint s")
            with pytest.raises(errors.InsufficientPrivilege):
                conn.execute(sql, (user_id,) if "%s" in sql else None)
            conn.execute("rollback to savepoint s")


# ---------------------------------------------------------------- the LLM's vices and mood of a message

LLM_SQL = "select public.bayes_apply_llm_scores(%s, %s, %s, %s, %s)"


def player_with_a_message(conn):
    user_id = new_player(conn)
    send(conn, user_id, "haha let's go to a bar tonight, something crazy", 0, "m0", 30.0)
    return user_id


@pytest.mark.parametrize(
    "vices, mood",
    [
        ({"risk_taking": 0.8, "substances": 1, "dark_humor": 0}, "playful"),
        ({"vulnerability": 0.25}, None),
        (None, "defensive"),
        ({}, None),
    ],
)
def test_the_llms_vices_and_mood_are_stored_in_the_event_and_change_nothing_in_the_state(conn, params, vices, mood):
    user_id = player_with_a_message(conn)
    state_of = "select state::text from public.user_bayesian_state where user_id = %s"
    before = conn.execute(state_of, (user_id,)).fetchone()[0]
    deltas = {"intimacy": 3, "trust": -1.5}
    result = conn.execute(
        LLM_SQL, (user_id, json.dumps(deltas), "m0", None if vices is None else json.dumps(vices), mood)
    ).fetchone()[0]
    want = {"v": 2, "deltas": deltas}
    if vices is not None:
        want["vices"] = vices
    if mood is not None:
        want["mood"] = mood
    assert last_event_input(conn, user_id) == want
    # the state is what the deltas alone make of it, in the Python engine
    expected = codec.decode(before)
    events.apply_llm_scores(expected, params, deltas)
    assert codec.decode(conn.execute(state_of, (user_id,)).fetchone()[0]) == codec.decode(codec.encode(expected))
    assert result["duplicate"] is False and result["version"] == 3 and result["mode"] == "shadow"
    assert conn.execute(
        "select bayes.replay(%s) = state from public.user_bayesian_state where user_id = %s", (user_id, user_id)
    ).fetchone()[0]


def test_the_shorter_calls_still_work(conn):
    user_id = player_with_a_message(conn)
    three = conn.execute("select public.bayes_apply_llm_scores(%s, '{\"trust\": 2}', 'm0')", (user_id,)).fetchone()[0]
    two = conn.execute("select public.bayes_apply_llm_scores(%s, '{\"trust\": 2}')", (user_id,)).fetchone()[0]
    named = conn.execute(
        "select public.bayes_apply_llm_scores(p_user_id => %s, p_deltas => '{\"trust\": 2}', p_message_id => 'm1',"
        " p_mood => 'anxious')",
        (user_id,),
    ).fetchone()[0]
    assert (three["version"], two["version"], named["version"]) == (3, 4, 5)
    assert last_event_input(conn, user_id) == {"v": 2, "deltas": {"trust": 2}, "mood": "anxious"}


def test_a_repeated_judgement_keeps_the_first(conn):
    user_id = player_with_a_message(conn)
    first = conn.execute(LLM_SQL, (user_id, '{"trust": 2}', "m0", '{"risk_taking": 0.5}', "playful")).fetchone()[0]
    again = conn.execute(LLM_SQL, (user_id, '{"trust": -2}', "m0", '{"sexuality": 1}', "withdrawn")).fetchone()[0]
    assert again == {**first, "duplicate": True}
    assert last_event_input(conn, user_id) == {
        "v": 2,
        "deltas": {"trust": 2},
        "vices": {"risk_taking": 0.5},
        "mood": "playful",
    }


BAD_JUDGEMENTS = [
    # (p_vices, p_mood, p_message_id, SQLSTATE, words of the message)
    ("[0.5]", None, "m0", "22023", "p_vices must be a JSON object"),
    ('"risk_taking"', None, "m0", "22023", "p_vices must be a JSON object"),
    ("0.5", None, "m0", "22023", "p_vices must be a JSON object"),
    ("null", None, "m0", "22023", "p_vices must be a JSON object"),
    ('{"gluttony": 0.5}', None, "m0", "22023", 'unknown vice "gluttony"'),
    ('{"risk_taking": 0.5, "Substances": 1}', None, "m0", "22023", 'unknown vice "Substances"'),
    ('{"risk_taking": 1.5}', None, "m0", "22023", "p_vices.risk_taking must be in [0, 1]"),
    ('{"risk_taking": 1.0000000000000000001}', None, "m0", "22023", "p_vices.risk_taking must be in [0, 1]"),
    ('{"risk_taking": -0.1}', None, "m0", "22023", "p_vices.risk_taking must be in [0, 1]"),
    ('{"risk_taking": 1e400}', None, "m0", "22023", "p_vices.risk_taking must be in [0, 1]"),
    ('{"risk_taking": "0.5"}', None, "m0", "22023", "p_vices.risk_taking must be a number"),
    ('{"risk_taking": null}', None, "m0", "22023", "p_vices.risk_taking must be a number"),
    ('{"risk_taking": true}', None, "m0", "22023", "p_vices.risk_taking must be a number"),
    ('{"risk_taking": [1]}', None, "m0", "22023", "p_vices.risk_taking must be a number"),
    ('{"risk_taking": {"p": 1}}', None, "m0", "22023", "p_vices.risk_taking must be a number"),
    (None, "happy", "m0", "22023", 'unknown mood "happy"'),
    (None, "Content", "m0", "22023", 'unknown mood "Content"'),
    (None, "", "m0", "22023", 'unknown mood ""'),
    ('{"risk_taking": 0.5}', "bored", "m0", "22023", 'unknown mood "bored"'),
    ('{"risk_taking": 0.5}', None, None, "22004", "p_message_id"),
    (None, "content", None, "22004", "p_message_id"),
    ('{"risk_taking": 2}', "bored", None, "22004", "p_message_id"),
]


@pytest.mark.parametrize(
    "vices, mood, message_id, sqlstate, words",
    BAD_JUDGEMENTS,
    ids=[f"{i}-{b[4]}" for i, b in enumerate(BAD_JUDGEMENTS)],
)
def test_a_bad_judgement_is_its_sqlstate_and_writes_nothing(dsn, vices, mood, message_id, sqlstate, words):
    with psycopg.connect(dsn, autocommit=True) as conn:
        user_id = player_with_a_message(conn)
        before = written(conn, user_id)
        with pytest.raises(psycopg.Error) as err:
            conn.execute(LLM_SQL, (user_id, '{"trust": 2}', message_id, vices, mood))
        assert err.value.sqlstate == sqlstate, err.value
        assert words in err.value.diag.message_primary, err.value.diag.message_primary
        assert not str(err.value).startswith("plpy"), "validated in SQL, with a clean message"
        assert written(conn, user_id) == before
        # and the message id is still free: the same judgement, corrected, is applied once
        fixed = conn.execute(LLM_SQL, (user_id, '{"trust": 2}', "m0", '{"risk_taking": 0.5}', "playful")).fetchone()[0]
        assert fixed["duplicate"] is False and fixed["version"] == before[1] + 1


@pytest.fixture(scope="module")
def hypothesis_conn(dsn):
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


NUMBER_TEXTS = [
    "0",
    "1",
    "-0",
    "0.5",
    "1.0",
    "1e0",
    "1E-1",
    "0e5",
    "1e-400",
    "-1e-400",
    "0.99999999999999999",
    "2",
    "-1",
]
JSON_VALUE_TEXT = hs.sampled_from(NUMBER_TEXTS) | hs.sampled_from(['"0.5"', "null", "true", "[0.5]", "{}"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cells=hs.lists(hs.tuples(hs.sampled_from([*vocab.VICES, "gluttony"]), JSON_VALUE_TEXT), max_size=4),
    as_object=hs.booleans(),
    mood=hs.none() | hs.sampled_from([*vocab.MOODS, "bored"]),
)
def test_what_sql_takes_the_engine_takes(hypothesis_conn, cells, as_object, mood):
    """bayes.check_llm_judgement (the RPC's check) and bayes_engine's (the replay's): whatever the RPC takes
    and logs, the engine takes when it applies or replays the event."""
    if as_object:
        vices_text = "{" + ", ".join(f'"{name}": {value}' for name, value in cells) + "}"
    else:
        vices_text = "[" + ", ".join(value for _, value in cells) + "]"
    try:
        stored = hypothesis_conn.execute(
            "select bayes.check_llm_judgement(%s::jsonb, %s, 'm'), %s::jsonb::text", (vices_text, mood, vices_text)
        ).fetchone()[1]
    except psycopg.Error as err:
        assert err.sqlstate == "22023"
        return
    model.check_llm_judgement(json.loads(stored), mood)  # never raises for what SQL took


@pytest.mark.parametrize("percent", [0, 0.57, 1.1, 12.34, 33.33, 57.01, 99.99, 100])
def test_the_writers_mode_rule_in_python_equals_bayes_player_mode(conn, percent):
    """The writers compute the mode in Python (bayes_engine.cohort, no SQL call on the message path):
    the same buckets as bayes.user_bucket and the same boundary as bayes.player_mode, at percents
    whose hundredfold is not exact in floating point (1.1 * 100 = 110.00000000000001)."""
    from bayes_engine import cohort

    ids = [uuid.uuid4() for _ in range(3000)]
    set_percent(conn, percent)
    rows = conn.execute(
        "select id, bayes.user_bucket(id, 'rollout'), bayes.player_mode(id) from unnest(%s::uuid[]) as id", (ids,)
    ).fetchall()
    (stored,) = conn.execute("select bayes_percent::float8 from bayes.rollout").fetchone()
    for user_id, bucket, mode in rows:
        assert cohort.user_bucket(str(user_id), "rollout") == bucket
        assert cohort.player_mode(str(user_id), stored) == mode
    # and at the boundary itself: a player of bucket percent*100 - 1 and one of bucket percent*100
    edge = round(percent * 100)
    for target in (edge - 1, edge):
        if not 0 <= target < cohort.BUCKETS:
            continue
        user_id = next(u for u in iter(uuid.uuid4, None) if cohort.user_bucket(str(u), "rollout") == target)
        (mode,) = conn.execute("select bayes.player_mode(%s)", (user_id,)).fetchone()
        assert mode == cohort.player_mode(str(user_id), stored) == ("bayes" if target < edge else "shadow")
