"""`supabase db push` of the whole migration history, as a new deployment runs
it, still works after a change (a one-line change to one module, built into a
new functions migration that carries that module alone), and a baseline
(scripts/build --baseline) gives a new deployment exactly the schema of the
whole history, while a database that applied the history applies nothing."""

from __future__ import annotations

import re
import subprocess

import psycopg
import pytest
from bayes_dev.support import BOOTSTRAP, ROOT, clone_repo, create_database, cron_cluster, psql, schema_snapshot_tool

pytestmark = pytest.mark.db

DBNAME = "bayes_push"
SUPABASE = ROOT / "node_modules" / ".bin" / "supabase"


push_proc = cron_cluster(DBNAME)
existing_proc = cron_cluster(DBNAME)
fresh_proc = cron_cluster(DBNAME)


def build(repo, *args) -> str:
    proc = subprocess.run(["python3", "scripts/build", *args], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def bootstrapped(proc) -> str:
    """A new database in the cluster, with what a Supabase project has before any migration."""
    url = create_database(proc, DBNAME)
    psql(url, "-v", "authenticator_password=postgres", "-f", str(BOOTSTRAP))
    return url


def push(workdir, url) -> str:
    proc = subprocess.run(
        [str(SUPABASE), "db", "push", "--workdir", str(workdir), f"--remote={url}", "--yes"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_db_push_of_the_whole_history_with_a_one_line_module_change(push_proc, tmp_path):
    repo = clone_repo(tmp_path / "repo")
    module = repo / "plpython" / "bayes_engine" / "wire.py"
    with open(module, "a") as f:
        f.write("PUSHED_BY_THE_TEST = True\n")
    build(repo)
    url = bootstrapped(push_proc)

    out = push(repo, url)
    files = sorted(p.name for p in (repo / "supabase" / "migrations").glob("*.sql"))
    assert out.count("Applying migration") == len(files), out
    with psycopg.connect(url, autocommit=True) as conn:
        source = conn.execute("select source from bayes.py_module where name = 'bayes_engine.wire'").fetchone()[0]
        assert source == module.read_text()
        user_id = conn.execute(
            "insert into auth.users (id, email) values (gen_random_uuid(), 'push@players.test') returning id"
        ).fetchone()[0]
        result = conn.execute("select public.bayes_process_message(%s, 'hello, how are you?')", (user_id,)).fetchone()
        assert result[0]["n"] == 1
        assert conn.execute("select bayes.loaded_build() = bayes.py_build()").fetchone()[0]
    assert "Applying migration" not in push(repo, url), "a second push applies nothing"


def test_a_baseline_gives_a_new_deployment_the_schema_of_the_whole_history(existing_proc, fresh_proc, tmp_path):
    repo = clone_repo(tmp_path / "repo")
    history = sorted(p.name for p in (repo / "supabase" / "migrations").glob("*.sql"))
    existing = bootstrapped(existing_proc)
    push(repo, existing)

    out = build(repo, "--baseline")
    [baseline] = [p.name for p in (repo / "supabase" / "migrations").glob("*.sql")]
    assert baseline.endswith("_baseline.sql") and baseline[:14] > history[-1][:14]
    archived = repo / "supabase" / "migrations-archive" / baseline[:14]
    assert sorted(p.name for p in archived.glob("*.sql")) == history
    assert "draft:" not in build(repo, "--check")

    tool = schema_snapshot_tool()
    fresh = bootstrapped(fresh_proc)
    assert push(repo, fresh).count("Applying migration") == 1
    assert tool.snapshot(fresh) == tool.snapshot(existing)

    # The database that applied the history: the commands the build printed
    # record the baseline as applied; then a push applies nothing.
    for line in out.splitlines():
        if line.strip().startswith("supabase migration repair"):
            args = line.split()[3:]
            args = [f"--remote={existing}" if a.startswith("--remote=") else a for a in args]
            proc = subprocess.run(
                [str(SUPABASE), "migration", "repair", "--workdir", str(repo), *args, "--yes"],
                capture_output=True,
                text=True,
            )
            assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Applying migration" not in push(repo, existing)
    with psycopg.connect(existing) as conn:
        versions = [r[0] for r in conn.execute("select version from supabase_migrations.schema_migrations")]
    assert versions == [baseline[:14]]
    assert re.fullmatch(r"\d{14}_baseline\.sql", baseline)
