"""Routing of the partitioned mode (issue 17): each player's rows live on the
partition PL/Proxy sends him to, hashtext(user_id::text) & (N - 1), and a
partition refuses the rows of the others."""

from __future__ import annotations

import uuid

import psycopg
import pytest

pytestmark = pytest.mark.e2e


def test_each_player_lives_on_the_partition_of_his_hash(pstack, proxy_db, partition_dbs):
    n = len(partition_dbs)
    players = [uuid.uuid4() for _ in range(24)]
    for user_id in players:
        proxy_db.execute("select public.bayes_process_message(%s, 'hello, how was your day?', now(), 'm1')", (user_id,))
    for user_id in players:
        (expected,) = proxy_db.execute("select hashtext(%s::text) & %s", (str(user_id), n - 1)).fetchone()
        found = [
            i
            for i, conn in enumerate(partition_dbs)
            if conn.execute("select 1 from public.user_bayesian_state where user_id = %s", (user_id,)).fetchone()
        ]
        assert found == [expected], user_id


def test_a_partition_refuses_the_rows_of_another(partition_dbs):
    n = len(partition_dbs)
    conn = partition_dbs[0]
    while True:
        user_id = uuid.uuid4()
        (part,) = conn.execute("select hashtext(%s::text) & %s", (str(user_id), n - 1)).fetchone()
        if part != 0:
            break
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute(
            "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(1))", (user_id,)
        )
