"""The main job's demo runs against the stack and shows what it promises."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from support import ROOT

pytestmark = pytest.mark.e2e


def test_demo_drives_real_rpcs(stack):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True, env=os.environ, timeout=120
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    for name in ("ava", "ben", "cleo"):
        assert f"\n{name}  (player" in out
    assert "boss threshold 55" in out and "boss threshold 60" in out and "boss threshold 65" in out
    assert "ben's state: refused, 42501" in out
    assert "anon key, ava's state: refused, 42501" in out
