"""Supabase's database linter (`supabase db advisors`) finds nothing to warn
about in the project's objects."""

from __future__ import annotations

import json
import subprocess

import pytest
from bayes_dev.support import ROOT

pytestmark = pytest.mark.e2e


def test_advisors_report_no_warning_or_error(stack):
    proc = subprocess.run(
        [
            str(ROOT / "node_modules/.bin/supabase"),
            "db",
            "advisors",
            "--workdir",
            str(ROOT),
            f"--remote={stack['DB_URL']}",
            "--type",
            "all",
            "--level",
            "info",
            "--output-format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    lints = json.loads(proc.stdout)["results"]
    bad = [
        lint
        for lint in lints
        if str(lint.get("level", "")).upper() in ("WARN", "ERROR") and lint_key(lint) not in EXPECTED
    ]
    assert bad == [], json.dumps(bad, indent=1)
    assert EXPECTED <= {lint_key(lint) for lint in lints}, "an expected lint is gone: drop it from EXPECTED"


def lint_key(lint: dict) -> tuple[str, str, str]:
    meta = lint.get("metadata") or {}
    return lint.get("name", ""), meta.get("schema", ""), meta.get("name", "")


# The warnings the project accepts, and why: bayes.run_decay and
# bayes.run_retention commit after every batch, and PostgreSQL forbids
# transaction control in a routine with a SET clause, so they cannot pin their
# search_path. They schema-qualify every name instead (and pg_catalog is
# always searched first), and only their owner may call them.
EXPECTED = {
    ("function_search_path_mutable", "bayes", "run_decay"),
    ("function_search_path_mutable", "bayes", "run_retention"),
}
