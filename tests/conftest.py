"""End-to-end fixtures: a running local stack reached with the real
supabase-py client through the gateway, exactly as the game's backend reaches
a Supabase project, and with psycopg on its database. Shared by tests/e2e and
tests/partitions (tests/db has fixtures of its own).

The stack is the single node (scripts/stack up; the test command starts it),
unless a test is parametrized over the deployment modes, indirectly:
``pytest.mark.parametrize("mode", MODES, indirect=True)`` also runs it on the
partitioned stack that scripts/test starts beside it (issue 17: a PL/Proxy
proxy that PostgREST serves, and 4 partitions). Then ``stack``, ``service``,
``anon``, ``player_client`` and ``db`` are the partitioned stack's (``db``: the
proxy), ``home(user_id)`` is the partition that holds the player's rows, and
``signup()`` makes a player as that mode makes one."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from bayes_dev.support import Client, new_player, partitioned_stack_env, player_jwt, stack_env


@pytest.fixture(scope="session")
def mode(request) -> str:
    """The deployment of the fixtures below: "single" unless parametrized (indirect) with "partitioned"."""
    return getattr(request, "param", "single")


@pytest.fixture(scope="session")
def stack(mode) -> dict[str, str]:
    """`scripts/stack env` of the mode's stack; the partitioned one's also has PARTITIONS, its partitions' URLs."""
    try:
        return stack_env() if mode == "single" else partitioned_stack_env()
    except Exception as exc:  # noqa: BLE001 - say what to do instead
        pytest.fail(f"the local {mode} stack is not up ({exc}): run scripts/stack up, or scripts/test")


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
    """An autocommit connection to the database PostgREST serves (the single node, or the proxy)."""
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def home(stack, db):
    """home(user_id): an autocommit connection to the database that holds the player's rows: the single
    node, or the partition PL/Proxy sends him to (hashtext(user_id::text) & (N - 1), computed by the proxy)."""
    partitions = stack.get("PARTITIONS")
    conns: dict[int, psycopg.Connection] = {}

    def get(user_id: uuid.UUID) -> psycopg.Connection:
        if not partitions:
            return db
        (i,) = db.execute("select hashtext(%s::text) & %s", (str(user_id), len(partitions) - 1)).fetchone()
        if i not in conns:
            conns[i] = psycopg.connect(partitions[i], autocommit=True)
        return conns[i]

    yield get
    for conn in conns.values():
        conn.close()


@pytest.fixture
def signup(stack, db):
    """signup(): a new player's id: on a single node a real auth.users row, as Supabase Auth creates it at
    sign-up; in the partitioned mode just a new id (a partition has no auth.users: a player exists when he
    first writes)."""

    def make() -> uuid.UUID:
        return uuid.uuid4() if stack.get("PARTITIONS") else new_player(db)

    return make


@pytest.fixture
def player(signup, home) -> uuid.UUID:
    """A signed-up player with a chapter-1 state (committed: the API sees it)."""
    user_id = signup()
    home(user_id).execute(
        "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(1))", (user_id,)
    )
    return user_id
