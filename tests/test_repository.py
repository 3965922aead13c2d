"""The repository's own promises: supabase/migrations is built from the
sources, and the SQL is lint-clean."""

from __future__ import annotations

import subprocess
import sys

from support import ROOT


def run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def test_supabase_migrations_are_fresh():
    proc = run(sys.executable, "scripts/build", "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_sql_is_sqlfluff_clean():
    proc = run(str(ROOT / ".venv/bin/sqlfluff"), "lint", "sql/")
    assert proc.returncode == 0, proc.stdout + proc.stderr
