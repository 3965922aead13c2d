"""The pgTAP files of supabase/tests/database, run with pg_prove against the stack."""

from __future__ import annotations

import subprocess
from urllib.parse import urlparse

import psycopg
import pytest
from bayes_dev.support import ROOT

pytestmark = pytest.mark.e2e

FILES = sorted((ROOT / "supabase" / "tests" / "database").glob("*.sql"))


@pytest.fixture(scope="module")
def pgtap_db(stack) -> str:
    with psycopg.connect(stack["DB_URL"], autocommit=True) as conn:
        conn.execute("create extension if not exists pgtap with schema extensions")
    return stack["DB_URL"]


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
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
