"""scripts/stack behaves like `supabase start/stop/status`: a second `up` is a
no-op, `down` stops everything, `up` again works and the data persists.
(Runs last among the end-to-end tests: it restarts the stack.)"""

from __future__ import annotations

import os
import re
import subprocess

import psycopg
import pytest
from bayes_dev.support import ROOT, Client, new_player

pytestmark = pytest.mark.e2e


def run_stack(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / "stack"), *args], capture_output=True, text=True, env=os.environ)


def pids() -> dict[str, str]:
    return dict(re.findall(r"stack: (\w+)\s+running\s+pid (\d+)", run_stack("status").stdout))


def alive(pid: str) -> bool:
    """Running, not merely a zombie waiting for its (reparented) parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_up_twice_then_down_then_up(stack):
    env = stack
    with psycopg.connect(env["DB_URL"], autocommit=True) as conn:
        user_id = new_player(conn)
        conn.execute(
            "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(3))", (user_id,)
        )

    before = pids()
    assert set(before) == {"postgres", "postgrest", "gateway"}
    again = run_stack("up")
    assert again.returncode == 0, again.stderr
    assert "Applying migration" not in again.stdout
    assert pids() == before, "a second up must not restart anything"

    down = run_stack("down")
    assert down.returncode == 0, down.stderr
    status = run_stack("status")
    assert status.returncode != 0
    assert status.stdout.count("stopped") == 3
    for name, pid in before.items():
        assert not alive(pid), f"{name} (pid {pid}) still runs after down"

    up = run_stack("up")
    assert up.returncode == 0, up.stderr
    assert set(pids()) == {"postgres", "postgrest", "gateway"}
    client = Client(env["API_URL"], env["SERVICE_ROLE_KEY"])
    state = client.rpc("bayes_get_state", {"p_user_id": str(user_id)}).data
    assert client.status == 200
    assert state["chapter"] == 3, "data persists across down and up"
