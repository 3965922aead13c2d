"""scripts/build: deterministic, never rewrites a committed migration, and
appends a new functions migration when the code changes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support import ROOT


@pytest.fixture
def repo(tmp_path) -> Path:
    """A clone of HEAD with the working tree's build script."""
    dst = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dst)], check=True)
    shutil.copy(ROOT / "scripts" / "build", dst / "scripts" / "build")
    return dst


def build(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(repo / "scripts" / "build"), *args], cwd=repo, capture_output=True, text=True
    )


def migrations(repo: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((repo / "supabase" / "migrations").glob("*.sql"))}


def test_a_clean_clone_is_fresh_and_a_rebuild_changes_nothing(repo):
    before = migrations(repo)
    assert build(repo, "--check").returncode == 0
    assert build(repo).returncode == 0
    assert migrations(repo) == before


def test_changed_code_gets_a_new_functions_migration_after_the_frozen_ones(repo):
    before = migrations(repo)
    with open(repo / "sql" / "functions" / "10_params.sql", "a") as f:
        f.write("\n-- a change\n")
    assert build(repo, "--check").returncode == 1
    assert build(repo).returncode == 0
    after = migrations(repo)
    new = sorted(set(after) - set(before))
    assert len(new) == 1 and "_functions_" in new[0]
    assert all(after[name] == text for name, text in before.items()), "frozen migrations are untouched"
    assert new[0][:14] > max(before)[:14], "the new migration comes last"
    assert "-- a change" in after[new[0]]
    # uncommitted, it is rewritten in place by the next build, not appended again
    with open(repo / "sql" / "functions" / "10_params.sql", "a") as f:
        f.write("-- another change\n")
    assert build(repo).returncode == 0
    again = migrations(repo)
    assert len(again) == len(after)
    assert build(repo, "--check").returncode == 0


def test_an_edited_applied_migration_is_refused(repo):
    path = repo / "sql" / "migrations" / "0001_foundation.sql"
    path.write_text(path.read_text() + "\n-- an edit\n")
    proc = build(repo)
    assert proc.returncode != 0
    assert "put the change in a new file of sql/migrations/" in proc.stderr + proc.stdout


def test_a_new_schema_migration_is_appended_and_the_functions_follow_it(repo):
    before = migrations(repo)
    (repo / "sql" / "migrations" / "0099_example.sql").write_text("select 1;\n")
    assert build(repo, "--check").returncode == 1
    assert build(repo).returncode == 0
    after = migrations(repo)
    new = sorted(set(after) - set(before))
    assert len(new) == 2, new
    assert new[0].endswith("_example.sql") and new[0][:14] > max(before)[:14]
    # the code did not change, but a schema change may drop what the functions
    # created (a dropped column takes its views along): they are applied again
    assert "_functions_" in new[1] and new[1][:14] > new[0][:14]
    latest_before = max(name for name in before if "_functions_" in name)
    assert after[new[1]] == before[latest_before]
    assert build(repo, "--check").returncode == 0
