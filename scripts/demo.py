"""The demo of the main job: drives real RPCs of the running local stack with
supabase-py, as the game's backend would, and prints what they return.

Run by scripts/run (which sets up and starts the stack first).  Today it shows
bayes_get_state; it grows with the per-message RPC.
"""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import psycopg
from postgrest.exceptions import APIError
from supabase import create_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import player_jwt, stack_env  # noqa: E402  (the same helpers the tests use)

# Three demo players, one per starting chapter. Their states are created the
# way an operator would seed them (bayes.default_state); sign-up itself belongs
# to Supabase Auth, which the local stack replaces by an auth.users row.
PLAYERS = [
    (uuid.UUID("00000000-0000-4000-8000-000000000d01"), "ava", 1),
    (uuid.UUID("00000000-0000-4000-8000-000000000d02"), "ben", 2),
    (uuid.UUID("00000000-0000-4000-8000-000000000d03"), "cleo", 3),
]


def seed(db_url: str) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        for user_id, name, chapter in PLAYERS:
            conn.execute(
                "insert into auth.users (id, email) values (%s, %s) on conflict (id) do nothing",
                (user_id, f"{name}@demo.test"),
            )
            conn.execute(
                "insert into public.user_bayesian_state (user_id, state) values (%s, bayes.default_state(%s))"
                " on conflict (user_id) do nothing",
                (user_id, chapter),
            )


def show(name: str, s: dict) -> None:
    print(f"\n{name}  (player {s['user_id']})")
    print(f"  chapter {s['chapter']}, messages {s['n']}, row version {s['version']}")
    print(f"  composite {s['composite']:.1f} ± {s['composite_sd']:.1f}   boss threshold {s['boss']['threshold']:g}")
    for metric in ("intimacy", "passion", "trust", "secureness"):  # jsonb does not keep key order
        m = s["metrics"][metric]
        lo, hi = m["ci95"]
        print(f"    {metric:<11} mean {m['mean']:.3f}  95% [{lo:.3f}, {hi:.3f}]  var {m['var']:.4f}")
    top = ", ".join(f"{v} {p:.2f}" for v, p in s["vices"]["top"])
    print(f"  mood {s['mood']['state']}   top vices {top}")


def main() -> int:
    env = stack_env()
    seed(env["DB_URL"])
    print(f"API {env['API_URL']}/rest/v1/  (supabase-py, service_role key)")
    backend = create_client(env["API_URL"], env["SERVICE_ROLE_KEY"])
    for user_id, name, _ in PLAYERS:
        show(name, backend.rpc("bayes_get_state", {"p_user_id": str(user_id)}).execute().data)

    ava, ben = PLAYERS[0][0], PLAYERS[1][0]
    print("\nava's own JWT (role authenticated):")
    as_ava = create_client(env["API_URL"], env["ANON_KEY"])
    as_ava.postgrest.auth(player_jwt(env["JWT_SECRET"], ava, ttl_s=600))
    mine = as_ava.rpc("bayes_get_state", {"p_user_id": str(ava)}).execute().data
    print(f"  her own state: composite {mine['composite']:.1f}")
    refused = refuses("  ben's state", as_ava, ben)
    anon = create_client(env["API_URL"], env["ANON_KEY"])
    refused &= refuses("anon key, ava's state", anon, ava)
    return 0 if refused else 1


def refuses(label: str, client, user_id: uuid.UUID) -> bool:
    """Print how the API refuses this read; False if it (wrongly) answers."""
    try:
        client.rpc("bayes_get_state", {"p_user_id": str(user_id)}).execute()
    except APIError as err:
        print(f"{label}: refused, {err.code} {err.message}")
        return True
    print(f"{label}: READ, which must never happen")
    return False


if __name__ == "__main__":
    sys.exit(main())
