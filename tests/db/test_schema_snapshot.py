"""supabase/schema.sql, the schema snapshot reviewers read, is exactly what the
migrations produce (scripts/schema_snapshot.py says what it holds).

When the test fails and the difference is intended, regenerate the file and
commit it with the change that caused it:

    BAYES_WRITE_SCHEMA_SNAPSHOT=1 .venv/bin/python -m pytest -q tests/db/test_schema_snapshot.py
"""

from __future__ import annotations

import difflib
import os

import pytest
from bayes_dev.support import ROOT, bootstrap_and_migrate, create_database, cron_cluster, schema_snapshot_tool

pytestmark = pytest.mark.db

DBNAME = "bayes_schema"
WRITE_ENV = "BAYES_WRITE_SCHEMA_SNAPSHOT"
MAX_DIFF_LINES = 120
MAX_LINE_CHARS = 240

# A cluster of its own rather than tests/db/conftest.py's `dsn`: that database
# has its pg_cron job unscheduled and is shared with tests that commit; the
# snapshot wants the database exactly as the bootstrap and the migrations leave it.
schema_proc = cron_cluster(DBNAME)


@pytest.fixture(scope="module")
def migrated_url(schema_proc) -> str:
    url = create_database(schema_proc, DBNAME)
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
    tool = schema_snapshot_tool()
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
