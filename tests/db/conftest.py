"""A real PostgreSQL 15 cluster started by pytest-postgresql as the unprivileged
`postgres` user (scripts/pg_ctl_unprivileged), with pg_cron preloaded, turned
into a Supabase-like database by the local bootstrap and the built migrations."""

from __future__ import annotations

import psycopg
import pytest
from bayes_dev.support import bootstrap_and_migrate, create_database, cron_cluster

DBNAME = "bayes_test"

postgresql_proc = cron_cluster(DBNAME)


@pytest.fixture(scope="session")
def dsn(postgresql_proc) -> str:
    """The migrated test database, once per session."""
    url = create_database(postgresql_proc, DBNAME)
    bootstrap_and_migrate(url)
    # The migrations schedule the bulk decay every 15 minutes; here the tests
    # call bayes.run_decay themselves, at the instants they choose.
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select cron.unschedule('bayes-run-decay')")
    return url


@pytest.fixture
def conn(dsn):
    """A superuser connection whose work is rolled back after the test."""
    with psycopg.connect(dsn) as c:
        yield c
        c.rollback()
