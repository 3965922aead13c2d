"""Fixtures of the partitioned mode (issue 17): the partitioned stack that
scripts/test starts beside the single node (a PL/Proxy proxy that PostgREST
serves, and 4 partitions, each a cluster of its own), reached through its
gateway with supabase-py and with psycopg on the proxy and on each partition."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from bayes_dev.support import Client, partitioned_stack_env, player_jwt


@pytest.fixture(scope="session")
def pstack() -> dict[str, str]:
    try:
        return partitioned_stack_env()
    except Exception as exc:  # noqa: BLE001 - say what to do instead
        pytest.fail(f"the partitioned stack is not up ({exc}): run scripts/test")


@pytest.fixture(scope="session")
def pservice(pstack) -> Client:
    return Client(pstack["API_URL"], pstack["SERVICE_ROLE_KEY"])


@pytest.fixture(scope="session")
def panon(pstack) -> Client:
    return Client(pstack["API_URL"], pstack["ANON_KEY"])


@pytest.fixture(scope="session")
def pplayer_client(pstack):
    """A client holding a player's JWT, signed with the partitioned stack's secret."""

    def make(user_id: uuid.UUID) -> Client:
        return Client(pstack["API_URL"], pstack["ANON_KEY"], bearer=player_jwt(pstack["JWT_SECRET"], user_id))

    return make


@pytest.fixture
def proxy_db(pstack):
    """An autocommit connection to the proxy database."""
    with psycopg.connect(pstack["DB_URL"], autocommit=True) as conn:
        yield conn


@pytest.fixture
def partition_dbs(pstack):
    """Autocommit connections to every partition, in partition order."""
    conns = [psycopg.connect(url, autocommit=True) for url in pstack["PARTITIONS"]]
    try:
        yield conns
    finally:
        for conn in conns:
            conn.close()
