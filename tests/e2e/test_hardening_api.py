"""Issue 12 through the gateway: who may write a state (defect 6) and what a
parameter the engine cannot use does (defect 5). The time window of a
message (defect 1) is in test_message_api.py's table of bad inputs."""

from __future__ import annotations

import json

import psycopg
import pytest
from bayes_dev.support import MODES, new_player
from postgrest.exceptions import APIError

pytestmark = pytest.mark.e2e


def state_row(db, user_id):
    return db.execute(
        "select state::text, version, (select count(*) from bayes.player_event where user_id = %s)"
        " from public.user_bayesian_state where user_id = %s",
        (user_id, user_id),
    ).fetchone()


# ---------------------------------------------------------------- defect 6: direct writes of the state table

GARBAGE = [
    {"c": 1},
    {"v": 1, "c": 2, "junk": True},
    "not an object",
]


# The partitioned mode (issue 17): at the proxy the table is a view over the
# partitions, whose writes answer as the single node's table does (a state's
# DELETE is routed to the player's partition); the rows are read where they
# live (home).
@pytest.mark.parametrize("mode", MODES, indirect=True)
@pytest.mark.parametrize("state", GARBAGE, ids=["chapter only", "unknown key", "a string"])
def test_service_role_cannot_update_the_state_table(service, player, home, state):
    before = state_row(home(player), player)
    with pytest.raises(APIError) as err:
        service.table("user_bayesian_state").update({"state": state}).eq("user_id", str(player)).execute()
    assert (service.status, err.value.code) == (403, "42501")
    assert state_row(home(player), player) == before


@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_service_role_cannot_insert_or_upsert_a_state(service, db, signup, home):
    user_id = signup()
    valid = db.execute("select bayes.default_state(1)").fetchone()[0]
    for attempt in (
        lambda: service.table("user_bayesian_state").insert({"user_id": str(user_id), "state": valid}).execute(),
        lambda: service.table("user_bayesian_state").upsert({"user_id": str(user_id), "state": valid}).execute(),
    ):
        with pytest.raises(APIError) as err:
            attempt()
        assert (service.status, err.value.code) == (403, "42501")
    assert home(user_id).execute(
        "select count(*) from public.user_bayesian_state where user_id = %s", (user_id,)
    ).fetchone() == (0,)


@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_service_role_may_still_read_and_delete_a_state(service, player, home):
    rows = service.table("user_bayesian_state").select("user_id, chapter").eq("user_id", str(player)).execute().data
    assert rows == [{"user_id": str(player), "chapter": 1}]
    service.table("user_bayesian_state").delete().eq("user_id", str(player)).execute()
    assert service.status in (200, 204)
    assert state_row(home(player), player) is None


@pytest.mark.parametrize("mode", MODES, indirect=True)
def test_deleting_a_state_deletes_its_events_and_a_player_may_not(service, player_client, signup, home):
    user_id = signup()
    for i in range(3):
        service.rpc("bayes_process_message", {"p_user_id": str(user_id), "p_message": f"hi {i}"})
    assert state_row(home(user_id), user_id)[2] == 3
    with pytest.raises(APIError) as err:
        player_client(user_id).table("user_bayesian_state").delete().eq("user_id", str(user_id)).execute()
    assert err.value.code == "42501"
    assert state_row(home(user_id), user_id)[2] == 3
    service.table("user_bayesian_state").delete().eq("user_id", str(user_id)).execute()
    assert state_row(home(user_id), user_id) is None
    assert home(user_id).execute(
        "select count(*) from bayes.player_event where user_id = %s", (user_id,)
    ).fetchone() == (0,)
    with pytest.raises(APIError) as err:
        service.rpc("bayes_get_state", {"p_user_id": str(user_id)})
    assert (service.status, err.value.code) == (404, "P0002")


def mutated(db, user_id, path: list, value) -> str:
    state = json.loads(
        db.execute("select state::text from public.user_bayesian_state where user_id = %s", (user_id,)).fetchone()[0]
    )
    target = state
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(state)


# The extremes and their neighbours: states the codec refuses.
REFUSED = [
    (["m", "i", 0], 1e-300, "m.i[0] (alpha)"),
    (["n"], 10**30, "n must be <= "),
    (["b", 4], 1e300, "b[4] (epoch second)"),
    (["h"], KeyError, "h is missing"),
    (["c"], 6, "c must be a chapter"),
    (["d", 2], -1.0, "d[2]"),
    (["v"], 9, "newer than this code"),
    (["g", 0], "fast", "g[0] (mu) must be a number"),
]


@pytest.mark.parametrize("path, value, words", REFUSED, ids=[w for *_, w in REFUSED])
def test_an_operator_write_of_a_state_the_codec_refuses_is_refused(db, player, path, value, words):
    before = state_row(db, player)
    with pytest.raises(psycopg.errors.CheckViolation) as err:
        db.execute(
            "update public.user_bayesian_state set state = %s::jsonb where user_id = %s",
            (mutated(db, player, path, value), player),
        )
    assert str(player) in err.value.diag.message_primary and words in err.value.diag.message_primary
    assert state_row(db, player) == before


def test_an_operator_write_of_a_valid_state_is_taken(db, player):
    db.execute("update public.user_bayesian_state set state = bayes.default_state(3) where user_id = %s", (player,))
    assert db.execute("select chapter from public.user_bayesian_state where user_id = %s", (player,)).fetchone() == (3,)


def test_the_rpcs_still_write(service, db):
    user_id = new_player(db)
    res = service.rpc("bayes_process_message", {"p_user_id": str(user_id), "p_message": "hello, how are you?"})
    assert service.status == 200 and res.data["n"] == 1
    assert service.rpc("bayes_advance_chapter", {"p_user_id": str(user_id), "p_chapter": 2}).data["chapter"] == 2


# ---------------------------------------------------------------- defect 5: parameters the engine cannot use

BAD_PARAMS = [
    ("update bayes.params set value = '1e400' where name = 'discount'", "global.discount"),
    ("update bayes.params set value = '-1e400' where name = 'clock_skew_s'", "global.clock_skew_s"),
    ("update bayes.params set value = '\"0.98\"' where name = 'discount'", "global.discount"),
    ("update bayes.params set value = 'null' where name = 'vice_prior'", "global.vice_prior"),
    ("update bayes.params set value = '[0.5, 0.5]' where name = 'mood_start_belief'", "global.mood_start_belief"),
    ("delete from bayes.params where name = 'timing_max_gap_s'", "global.timing_max_gap_s"),
    ("update bayes.chapter_params set prior_trust_alpha = 'NaN' where chapter = 2", "chapter 2 prior_trust_alpha"),
    ("update bayes.chapter_params set decay_rate_per_h = 'Infinity' where chapter = 4", "chapter 4 decay_rate_per_h"),
    ("update bayes.chapter_params set delay_cap_s = 'NaN' where chapter = 1", "chapter 1 delay_cap_s"),
    ("delete from bayes.chapter_params where chapter = 5", "chapter 5"),
]


@pytest.mark.parametrize("sql, key", BAD_PARAMS, ids=[k for _, k in BAD_PARAMS])
def test_a_parameter_the_engine_cannot_use_is_refused_when_written(db, sql, key):
    revision = db.execute("select revision from bayes.params_revision").fetchone()
    snapshot = db.execute("select bayes.params_snapshot()::text").fetchone()
    with pytest.raises(psycopg.errors.InvalidParameterValue) as err:
        db.execute(sql)
    assert key in err.value.diag.message_primary
    assert db.execute("select revision from bayes.params_revision").fetchone() == revision
    assert db.execute("select bayes.params_snapshot()::text").fetchone() == snapshot


SLIPPED = BAD_PARAMS[:3] + BAD_PARAMS[6:8]


@pytest.mark.parametrize("sql, key", SLIPPED, ids=[k for _, k in SLIPPED])
def test_a_bad_parameter_that_slipped_through_is_a_400_naming_its_key(service, player, db, sql, key):
    """Written with the triggers off (session_replication_role = replica, as a restore might): every RPC is a
    400 with 22023 naming the key, never a 500 (38000)."""
    saved = save_params(db)
    db.execute("set session_replication_role = replica")
    try:
        db.execute(sql)
        db.execute("update bayes.params_revision set revision = revision + 1")
        calls = [
            ("bayes_process_message", {"p_user_id": str(player), "p_message": "hello"}),
            ("bayes_get_state", {"p_user_id": str(player)}),
            ("bayes_boss_readiness", {"p_user_id": str(player)}),
            ("bayes_fallback_check", {"p_user_id": str(player)}),
            ("bayes_record_outcome", {"p_user_id": str(player), "p_decision": "skip", "p_engaged": True}),
        ]
        for fn, args in calls:
            with pytest.raises(APIError) as err:
                service.rpc(fn, args)
            assert (service.status, err.value.code) == (400, "22023"), (fn, err.value.message)
            assert key in err.value.message, (fn, err.value.message)
    finally:
        restore_params(db, saved)
        db.execute("set session_replication_role = origin")


def save_params(db) -> tuple[str, str]:
    return db.execute(
        "select (select jsonb_agg(c) from bayes.chapter_params as c)::text,"
        " (select jsonb_agg(p) from bayes.params as p)::text"
    ).fetchone()


def restore_params(db, saved: tuple[str, str]) -> None:
    """Put back the rows that save_params read (the triggers are off)."""
    db.execute("delete from bayes.chapter_params")
    db.execute("delete from bayes.params")
    db.execute(
        "insert into bayes.chapter_params select * from jsonb_populate_recordset(null::bayes.chapter_params, %s)",
        (saved[0],),
    )
    db.execute("insert into bayes.params select * from jsonb_populate_recordset(null::bayes.params, %s)", (saved[1],))
    db.execute("update bayes.params_revision set revision = revision + 1")
