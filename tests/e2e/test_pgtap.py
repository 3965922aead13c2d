"""The pgTAP files of supabase/tests/database, run with pg_prove against the stack.

The files of row level security and privileges (02, 03) run at the proxy of
the partitioned mode too (issue 17): anon and the players get there exactly
what they get on a single node. 02 writes its two players' states on their
partitions through the proxy (see its header): they commit there, and are
deleted here afterwards."""

from __future__ import annotations

import subprocess
from urllib.parse import urlparse

import psycopg
import pytest
from bayes_dev.support import ROOT

pytestmark = pytest.mark.e2e

FILES = sorted((ROOT / "supabase" / "tests" / "database").glob("*.sql"))
BOTH_MODES = {"02-rls.sql", "03-privileges.sql"}
RUNS = [("single", p) for p in FILES] + [("partitioned", p) for p in FILES if p.name in BOTH_MODES]
PLAYERS_OF_02 = ("00000000-0000-4000-8000-00000000000a", "00000000-0000-4000-8000-00000000000b")


@pytest.fixture(scope="module")
def pgtap_db(stack) -> str:
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        conn.execute("create extension if not exists pgtap with schema extensions")
    yield stack["DB_URL"]
    for url in stack.get("PARTITIONS", ()):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "delete from public.user_bayesian_state where user_id = any(%s::uuid[])", (list(PLAYERS_OF_02),)
            )


@pytest.mark.parametrize(("mode", "path"), RUNS, ids=[f"{m}-{p.name}" for m, p in RUNS], indirect=["mode"])
def test_pgtap_file(pgtap_db, path):
    url = urlparse(pgtap_db)
    proc = subprocess.run(
        [
            "pg_prove",
            "--verbose",
            "-h",
            url.hostname,
            "-p",
            str(url.port),
            "-U",
            url.username,
            "-d",
            url.path.lstrip("/"),
            str(path),
        ],
        capture_output=True,
        text=True,
        env={"PGPASSWORD": url.password, "PATH": "/usr/bin:/bin"},
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
