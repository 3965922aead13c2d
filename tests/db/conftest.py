"""A real PostgreSQL 15 cluster started by pytest-postgresql as the unprivileged
`postgres` user (scripts/pg_ctl_unprivileged), with pg_cron preloaded, turned
into a Supabase-like database by the local bootstrap and the built migrations."""

from __future__ import annotations

import psycopg
import pytest
from bayes_dev.support import ROOT, bootstrap_and_migrate
from pytest_postgresql import factories

DBNAME = "bayes_test"

postgresql_proc = factories.postgresql_proc(
    executable=str(ROOT / "scripts" / "pg_ctl_unprivileged"),
    postgres_options=f"-c shared_preload_libraries=pg_cron -c cron.database_name={DBNAME}",
)


@pytest.fixture(scope="session")
def dsn(postgresql_proc) -> str:
    """The migrated test database, once per session."""
    proc = postgresql_proc
    admin = f"host={proc.host} port={proc.port} user={proc.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create database {DBNAME}")
    url = f"postgresql://{proc.user}@{proc.host}:{proc.port}/{DBNAME}"
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
