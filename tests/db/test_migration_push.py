"""`supabase db push` of the whole migration history, as a new deployment runs
it, still works after a change (a one-line change to one module, built into a
new functions migration that carries that module alone), and a baseline
(scripts/build --baseline) gives a new deployment exactly the schema of the
whole history, while a database that applied the history applies nothing."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess

import psycopg
import pytest
from bayes_dev.support import BOOTSTRAP, ROOT, psql
from pytest_postgresql import factories

pytestmark = pytest.mark.db

DBNAME = "bayes_push"
SUPABASE = ROOT / "node_modules" / ".bin" / "supabase"


def cluster():
    """A cluster of its own: pg_cron lives in one database per cluster (cron.database_name)."""
    return factories.postgresql_proc(
        executable=str(ROOT / "scripts" / "pg_ctl_unprivileged"),
        postgres_options=f"-c shared_preload_libraries=pg_cron -c cron.database_name={DBNAME}",
    )


push_proc = cluster()
existing_proc = cluster()
fresh_proc = cluster()


def clone(tmp_path):
    """A clone of HEAD with the working tree's build script, every migration frozen (as on main)."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    shutil.copy(ROOT / "scripts" / "build", repo / "scripts" / "build")
    build(repo, "--freeze")
    return repo


def build(repo, *args) -> str:
    proc = subprocess.run(["python3", "scripts/build", *args], cwd=repo, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def bootstrapped(proc) -> str:
    """A new database in the cluster, with what a Supabase project has before any migration."""
    admin = f"host={proc.host} port={proc.port} user={proc.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create database {DBNAME}")
    url = f"postgresql://{proc.user}@{proc.host}:{proc.port}/{DBNAME}"
    psql(url, "-v", "authenticator_password=postgres", "-f", str(BOOTSTRAP))
    return url


def schema_snapshot(url) -> str:
    spec = importlib.util.spec_from_file_location("schema_snapshot", ROOT / "scripts" / "schema_snapshot.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.snapshot(url)


def push(workdir, url) -> str:
    proc = subprocess.run(
        [str(SUPABASE), "db", "push", "--workdir", str(workdir), f"--remote={url}", "--yes"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_db_push_of_the_whole_history_with_a_one_line_module_change(push_proc, tmp_path):
    repo = clone(tmp_path)
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
    repo = clone(tmp_path)
    history = sorted(p.name for p in (repo / "supabase" / "migrations").glob("*.sql"))
    existing = bootstrapped(existing_proc)
    push(repo, existing)

    out = build(repo, "--baseline")
    [baseline] = [p.name for p in (repo / "supabase" / "migrations").glob("*.sql")]
    assert baseline.endswith("_baseline.sql") and baseline[:14] > history[-1][:14]
    archived = repo / "supabase" / "migrations-archive" / baseline[:14]
    assert sorted(p.name for p in archived.glob("*.sql")) == history
    assert "draft:" not in build(repo, "--check")

    fresh = bootstrapped(fresh_proc)
    assert push(repo, fresh).count("Applying migration") == 1
    assert schema_snapshot(fresh) == schema_snapshot(existing)

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
