"""The demo of the main job: drives real RPCs of the running local stack with
supabase-py, as the game's backend would, and prints what they return.

Run by scripts/run (which sets up and starts the stack first). It

1. signs up three demo players (an auth.users row each: sign-up itself is
   Supabase Auth's job) and starts them afresh, so every run shows the same
   thing: the random draws are seeded by (player, message number);
2. replays a short conversation per player through bayes_process_message,
   with varied messages and reply gaps (one player comes back after days
   away and is decayed first), and prints per message the composite with its
   95% interval, the mood, the top vice, skip/delay, the fallback reason and
   the boss readiness; where the engine asks for the LLM, it feeds back LLM
   deltas (bayes_apply_llm_scores); ben's first message is sent twice to
   show idempotency;
3. reads each player's state (bayes_get_state) and shows what a player's JWT
   and the anon key may and may not do.
"""

from __future__ import annotations

import datetime as dt
import sys
import uuid
from pathlib import Path

import psycopg
from postgrest.exceptions import APIError
from supabase import create_client

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from support import player_jwt, stack_env  # noqa: E402  (the same helpers the tests use)

# Three demo players and the chapter each plays in.
PLAYERS = [
    (uuid.UUID("00000000-0000-4000-8000-000000000d01"), "ava", 1),
    (uuid.UUID("00000000-0000-4000-8000-000000000d02"), "ben", 2),
    (uuid.UUID("00000000-0000-4000-8000-000000000d03"), "cleo", 3),
]
START = dt.datetime(2026, 11, 16, 19, 0, tzinfo=dt.timezone.utc)

# (seconds since the character's previous message, topic changed?, text)
CONVERSATIONS = {
    "ava": [
        (None, None, "hi! I just started playing, who are you?"),
        (35, False, "haha that's so sweet \U0001F602 I love how you talk"),
        (50, False, "I think you are amazing. What do you dream about at night?"),
        (40, False, "thank you, that is kind. I feel like I can be honest with you"),
        (25, True, "let's do something crazy and wild, a spontaneous adventure?"),
        (60, False, "I miss talking like this. what do you hope for?"),
        (30, False, "lol ok \U0001F606\U0001F606\U0001F606"),
        (45, False, "I'm afraid to say it but I really care about you, I want to be open and honest. "
                    "It's strange how real this feels, I remember every word you said yesterday."),
        (20, False, "what do you think about when you are alone?"),
        (55, False, "you make me happy. wonderful evening, thank you"),
        (40, False, "do you ever feel vulnerable? I do, with you"),
        (35, False, "sweet dreams, talk tomorrow? \u2764"),
    ],
    "ben": [
        (None, None, "hey"),
        (1500, False, "ok"),
        (2400, True, "whatever, this is boring"),
        (3 * 86400, False, "back. been busy"),  # three days away: decayed before the update
        (4000, False, "fine. what do you want"),
        (90, True, "ok that was actually kind of great. a bar and some beer tonight?"),
    ],
    "cleo": [
        (None, None, "Chapter three already! I feel like we know each other now, do you remember our first talk?"),
        (70, False, "I have a secret confession: I'm scared of being vulnerable, of letting anyone see the real me. "
                    "With you it feels different, like I can be honest and open about my fears and my dreams."),
        (40, False, "thank you for listening, I appreciate you so much. what do you wish for?"),
        (600, True, "dark humor time: I'm dead tired and the twisted irony is that I can't sleep haha"),
        (30, False, "goodnight \U0001F319"),
    ],
}
LLM_DELTAS = {"intimacy": 4, "passion": 2, "trust": 3, "secureness": 1}  # what an LLM pass might return


def reset(db_url: str) -> None:
    """Sign the demo players up again: deleting auth.users cascades to their states and events."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for user_id, name, _ in PLAYERS:
            conn.execute("delete from auth.users where id = %s", (user_id,))
            conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{name}@demo.test"))


def converse(backend, user_id: uuid.UUID, name: str, chapter: int) -> None:
    if chapter > 1:
        backend.rpc("bayes_advance_chapter", {"p_user_id": str(user_id), "p_chapter": chapter}).execute()
    print(f"\n{name}, chapter {chapter}")
    print(f"  {'#':>2} {'gap':>6}  {'message':<34} {'composite [95%]':<20} {'mood':<10} {'top vice':<28}"
          f" {'reply':<14} {'fallback':<20} boss")
    t = START
    for i, (gap, topic, text) in enumerate(CONVERSATIONS[name]):
        t += dt.timedelta(seconds=gap or 0)
        args = {"p_user_id": str(user_id), "p_message": text, "p_sent_at": t.isoformat(),
                "p_message_id": f"{name}-{i}", "p_reply_gap_s": gap, "p_topic_changed": topic}
        r = backend.rpc("bayes_process_message", args).execute().data
        if name == "ben" and i == 0:
            again = backend.rpc("bayes_process_message", args).execute().data
            assert again["duplicate"] and again["version"] == r["version"]
        lo, hi = r["composite_ci95"]
        vice, p_vice = r["vices"]["top"][0]
        reply = f"skip (p {r['skip']['p']:.2f})" if r["skip"]["skip"] else f"in {r['delay_s']:.0f}s"
        boss = r["boss"]
        gap_text = "-" if gap is None else (f"{gap / 86400:.0f}d" if gap >= 86400 else f"{gap:.0f}s")
        print(f"  {r['n']:>2} {gap_text:>6}  {shorten(text, 34):<34} {r['composite']:5.1f} [{lo:4.1f}, {hi:4.1f}]"
              f"  {r['mood']['state']:<10} {vice:<22} {p_vice:.2f}  {reply:<14} {r['fallback']['reason']:<20}"
              f" P(ready) {boss['p_ready']:.2f}")
        if r["decay_hours"] > 0:
            print(f"  {'':>10}  (away: {r['decay_hours']:.0f} h of decay applied before this message)")
        if r["fallback"]["reason"] in ("high_variance", "critical_zone"):
            llm = backend.rpc("bayes_apply_llm_scores", {"p_user_id": str(user_id), "p_deltas": LLM_DELTAS,
                                                         "p_message_id": f"{name}-{i}"}).execute().data
            print(f"  {'':>10}  LLM consulted, deltas {LLM_DELTAS} -> composite {llm['composite']:.1f}, "
                  f"fallback {llm['fallback']['reason']}")
    if name == "ben":
        print("  (ben's first message was sent twice: the second call answered \"duplicate\": true, changed nothing)")


def shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "\u2026"


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
    reset(env["DB_URL"])
    print(f"API {env['API_URL']}/rest/v1/  (supabase-py, service_role key)")
    backend = create_client(env["API_URL"], env["SERVICE_ROLE_KEY"])
    for user_id, name, chapter in PLAYERS:
        converse(backend, user_id, name, chapter)

    print("\nstates now (bayes_get_state):")
    for user_id, name, _ in PLAYERS:
        show(name, backend.rpc("bayes_get_state", {"p_user_id": str(user_id)}).execute().data)

    ava, ben = PLAYERS[0][0], PLAYERS[1][0]
    print("\nava's own JWT (role authenticated):")
    as_ava = create_client(env["API_URL"], env["ANON_KEY"])
    as_ava.postgrest.auth(player_jwt(env["JWT_SECRET"], ava, ttl_s=600))
    mine = as_ava.rpc("bayes_get_state", {"p_user_id": str(ava)}).execute().data
    print(f"  her own state: composite {mine['composite']:.1f}")
    refused = refuses("  ben's state", as_ava, ben)
    refused &= refuses("  writing her own state", as_ava, ava, "bayes_process_message", {"p_message": "hi"})
    anon = create_client(env["API_URL"], env["ANON_KEY"])
    refused &= refuses("anon key, ava's state", anon, ava)
    return 0 if refused else 1


def refuses(label: str, client, user_id: uuid.UUID, fn: str = "bayes_get_state", args: dict | None = None) -> bool:
    """Print how the API refuses this call; False if it (wrongly) answers."""
    try:
        client.rpc(fn, {"p_user_id": str(user_id), **(args or {})}).execute()
    except APIError as err:
        print(f"{label}: refused, {err.code} {err.message}")
        return True
    print(f"{label}: ANSWERED, which must never happen")
    return False


if __name__ == "__main__":
    sys.exit(main())
