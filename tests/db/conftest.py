"""A real PostgreSQL 15 cluster started by pytest-postgresql as the unprivileged
`postgres` user (scripts/pg_ctl_unprivileged), with pg_cron preloaded, turned
into a Supabase-like database by the local bootstrap and the built migrations."""

from __future__ import annotations

import json

import psycopg
import pytest
from bayes_dev.support import bootstrap_and_migrate, create_database, cron_cluster
from bayes_engine.params import Params

DBNAME = "bayes_test"
# The time window's parameters as the migrations set them (the dsn fixture widens them).
MIGRATED_TIME_WINDOW: dict[str, str] = {}

postgresql_proc = cron_cluster(DBNAME)


@pytest.fixture(scope="session")
def dsn(postgresql_proc) -> str:
    """The migrated test database, once per session."""
    url = create_database(postgresql_proc, DBNAME)
    bootstrap_and_migrate(url)
    # The migrations schedule the bulk decay every 15 minutes, retention
    # hourly and the health snapshot every minute; here the tests run them
    # themselves, at the instants they choose.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select cron.unschedule('bayes-run-decay')")
        conn.execute("select cron.unschedule('bayes-run-retention')")
        conn.execute("select cron.unschedule('bayes-record-health')")
        # Likewise they send messages at the instants they choose (fixed dates,
        # months of simulated absence), far from the database clock: this
        # database accepts send times up to a year ahead of it and ten years back
        # (the widest window bayes.params allows). The tests of
        # the time window itself put the defaults back in their transaction.
        MIGRATED_TIME_WINDOW.update(
            conn.execute(
                "select name, value::text from bayes.params where name in ('clock_skew_s', 'max_message_age_h')"
            ).fetchall()
        )
        conn.execute("update bayes.params set value = '31536000' where name = 'clock_skew_s'")  # a year
        conn.execute("update bayes.params set value = '87600' where name = 'max_message_age_h'")  # ten years
    return url


@pytest.fixture
def conn(dsn):
    """A superuser connection whose work is rolled back after the test."""
    with psycopg.connect(dsn) as c:
        yield c
        c.rollback()


@pytest.fixture
def default_time_window(conn):
    """The time window of the migrations (not the widened one of this database), in the test's transaction."""
    for name, value in MIGRATED_TIME_WINDOW.items():
        conn.execute("update bayes.params set value = %s::jsonb where name = %s", (value, name))
    return MIGRATED_TIME_WINDOW


@pytest.fixture
def db(dsn):
    """An autocommit connection: a bulk decay or retention run commits, so it cannot run inside a transaction block."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


@pytest.fixture
def params(db) -> Params:
    """The parameters of the test database, as the engine reads them."""
    return Params.from_snapshot(json.loads(db.execute("select bayes.params_snapshot()::text").fetchone()[0]))
