"""What the gateway's guard (scripts/gateway/rpc_guard.lua) costs a call,
measured side by side in one run: the running stack's gateway, and a second
nginx with the same configuration less the guard's access_by_lua line, both in
front of the same PostgREST. Calls alternate between the two in blocks, in
alternating order, over keep-alive connections, as the game's backend calls.

    .venv/bin/python scripts/bench_gateway.py [CALLS]     (default 2000 per gateway and case)

The stack must be up (scripts/stack up; the BAYES_* variables of scripts/stack
choose which). Cases: bayes_get_state (a body of one argument), and
bayes_boss_readiness with a 60 KB p_method (the database refuses it with
22023: the largest body a message can be, scanned by the guard)."""

from __future__ import annotations

import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg
from bayes_dev.support import ROOT, new_player, stack_env

BLOCK = 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def unguarded_gateway(stack_dir: Path, api_port: int, tmp: Path) -> tuple[str, Path]:
    """The stack's nginx.conf less the guard, on its own port, pid file, logs and temp directories."""
    conf = (stack_dir / "nginx.conf").read_text()
    assert "access_by_lua_block" in conf, "the stack's gateway has no guard"
    conf = "\n".join(line for line in conf.splitlines() if "access_by_lua_block" not in line)
    conf = conf.replace(str(stack_dir / "run"), str(tmp / "run")).replace(str(stack_dir / "log"), str(tmp / "log"))
    port = free_port()
    conf, n = re.subn(rf"listen 127\.0\.0\.1:{api_port};", f"listen 127.0.0.1:{port};", conf)
    assert n == 1
    for d in ("run/nginx", "log"):
        (tmp / d).mkdir(parents=True, exist_ok=True)
    (tmp / "nginx.conf").write_text(conf)
    subprocess.run(
        ["nginx", "-c", str(tmp / "nginx.conf"), "-p", str(stack_dir), "-e", str(tmp / "log/e.log")], check=True
    )
    return f"http://127.0.0.1:{port}", tmp / "run" / "nginx.pid"


def run_case(clients: dict[str, httpx.Client], fn: str, body: bytes, calls: int, expect: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in clients}
    headers = {"Content-Type": "application/json"}
    for client in clients.values():  # warm up connections and PostgREST's pool
        for _ in range(50):
            client.post(f"/rest/v1/rpc/{fn}", content=body, headers=headers)
    names = list(clients)
    for block in range(calls // BLOCK):
        for name in names if block % 2 == 0 else names[::-1]:
            client = clients[name]
            for _ in range(BLOCK):
                start = time.perf_counter()
                resp = client.post(f"/rest/v1/rpc/{fn}", content=body, headers=headers)
                times[name].append(time.perf_counter() - start)
                assert resp.status_code == expect, resp.text[:200]
    return times


def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    env = stack_env()
    stack_dir = Path(os.environ.get("BAYES_STACK_DIR", ROOT / ".stack")).resolve()
    api_port = int(env["API_URL"].rsplit(":", 1)[1])
    with psycopg.connect(env["DB_URL"], autocommit=True) as conn:
        user_id = new_player(conn)
        conn.execute(
            "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(1))", (user_id,)
        )
    key = env["SERVICE_ROLE_KEY"]
    headers = {"apikey": key, "Authorization": f"Bearer {key}"}
    with tempfile.TemporaryDirectory(prefix="bench-gateway-") as tmp:
        plain_url, pidfile = unguarded_gateway(stack_dir, api_port, Path(tmp))
        try:
            time.sleep(0.3)
            clients = {
                "guarded": httpx.Client(base_url=env["API_URL"], headers=headers, timeout=30),
                "plain": httpx.Client(base_url=plain_url, headers=headers, timeout=30),
            }
            cases = [
                ("bayes_get_state", f'{{"p_user_id": "{user_id}"}}'.encode(), 200),
                ("bayes_boss_readiness", f'{{"p_user_id": "{user_id}", "p_method": "{"x" * 60000}"}}'.encode(), 400),
            ]
            print(f"{calls} calls per gateway and case, interleaved in blocks of {BLOCK}")
            for fn, body, expect in cases:
                times = run_case(clients, fn, body, calls, expect)
                med = {name: statistics.median(t) * 1000 for name, t in times.items()}
                mean = {name: statistics.fmean(t) * 1000 for name, t in times.items()}
                print(
                    f"{fn} ({len(body)} B body): median guarded {med['guarded']:.3f} ms, plain {med['plain']:.3f} ms,"
                    f" ratio {med['guarded'] / med['plain']:.3f}; mean ratio {mean['guarded'] / mean['plain']:.3f}"
                )
        finally:
            subprocess.run(["kill", "-QUIT", pidfile.read_text().strip()], check=False)
            time.sleep(0.3)


if __name__ == "__main__":
    main()
