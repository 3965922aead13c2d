"""Supabase's database linter (`supabase db advisors`) finds nothing to warn
about in the project's objects."""

from __future__ import annotations

import json
import subprocess

import pytest

from support import ROOT

pytestmark = pytest.mark.e2e


def test_advisors_report_no_warning_or_error(stack):
    proc = subprocess.run(
        [str(ROOT / "node_modules/.bin/supabase"), "db", "advisors", "--workdir", str(ROOT),
         f"--remote={stack['DB_URL']}", "--type", "all", "--level", "info", "--output-format", "json"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    print(proc.stdout)
    lints = json.loads(proc.stdout)["results"]
    bad = [lint for lint in lints if str(lint.get("level", "")).upper() in ("WARN", "ERROR")]
    assert bad == [], json.dumps(bad, indent=1)
