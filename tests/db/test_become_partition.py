"""bayes.become_partition (issue 17): a database running the migrations becomes
partition i of n of the partitioned mode, once, on a cluster of its own
(pytest-postgresql, with the migrations). Each test works in a transaction
that is rolled back (the function's DDL is transactional), so each starts
from the migrated database that was never a partition."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from bayes_dev.support import bootstrap_and_migrate, create_database, cron_cluster
from psycopg import errors

pytestmark = pytest.mark.db

DBNAME = "bayes_partition"
INDEX, COUNT = 1, 4

partition_proc = cron_cluster(DBNAME)


@pytest.fixture(scope="module")
def partition_dsn(partition_proc) -> str:
    url = create_database(partition_proc, DBNAME)
    bootstrap_and_migrate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        for job in ("bayes-run-decay", "bayes-run-retention", "bayes-record-health"):
            conn.execute("select cron.unschedule(%s)", (job,))
    return url


@pytest.fixture
def conn(partition_dsn):
    """A superuser connection whose work, becoming a partition included, is rolled back after the test."""
    with psycopg.connect(partition_dsn) as c:
        yield c
        c.rollback()


def partition_of(conn, user_id: uuid.UUID, count: int = COUNT) -> int:
    return conn.execute("select hashtext(%s::text) & %s", (str(user_id), count - 1)).fetchone()[0]


def player_of(conn, part: int, count: int = COUNT) -> uuid.UUID:
    """A new player id whose rows belong to partition `part` of `count`."""
    while True:
        user_id = uuid.uuid4()
        if partition_of(conn, user_id, count) == part:
            return user_id


def signed_up_player(conn, part: int) -> uuid.UUID:
    """A player of partition `part` who signed up (auth.users, as a single node needs) and sent two messages."""
    user_id = player_of(conn, part)
    conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
    for k in range(2):
        conn.execute(
            "select public.bayes_process_message(%s, 'hello there, how are you?', now(), %s)", (user_id, f"m{k}")
        )
    return user_id


def become(conn, index: int | None = INDEX, count: int | None = COUNT) -> None:
    conn.execute("select bayes.become_partition(%s, %s)", (index, count))


def refused(conn, exc_type, *args) -> psycopg.errors.Error:
    with pytest.raises(exc_type) as err, conn.transaction():
        become(conn, *args)
    return err.value


def partition_rows(conn) -> list[tuple]:
    return conn.execute("select partition_index, partition_count from bayes.partition").fetchall()


def constraints(conn) -> set[tuple]:
    return set(
        conn.execute(
            "select conrelid::regclass::text, conname from pg_constraint"
            " where conrelid in ('public.user_bayesian_state'::regclass, 'bayes.player_event'::regclass,"
            " 'bayes.player_checkpoint'::regclass) and (conname like '%%partition' or contype = 'f')"
        ).fetchall()
    )


NEVER_A_PARTITION = {("user_bayesian_state", "user_bayesian_state_user_id_fkey")}
PARTITION_CHECKS = {
    ("user_bayesian_state", "user_bayesian_state_partition"),
    ("bayes.player_event", "player_event_partition"),
    ("bayes.player_checkpoint", "player_checkpoint_partition"),
}


def test_bad_arguments_are_refused_and_change_nothing(conn):
    assert (
        refused(conn, errors.NullValueNotAllowed, None, 4).diag.message_primary
        == "p_index and p_count must not be null"
    )
    assert refused(conn, errors.NullValueNotAllowed, 0, None).sqlstate == "22004"
    for index, count in ((4, 4), (-1, 4), (0, 3), (0, 0), (1, 1), (0, -4)):
        error = refused(conn, errors.InvalidParameterValue, index, count)
        assert error.diag.message_primary == f"no partition {index} of {count}"
        assert "power of two" in error.diag.message_hint
    assert partition_rows(conn) == []
    assert constraints(conn) == NEVER_A_PARTITION


def test_a_database_holding_another_partitions_players_refuses(conn):
    signed_up_player(conn, INDEX)
    foreign = [signed_up_player(conn, part) for part in (0, 2, 3, 3)]
    error = refused(conn, errors.CheckViolation)
    assert (
        error.diag.message_primary == f"{len(foreign)} players of this database belong to other partitions than 1 of 4"
    )
    assert partition_rows(conn) == [] and constraints(conn) == NEVER_A_PARTITION


def test_a_database_becomes_a_partition_once(conn):
    signed_up_player(conn, INDEX)
    become(conn)
    assert partition_rows(conn) == [(INDEX, COUNT)]
    assert constraints(conn) == PARTITION_CHECKS, "the foreign key to auth.users is gone"
    become(conn)  # the same partition again: nothing to do
    assert partition_rows(conn) == [(INDEX, COUNT)]
    for index, count in ((0, 4), (1, 8), (1, 2)):
        error = refused(conn, errors.ObjectNotInPrerequisiteState, index, count)
        assert error.diag.message_primary == "this database is already partition 1 of 4"
    assert partition_rows(conn) == [(INDEX, COUNT)]
    # the proxy's login may act as the API roles (through bayes_partition only), in ISO and UTC
    assert set(
        conn.execute(
            "select r.rolname from pg_auth_members as m join pg_roles as r on r.oid = m.roleid"
            " where m.member = 'bayes_proxy'::regrole"
        ).fetchall()
    ) == {("anon",), ("authenticated",), ("service_role",)}
    (settings,) = conn.execute(
        "select setconfig from pg_db_role_setting where setrole = 'bayes_proxy'::regrole and setdatabase = 0"
    ).fetchone()
    assert set(settings) == {"DateStyle=ISO", "TimeZone=UTC"}


def test_a_partition_refuses_the_rows_of_the_others(conn):
    become(conn)
    own, other = player_of(conn, INDEX), player_of(conn, 3)
    conn.execute("insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(1))", (own,))
    inserts = [
        "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(1))",
        "insert into bayes.player_event (user_id, occurred_at, kind, input) values (%s, now(), 'message', '\\x00')",
        "insert into bayes.player_checkpoint (user_id, retained_since, params_revision) values (%s, now(), 1)",
    ]
    names = ["user_bayesian_state_partition", "player_event_partition", "player_checkpoint_partition"]
    for sql, name in zip(inserts, names, strict=True):
        with pytest.raises(errors.CheckViolation) as err, conn.transaction():
            conn.execute(sql, (other,))
        assert err.value.diag.constraint_name == name


def test_event_ids_are_unique_across_partitions(conn):
    """Partition i numbers its events i + 1, i + 1 + n, ... from past its own log's last one: ids of the
    partitions never meet, and each partition's still grow in log order."""
    before = [signed_up_player(conn, INDEX) for _ in range(3)]
    (last,) = conn.execute("select max(event_id) from bayes.player_event").fetchone()
    assert last >= 6
    become(conn)
    user_id = player_of(conn, INDEX)
    for k in range(5):
        conn.execute("select public.bayes_process_message(%s, 'and then?', now(), %s)", (user_id, f"m{k}"))
    conn.execute("select public.bayes_record_outcome(%s, 'reply', true)", (before[0],))
    ids = [
        event_id
        for (event_id,) in conn.execute(
            "select event_id from bayes.player_event where event_id > %s order by event_id", (last,)
        )
    ]
    assert len(ids) == 6
    assert all(event_id % COUNT == (INDEX + 1) % COUNT for event_id in ids), ids
    assert ids == sorted(set(ids)) and ids[0] - last <= COUNT
    assert [b - a for a, b in zip(ids, ids[1:])] == [COUNT] * 5


def test_a_player_exists_when_he_first_writes(conn):
    """No auth.users on a partition: a player without one writes (a single node refuses him, P0002), and
    a player who never wrote is unknown to the reads (P0002)."""
    user_id = player_of(conn, INDEX)
    with pytest.raises(errors.NoDataFound, match="in auth.users"), conn.transaction():
        conn.execute("select public.bayes_process_message(%s, 'hi', now(), 'm1')", (user_id,))
    become(conn)
    (n,) = conn.execute("select public.bayes_process_message(%s, 'hi', now(), 'm1')->>'n'", (user_id,)).fetchone()
    assert n == "1"
    assert conn.execute("select count(*) from auth.users where id = %s", (user_id,)).fetchone() == (0,)
    with pytest.raises(errors.NoDataFound, match="no Bayesian state for player"), conn.transaction():
        conn.execute("select public.bayes_get_state(%s)", (player_of(conn, INDEX),))
