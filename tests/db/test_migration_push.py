"""`supabase db push` of the whole migration history, as a new deployment runs
it, still works after a change: here a one-line change to one module, built
into a new functions migration that carries that module alone."""

from __future__ import annotations

import shutil
import subprocess

import psycopg
import pytest
from bayes_dev.support import BOOTSTRAP, ROOT, psql
from pytest_postgresql import factories

pytestmark = pytest.mark.db

DBNAME = "bayes_push"
SUPABASE = ROOT / "node_modules" / ".bin" / "supabase"

push_proc = factories.postgresql_proc(
    executable=str(ROOT / "scripts" / "pg_ctl_unprivileged"),
    postgres_options=f"-c shared_preload_libraries=pg_cron -c cron.database_name={DBNAME}",
)


def push(workdir, url) -> str:
    proc = subprocess.run(
        [str(SUPABASE), "db", "push", "--workdir", str(workdir), f"--remote={url}", "--yes"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def test_db_push_of_the_whole_history_with_a_one_line_module_change(push_proc, tmp_path):
    repo = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
    shutil.copy(ROOT / "scripts" / "build", repo / "scripts" / "build")
    module = repo / "plpython" / "bayes_engine" / "wire.py"
    with open(module, "a") as f:
        f.write("PUSHED_BY_THE_TEST = True\n")
    built = subprocess.run(["python3", "scripts/build"], cwd=repo, capture_output=True, text=True)
    assert built.returncode == 0, built.stderr

    admin = f"host={push_proc.host} port={push_proc.port} user={push_proc.user} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"create database {DBNAME}")
    url = f"postgresql://{push_proc.user}@{push_proc.host}:{push_proc.port}/{DBNAME}"
    psql(url, "-v", "authenticator_password=postgres", "-f", str(BOOTSTRAP))

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
