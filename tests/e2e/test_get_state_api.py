"""bayes_get_state through the gateway with supabase-py: the whole path, on a
single node and (but for the table's reads) through the proxy of the
partitioned mode (issue 17)."""

from __future__ import annotations

import uuid

import pytest
from bayes_dev.support import MODES
from postgrest.exceptions import APIError

pytestmark = pytest.mark.e2e
BOTH = pytest.mark.parametrize("mode", MODES, indirect=True)


@BOTH
def test_service_role_reads_a_state(service, player):
    res = service.rpc("bayes_get_state", {"p_user_id": str(player)})
    assert service.status == 200
    state = res.data
    assert state["user_id"] == str(player)
    assert state["chapter"] == 1 and state["n"] == 0
    assert set(state["metrics"]) == {"intimacy", "passion", "trust", "secureness"}
    assert state["metrics"]["intimacy"]["mean"] == pytest.approx(1.5 / 7.5)
    assert 0 < state["composite"] < 100
    assert state["boss"]["threshold"] == 55


@BOTH
def test_anon_key_is_refused_never_500(anon, player):
    with pytest.raises(APIError) as err:
        anon.rpc("bayes_get_state", {"p_user_id": str(player)})
    assert anon.status in (401, 403)
    assert err.value.code == "42501"


@BOTH
def test_player_reads_his_own_state(player_client, player):
    client = player_client(player)
    res = client.rpc("bayes_get_state", {"p_user_id": str(player)})
    assert client.status == 200
    assert res.data["user_id"] == str(player)


@BOTH
def test_player_is_denied_another_players_state(player_client, player, signup):
    other = signup()
    client = player_client(other)
    with pytest.raises(APIError) as err:
        client.rpc("bayes_get_state", {"p_user_id": str(player)})
    assert client.status == 403
    assert err.value.code == "42501"
    assert "only his own" in err.value.message


@BOTH
def test_unknown_player_is_404(service):
    with pytest.raises(APIError) as err:
        service.rpc("bayes_get_state", {"p_user_id": str(uuid.uuid4())})
    assert service.status == 404
    assert err.value.code == "P0002"


@BOTH
def test_null_player_is_400(service):
    with pytest.raises(APIError) as err:
        service.rpc("bayes_get_state", {"p_user_id": None})
    assert service.status == 400
    assert err.value.code == "22004"


# A single node's only: the proxy's public.user_bayesian_state is its own table (issue 17's analytics part
# makes it the partitions' states).
def test_table_reads_go_through_rls(player_client, anon, player, db, signup):
    other = signup()
    db.execute("insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(2))", (other,))
    client = player_client(player)
    rows = client.table("user_bayesian_state").select("user_id, chapter").execute().data
    assert rows == [{"user_id": str(player), "chapter": 1}]
    with pytest.raises(APIError):
        anon.table("user_bayesian_state").select("user_id").execute()
    assert anon.status in (401, 403)


@BOTH
def test_players_cannot_write_their_row(player_client, player):
    client = player_client(player)
    with pytest.raises(APIError) as err:
        client.table("user_bayesian_state").update({"version": 99}).eq("user_id", str(player)).execute()
    assert client.status in (401, 403)
    assert err.value.code == "42501"


@BOTH
def test_internal_schema_is_not_exposed(service):
    with pytest.raises(APIError):
        service.rpc("py_load", {})
    assert service.status == 404


@BOTH
@pytest.mark.parametrize(
    "corruption, code, status",
    [
        ("jsonb_set(state, '{v}', '3')", "0A000", 400),  # written by a newer engine: deploy it
        ("jsonb_set(state, '{h}', '[1, 1, 1, 1, 1, 1]')", "XX001", 500),  # a corrupt row is a server fault
    ],
)
def test_a_bad_stored_state_is_an_error_never_a_reset(service, player, home, corruption, code, status):
    read = "select state, version from public.user_bayesian_state where user_id = %s"
    db = home(player)
    with db.transaction():  # planted past the table's check (issue 12), as a restore or a bug might write it
        db.execute("set local session_replication_role = replica")
        db.execute(f"update public.user_bayesian_state set state = {corruption} where user_id = %s", (player,))
    stored = db.execute(read, (player,)).fetchone()
    with pytest.raises(APIError) as err:
        service.rpc("bayes_get_state", {"p_user_id": str(player)})
    assert (err.value.code, service.status) == (code, status)
    assert db.execute(read, (player,)).fetchone() == stored, "the row is left as it was"
