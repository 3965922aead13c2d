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
    assert "writing her own state: refused, 42501" in out
    # the conversations: one line per message, with every quantity the main job promises
    for name, chapter, messages in (("ava", 1, 12), ("ben", 2, 6), ("cleo", 3, 5)):
        assert f"\n{name}, chapter {chapter}\n" in out
        assert f"messages {messages}, row version" in out
    lines = [line for line in out.splitlines() if "P(ready)" in line]
    assert len(lines) == 12 + 6 + 5
    assert all("[" in line and ("in " in line or "skip (p" in line) for line in lines)
    assert "h of decay applied before this message" in out
    assert "LLM consulted" in out
    assert '"duplicate": true' in out
    assert "anon key, ava's state: refused, 42501" in out
