"""supabase/schema.sql, the schema snapshot reviewers read, is exactly what the
migrations produce (scripts/schema_snapshot.py says what it holds).

When the test fails and the difference is intended, regenerate the file and
commit it with the change that caused it:

    BAYES_WRITE_SCHEMA_SNAPSHOT=1 .venv/bin/python -m pytest -q tests/db/test_schema_snapshot.py
"""

from __future__ import annotations

import difflib
import importlib.util
import os

import psycopg
import pytest
from bayes_dev.support import ROOT, bootstrap_and_migrate
from pytest_postgresql import factories

pytestmark = pytest.mark.db

DBNAME = "bayes_schema"
WRITE_ENV = "BAYES_WRITE_SCHEMA_SNAPSHOT"
MAX_DIFF_LINES = 120
MAX_LINE_CHARS = 240

# A cluster of its own rather than tests/db/conftest.py's `dsn`: that database
# has its pg_cron job unscheduled and is shared with tests that commit; the
# snapshot wants the database exactly as the bootstrap and the migrations leave it.
schema_proc = factories.postgresql_proc(
    executable=str(ROOT / "scripts" / "pg_ctl_unprivileged"),
    postgres_options=f"-c shared_preload_libraries=pg_cron -c cron.database_name={DBNAME}",
)


def snapshot_tool():
    """scripts/schema_snapshot.py, imported from its path."""
    spec = importlib.util.spec_from_file_location("schema_snapshot", ROOT / "scripts" / "schema_snapshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def migrated_url(schema_proc) -> str:
    proc = schema_proc
    admin = f"host={proc.host} port={proc.port} user={proc.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create database {DBNAME}")
    url = f"postgresql://{proc.user}@{proc.host}:{proc.port}/{DBNAME}"
    bootstrap_and_migrate(url)
    return url


def short_diff(committed: str, produced: str) -> str:
    """A unified diff, cut to MAX_DIFF_LINES lines of at most MAX_LINE_CHARS characters."""
    lines = list(
        difflib.unified_diff(
            committed.splitlines(),
            produced.splitlines(),
            "supabase/schema.sql (committed)",
            "supabase/schema.sql (produced by supabase/migrations)",
            lineterm="",
        )
    )
    shown = [line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " [...]" for line in lines]
    if len(shown) > MAX_DIFF_LINES:
        shown = shown[:MAX_DIFF_LINES] + [f"[... {len(lines) - MAX_DIFF_LINES} more diff lines]"]
    return "\n".join(shown)


def test_the_committed_schema_snapshot_is_what_the_migrations_produce(migrated_url):
    tool = snapshot_tool()
    produced = tool.snapshot(migrated_url)
    if os.environ.get(WRITE_ENV) == "1":
        tool.SNAPSHOT.write_text(produced)
        pytest.skip(f"{WRITE_ENV}=1: wrote {tool.SNAPSHOT.relative_to(ROOT)}, compared nothing")
    if not tool.SNAPSHOT.exists():
        message = f"supabase/schema.sql is missing: generate it and commit it:\n\n    {tool.REGENERATE}"
        pytest.fail(message, pytrace=False)
    committed = tool.SNAPSHOT.read_text()
    if produced != committed:
        pytest.fail(
            "supabase/schema.sql is not what supabase/migrations produce. If the difference below is\n"
            "intended, regenerate the file and commit it with your change:\n\n"
            f"    {tool.REGENERATE}\n\n" + short_diff(committed, produced),
            pytrace=False,
        )
