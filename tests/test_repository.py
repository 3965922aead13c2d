"""The repository's own promises: supabase/migrations is built from the
sources, and the SQL and the Python are lint-clean."""

from __future__ import annotations

import subprocess
import sys

from bayes_dev.support import ROOT


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_supabase_migrations_are_fresh():
    proc = run(sys.executable, "scripts/build", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_migration_is_frozen():
    """What main carries may be applied anywhere: no draft may reach it (scripts/build --freeze)."""
    proc = run(sys.executable, "scripts/build", "--check")
    drafts = [line for line in proc.stdout.splitlines() if line.startswith("draft:")]
    assert drafts == [], "\n".join(drafts)


def test_supabase_migrations_are_marked_generated():
    attributes = (ROOT / ".gitattributes").read_text().split("\n")
    assert "supabase/migrations/** linguist-generated=true" in attributes


def test_python_is_ruff_clean():
    """ruff, configured in pyproject.toml: lint, then the format check."""
    ruff = str(ROOT / ".venv/bin/ruff")
    lint = run(ruff, "check", "--output-format", "concise", "plpython", "tests", "scripts")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run(ruff, "format", "--check", "plpython", "tests", "scripts")
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_sql_is_sqlfluff_clean():
    proc = run(str(ROOT / ".venv/bin/sqlfluff"), "lint", "sql/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
