"""scripts/build: deterministic, never rewrites a frozen migration, and a
functions migration carries only what changed (a module, a file of
sql/functions/), so that it grows with the change."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from bayes_dev.support import clone_repo

MODULE = "plpython/bayes_engine/wire.py"
INSTALL_RE = re.compile(r"^select bayes\.install_py_module\('([a-z_.]+)'", re.M)
FILE_RE = re.compile(r"^-- file (sql/functions/\S+) sha256 ", re.M)


@pytest.fixture
def repo(tmp_path) -> Path:
    return clone_repo(tmp_path / "repo")


def build(repo: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(repo / "scripts" / "build"), *args]
    return subprocess.run(cmd, cwd=repo, capture_output=True, text=True)


def migrations(repo: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted((repo / "supabase" / "migrations").glob("*.sql"))}


def new_files(before: dict[str, str], after: dict[str, str]) -> list[str]:
    assert all(after[name] == text for name, text in before.items()), "frozen migrations are untouched"
    new = sorted(set(after) - set(before))
    assert all(name[:14] > max(before)[:14] for name in new), "new migrations come last"
    return new


def append(path: Path, line: str) -> None:
    with open(path, "a") as f:
        f.write(line)


def test_a_clean_clone_is_fresh_and_a_rebuild_changes_nothing(repo):
    before = migrations(repo)
    assert build(repo, "--check").returncode == 0
    assert build(repo).returncode == 0
    assert migrations(repo) == before


def test_a_one_line_change_to_a_module_adds_a_migration_of_that_module_alone(repo):
    before = migrations(repo)
    append(repo / MODULE, "# a one-line change\n")
    assert build(repo, "--check").returncode == 1
    assert build(repo).returncode == 0
    new = new_files(before, migrations(repo))
    assert len(new) == 1 and "_functions_" in new[0]
    text = (repo / "supabase" / "migrations" / new[0]).read_text()
    assert INSTALL_RE.findall(text) == ["bayes_engine.wire"]
    assert FILE_RE.findall(text) == []
    # the source, dollar-quoted with its real newlines, so that a diff of the
    # migration reads like a diff of the module
    assert (repo / MODULE).read_text() in text
    module_size = len((repo / MODULE).read_bytes())
    assert len(text.encode()) <= 8 * 1024 + module_size


def test_a_changed_file_of_sql_functions_is_carried_alone(repo):
    before = migrations(repo)
    append(repo / "sql" / "functions" / "10_params.sql", "\n-- a change\n")
    assert build(repo).returncode == 0
    new = new_files(before, migrations(repo))
    text = (repo / "supabase" / "migrations" / new[0]).read_text()
    assert len(new) == 1 and FILE_RE.findall(text) == ["sql/functions/10_params.sql"]
    assert INSTALL_RE.findall(text) == []
    assert "-- a change" in text


def test_a_draft_is_rewritten_in_place_until_it_is_frozen(repo):
    before = migrations(repo)
    append(repo / MODULE, "# one change\n")
    assert build(repo).returncode == 0
    draft = new_files(before, migrations(repo))
    append(repo / MODULE, "# another change\n")
    assert build(repo).returncode == 0
    again = migrations(repo)
    assert len(again) == len(before) + 1, "the draft was rewritten, not appended again"
    assert "# another change" in again[sorted(set(again) - set(before))[0]]
    check = build(repo, "--check")
    assert check.returncode == 0 and "draft:" in check.stdout

    assert build(repo, "--freeze").returncode == 0
    manifest = (repo / "supabase" / "frozen-migrations.txt").read_text()
    assert sorted(set(again) - set(before))[0] in manifest and draft[0][:14] in manifest
    frozen = migrations(repo)
    append(repo / MODULE, "# a change after the freeze\n")
    assert build(repo).returncode == 0
    newer = new_files(frozen, migrations(repo))
    assert len(newer) == 1, "a frozen draft is never rewritten: the next change is a new migration"


def test_an_edited_frozen_migration_is_refused(repo):
    path = sorted((repo / "supabase" / "migrations").glob("*_foundation.sql"))[0]
    path.write_text(path.read_text() + "\n-- an edit\n")
    proc = build(repo)
    assert proc.returncode != 0
    assert "was edited" in proc.stderr


def test_an_edited_applied_schema_migration_is_refused(repo):
    path = repo / "sql" / "migrations" / "0001_foundation.sql"
    path.write_text(path.read_text() + "\n-- an edit\n")
    proc = build(repo)
    assert proc.returncode != 0
    assert "put the change in a new file of sql/migrations/" in proc.stderr + proc.stdout


def test_a_new_schema_migration_is_appended_and_every_function_file_follows_it(repo):
    before = migrations(repo)
    (repo / "sql" / "migrations" / "0099_example.sql").write_text("select 1;\n")
    assert build(repo, "--check").returncode == 1
    assert build(repo).returncode == 0
    new = new_files(before, migrations(repo))
    assert len(new) == 2, new
    assert new[0].endswith("_example.sql")
    # the code did not change, but a schema change may drop what the functions
    # created (a dropped column takes its views along): they are applied again
    text = (repo / "supabase" / "migrations" / new[1]).read_text()
    assert "_functions_" in new[1]
    files = sorted(f"sql/functions/{p.name}" for p in (repo / "sql" / "functions").glob("*.sql"))
    assert FILE_RE.findall(text) == files
    assert INSTALL_RE.findall(text) == []
    assert build(repo, "--check").returncode == 0


def test_a_removed_module_is_deleted_from_the_table(repo):
    before = migrations(repo)
    (repo / "plpython" / "bayes_engine" / "extra.py").write_text("X = 1\n")
    assert build(repo, "--freeze").returncode == 0
    frozen = migrations(repo)
    assert INSTALL_RE.findall(frozen[new_files(before, frozen)[0]]) == ["bayes_engine.extra"]
    (repo / "plpython" / "bayes_engine" / "extra.py").unlink()
    assert build(repo).returncode == 0
    text = migrations(repo)[new_files(frozen, migrations(repo))[0]]
    assert "delete from bayes.py_module where name = 'bayes_engine.extra';" in text


def test_placeholders_are_expanded_from_vocab_and_the_shim_is_written_once(repo):
    text = "".join(migrations(repo).values())
    assert not re.search(r"^@bayes_engine ", text, re.M) and "@MOODS@" not in text and "@VICES@" not in text
    assert "from bayes_engine import pg\nreturn pg.step(plpy, p_kind," in text
    assert "array['content', 'playful', 'anxious', 'avoidant', 'defensive', 'withdrawn']" in text
    (repo / "sql" / "functions" / "99_bad.sql").write_text("select '@NOT_A_NAME@';\n")
    proc = build(repo)
    assert proc.returncode != 0 and "@NOT_A_NAME@" in proc.stderr


def test_a_baseline_replaces_the_frozen_migrations_and_the_build_goes_on_from_it(repo):
    before = migrations(repo)
    proc = build(repo, "--baseline")
    assert proc.returncode == 0, proc.stderr
    [baseline] = migrations(repo)
    version = baseline[:14]
    assert baseline == f"{version}_baseline.sql" and version > max(before)[:14]
    archive = repo / "supabase" / "migrations-archive" / version
    assert {p.name: p.read_text() for p in archive.glob("*.sql")} == before, "archived untouched"
    assert (archive / "frozen-migrations.txt").exists()
    assert f"--status reverted {' '.join(sorted(name[:14] for name in before))}" in proc.stdout
    assert f"--status applied {version}" in proc.stdout
    check = build(repo, "--check")
    assert check.returncode == 0 and "draft:" not in check.stdout

    # the baseline holds every schema migration, every module, every file
    text = migrations(repo)[baseline]
    assert len(re.findall(r"^-- schema sql/migrations/", text, re.M)) == len(
        list((repo / "sql" / "migrations").glob("*.sql"))
    )
    assert len(INSTALL_RE.findall(text)) == len(list((repo / "plpython" / "bayes_engine").glob("*.py")))
    assert len(FILE_RE.findall(text)) == len(list((repo / "sql" / "functions").glob("*.sql")))

    # and the build goes on from it: a change adds what changed, an edited
    # schema source is still refused
    append(repo / MODULE, "# after the baseline\n")
    assert build(repo).returncode == 0
    [new] = new_files({baseline: text}, migrations(repo))
    assert INSTALL_RE.findall(migrations(repo)[new]) == ["bayes_engine.wire"]
    path = repo / "sql" / "migrations" / "0001_foundation.sql"
    path.write_text(path.read_text() + "\n-- an edit\n")
    assert "put the change in a new file" in build(repo).stderr
