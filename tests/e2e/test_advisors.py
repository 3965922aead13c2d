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


# The warnings the project accepts: none. Until issue 15 the procedure
# bayes.run_decay was one (function_search_path_mutable: a routine that
# commits cannot have a SET clause); the bulk decay's loop is now a DO block
# (bayes.run_decay_command), which is no routine, and every statement it runs
# is in a function that pins its search_path.
EXPECTED: set[tuple[str, str, str]] = set()
