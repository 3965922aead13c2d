"""bayes_boss_readiness and bayes_fallback_check through the gateway with
supabase-py: the numbers against an independent computation from the stored
state (scipy), who may call them, and every bad input as a 4xx; on a single
node and through the proxy of the partitioned mode (issue 17), where the
stored state is read on the player's partition."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from bayes_dev import reference
from bayes_dev.support import MODES
from postgrest.exceptions import APIError
from scipy.stats import norm

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("mode", MODES, indirect=True)]

WEIGHTS = {"i": 0.30, "p": 0.25, "t": 0.25, "s": 0.20}
START = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
WARM = [
    "I love talking to you, you make me feel safe and happy 😊",
    "thank you, I trust you so much",
    "you are amazing and kind, what do you dream about?",
    "haha you always make me laugh",
]


@pytest.fixture
def talked(service, signed_up):
    """A player with a dozen warm messages (past the cold start)."""
    for i in range(12):
        service.rpc(
            "bayes_process_message",
            {
                "p_user_id": str(signed_up),
                "p_message": WARM[i % len(WARM)],
                "p_message_id": f"w{i}",
                "p_sent_at": (START + dt.timedelta(minutes=3 * i)).isoformat(),
                "p_reply_gap_s": 60,
            },
        )
    return signed_up


@pytest.fixture
def signed_up(signup) -> uuid.UUID:
    return signup()


def stored(home, user_id):
    db = home(user_id)
    state = db.execute("select state::text from public.user_bayesian_state where user_id = %s", (user_id,)).fetchone()
    return json.loads(state[0])


def closed_form(state):
    mean = 100 * sum(w * a / (a + b) for k, w in WEIGHTS.items() for a, b in [state["m"][k]])
    var = sum(
        (100 * w) ** 2 * a * b / ((a + b) ** 2 * (a + b + 1)) for k, w in WEIGHTS.items() for a, b in [state["m"][k]]
    )
    return mean, var**0.5


def test_readiness_is_the_edgeworth_probability_of_the_stored_state(service, talked, home):
    res = service.rpc("bayes_boss_readiness", {"p_user_id": str(talked)})
    assert service.status == 200
    r = res.data
    state = stored(home, talked)
    mean, sd = closed_form(state)
    assert r["threshold"] == 55 and r["chapter"] == 1 and r["n"] == 12 and r["method"] == "edgeworth"
    assert r["composite"] == pytest.approx(mean, rel=1e-12) and r["composite_sd"] == pytest.approx(sd, rel=1e-12)
    assert r["p_ready"] == pytest.approx(reference.edgeworth(state, 55), abs=1e-12)
    assert r["ready"] is (r["p_ready"] >= 0.7)
    p = r["p_ready"]
    assert r["confidence"] == ("high" if p > 0.9 or p < 0.1 else "medium" if p > 0.6 or p < 0.3 else "low")
    assert r["user_id"] == str(talked) and r["version"] == 13
    normal = service.rpc("bayes_boss_readiness", {"p_user_id": str(talked), "p_method": "normal"}).data
    assert normal["method"] == "normal"
    assert normal["p_ready"] == pytest.approx(norm.sf(55, loc=mean, scale=sd), abs=1e-12)


def test_monte_carlo_readiness_agrees_and_repeats(service, talked):
    edgeworth = service.rpc("bayes_boss_readiness", {"p_user_id": str(talked)}).data
    mc = service.rpc("bayes_boss_readiness", {"p_user_id": str(talked), "p_method": "monte_carlo"}).data
    again = service.rpc("bayes_boss_readiness", {"p_user_id": str(talked), "p_method": "monte_carlo"}).data
    assert mc["method"] == "monte_carlo" and mc["draws"] == 10_000
    p = edgeworth["p_ready"]
    assert abs(mc["p_ready"] - p) <= 4 * (p * (1 - p) / 10_000) ** 0.5 + 0.01  # MODEL.md section 6, plus Edgeworth's
    assert again["p_ready"] == mc["p_ready"]  # seeded by (player, n)


def test_fallback_check_applies_rules_1_and_3_and_consumes_nothing(service, talked, home, signup):
    newcomer = signup()
    db = home(talked)
    cold = service.rpc("bayes_process_message", {"p_user_id": str(newcomer), "p_message": "hi"}).data
    check = service.rpc("bayes_fallback_check", {"p_user_id": str(newcomer)}).data
    assert check == {**check, "needed": True, "reason": "cold_start", "n": 1, "cold_start_messages": 10}
    assert cold["fallback"] == {"needed": True, "reason": "cold_start", "budget_left": 3}
    state = stored(home, talked)
    before = db.execute("select version from public.user_bayesian_state where user_id = %s", (talked,)).fetchone()
    check = service.rpc("bayes_fallback_check", {"p_user_id": str(talked)}).data
    again = service.rpc("bayes_fallback_check", {"p_user_id": str(talked)}).data
    assert again == check  # nothing consumed, nothing written
    assert (
        db.execute("select version from public.user_bayesian_state where user_id = %s", (talked,)).fetchone() == before
    )
    p = reference.edgeworth(state, 55)
    assert check["p_ready"] == pytest.approx(p, abs=1e-12) and check["threshold"] == 55
    assert check["uncertain_band"] == [0.1, 0.9] and check["budget_tokens"] == 3
    assert check["budget_left"] == state["lb"]
    expected = "uncertain" if 0.1 < p < 0.9 else "bayesian_sufficient"
    assert check["reason"] == expected
    assert check["needed"] is (expected == "uncertain" and state["lb"] >= 1)


@pytest.mark.parametrize("fn", ["bayes_boss_readiness", "bayes_fallback_check"])
def test_the_player_reads_his_own_and_no_one_else(fn, player_client, talked, signup):
    own = player_client(talked)
    assert own.rpc(fn, {"p_user_id": str(talked)}).data["user_id"] == str(talked)
    assert own.status == 200
    stranger = player_client(signup())
    with pytest.raises(APIError) as err:
        stranger.rpc(fn, {"p_user_id": str(talked)})
    assert stranger.status == 403 and err.value.code == "42501"


@pytest.mark.parametrize("fn", ["bayes_boss_readiness", "bayes_fallback_check"])
def test_anon_is_refused(fn, anon, talked):
    with pytest.raises(APIError) as err:
        anon.rpc(fn, {"p_user_id": str(talked)})
    assert anon.status in (401, 403) and err.value.code == "42501"


@pytest.mark.parametrize(
    ("fn", "args", "status", "code"),
    [
        ("bayes_boss_readiness", {"p_user_id": None}, 400, "22004"),
        ("bayes_boss_readiness", {"p_method": "bootstrap"}, 400, "22023"),
        ("bayes_boss_readiness", {"p_method": None}, 400, "22004"),
        ("bayes_boss_readiness", {"p_user_id": "unknown"}, 404, "P0002"),
        ("bayes_fallback_check", {"p_user_id": None}, 400, "22004"),
        ("bayes_fallback_check", {"p_user_id": "unknown"}, 404, "P0002"),
    ],
)
def test_bad_input_is_a_4xx_with_its_sqlstate(fn, args, status, code, service, talked):
    params = {"p_user_id": str(talked), **args}
    if params["p_user_id"] == "unknown":
        params["p_user_id"] = str(uuid.uuid4())
    with pytest.raises(APIError) as err:
        service.rpc(fn, params)
    assert service.status == status and err.value.code == code
