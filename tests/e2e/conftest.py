"""End-to-end fixtures: the running local stack (scripts/stack up; the test
command starts it) reached with the real supabase-py client through the
gateway, exactly as the game's backend reaches a Supabase project."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from bayes_dev.support import Client, new_player, player_jwt, stack_env


@pytest.fixture(scope="session")
def stack() -> dict[str, str]:
    try:
        env = stack_env()
    except Exception as exc:  # noqa: BLE001 - say what to do instead
        pytest.fail(f"the local stack is not up ({exc}): run scripts/stack up, or scripts/test")
    return env


@pytest.fixture(scope="session")
def service(stack) -> Client:
    return Client(stack["API_URL"], stack["SERVICE_ROLE_KEY"])


@pytest.fixture(scope="session")
def anon(stack) -> Client:
    return Client(stack["API_URL"], stack["ANON_KEY"])


@pytest.fixture(scope="session")
def player_client(stack):
    """A client holding a player's JWT, signed with the stack's secret as Supabase Auth signs it."""

    def make(user_id: uuid.UUID) -> Client:
        return Client(stack["API_URL"], stack["ANON_KEY"], bearer=player_jwt(stack["JWT_SECRET"], user_id))

    return make


@pytest.fixture
def db(stack):
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def player(db) -> uuid.UUID:
    """A signed-up player with a chapter-1 state (committed: the API sees it)."""
    user_id = new_player(db)
    db.execute(
        "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(1))", (user_id,)
    )
    return user_id
