"""What the proxy does that a single node does not (issue 17): a routed call
is a transaction of its own on the partition, committed when the call
returns. A ROLLBACK of the caller's transaction at the proxy does not undo
it, nor does a later error of the same transaction; a single node undoes
both. (Through the API nothing changes: PostgREST runs each RPC in a
transaction of its own, which commits unless the RPC raised, and an RPC
that raises has written nothing, on either side.)"""

from __future__ import annotations

import uuid

import psycopg
import pytest

pytestmark = pytest.mark.e2e

WRITE = "select public.bayes_process_message(%s, 'hello, how was your day?', now(), 'm1')"


def rows(conn, user_id) -> tuple:
    return conn.execute(
        "select (select count(*) from public.user_bayesian_state where user_id = %(u)s),"
        " (select count(*) from bayes.player_event where user_id = %(u)s)",
        {"u": user_id},
    ).fetchone()


def home(proxy_db, partition_dbs, user_id):
    (i,) = proxy_db.execute("select hashtext(%s::text) & %s", (str(user_id), len(partition_dbs) - 1)).fetchone()
    return partition_dbs[i]


def new_player(db) -> uuid.UUID:
    user_id = uuid.uuid4()
    db.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
    return user_id


def test_a_rollback_at_the_proxy_does_not_undo_a_routed_write(db, proxy_db, partition_dbs):
    user_id = new_player(db)  # the single node's players are in auth.users; the same id serves both sides
    for conn in (db, proxy_db):
        with conn.transaction(force_rollback=True):
            conn.execute(WRITE, (user_id,))
            assert conn.execute("select public.bayes_get_state(%s)->>'n'", (user_id,)).fetchone() == ("1",)
    assert rows(db, user_id) == (0, 0), "a single node rolls the message back"
    assert rows(home(proxy_db, partition_dbs, user_id), user_id) == (1, 1), "the partition had committed it"


def test_a_later_error_of_the_same_transaction_does_not_undo_it(db, proxy_db, partition_dbs):
    user_id = new_player(db)
    for conn in (db, proxy_db):
        with pytest.raises(psycopg.errors.InvalidParameterValue), conn.transaction():
            conn.execute(WRITE, (user_id,))
            conn.execute("select public.bayes_advance_chapter(%s, 9)", (user_id,))
    assert rows(db, user_id) == (0, 0)
    assert rows(home(proxy_db, partition_dbs, user_id), user_id) == (1, 1)
