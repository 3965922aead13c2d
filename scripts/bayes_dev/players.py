"""Large populations of players for the benchmarks and the bulk-decay tests.

Running the RPC a million times would take the better part of an hour, so a
population is built in two steps:

1. a pool of distinct states made by the engine itself (bayes_engine, the
   code the RPCs run): each pool player gets a chapter, then a conversation of
   1 to 60 messages drawn from MESSAGES with random reply gaps;
2. one set-based INSERT that gives every new player (a real auth.users row)
   a state from the pool, a last message 0 to `max_absent_h` hours before
   `now`, that time as decayed_at, and the due time of the bulk decay that
   the engine computes for that state and those times
   (bayes_engine.decay_due), as the RPC would have left them.

The players have no events in bayes.player_event (they were not written by
the RPCs), so `bayes.replay` does not apply to them. Everything is seeded:
the same arguments give the same states and times.
"""

from __future__ import annotations

import json
import random
import uuid

from bayes_engine import codec, decay_due, events, model
from bayes_engine.params import Params

MESSAGES = [
    "hey! how was your day? I missed talking to you",
    "haha that is so funny 😂 you always make me laugh",
    "I think you are amazing and kind, thank you for listening. What do you dream about?",
    "ok",
    "whatever, this is boring",
    "I feel like I can be honest with you. I have a secret I never told anyone, it is about my "
    "family and how afraid I was growing up. Do you ever feel that way? I hope you do not think "
    "less of me for it, I just want to be real with someone for once and you feel safe.",
    "let's go to a bar tonight and do something crazy and wild",
    "why? what do you mean?",
    "I trust you. you make me feel safe and calm",
    "stop it. I hate when you do that, it is annoying",
]

POOL_SIZE = 500
_POOL_END = 1_700_000_000.0  # the pool's conversations end here (epoch s); rows get their own times


def state_pool(params: Params, size: int = POOL_SIZE, seed: int = 0) -> list[str]:
    """`size` encoded states, each the engine's result of a random conversation."""
    rnd = random.Random(seed)
    pool = []
    for i in range(size):
        state = codec.default_state(1, params)
        chapter = 1 + i % 5
        if chapter > 1:
            model.advance_chapter(state, params, chapter)
        count = rnd.randint(1, 60)
        gaps = [rnd.choice((20.0, 90.0, 400.0, 3000.0)) for _ in range(count)]
        t = _POOL_END - sum(gaps)
        last = None
        for gap in gaps:
            t += gap
            message = model.Message(rnd.choice(MESSAGES), t, gap, rnd.random() < 0.2, str(seed))
            events.apply_message(state, params, f"pool-{seed}-{i}", message, model.RowTimes(last, last))
            last = t
        pool.append(codec.encode(state))
    return pool


def populate(
    conn, count: int, now: float, *, max_absent_h: float = 240.0, seed: int = 0, tag: str = "population"
) -> None:
    """Insert `count` players (auth.users and their states) in one transaction of set-based statements.

    `now` is epoch seconds; each player's last message is uniform in
    [now - max_absent_h, now]. Commits; the caller's connection must not be
    in the middle of another transaction.
    """
    row = conn.execute("select bayes.params_snapshot()::text").fetchone()
    params = Params.from_snapshot(json.loads(row[0]))
    pool = state_pool(params, seed=seed)
    # Each pool state's due time, as seconds after the row's last message
    # (its decayed_at too): decay_due.due_at from a last message at 0.
    due_after = [decay_due.due_at(params, codec.decode(text, params), 0.0, 0.0) for text in pool]
    with conn.transaction():
        # The pool's states come from the codec (state_pool): skip the table's check of each row, as the
        # engine's own writers do (trigger user_bayesian_state_valid), for this transaction only.
        conn.execute("set local bayes.state_writer = 'engine'")
        conn.execute(
            "create temporary table population_pool (i int primary key, state jsonb, due_after_s float8) on commit drop"
        )
        with conn.cursor().copy("copy population_pool (i, state, due_after_s) from stdin") as copy:
            for i, text in enumerate(pool):
                copy.write_row((i, text, due_after[i]))
        conn.execute("select setseed(%s)", (((seed * 7919) % 1000) / 1000.0,))
        conn.execute(
            """
            create temporary table population_new on commit drop as
            select g, gen_random_uuid() as user_id,
                   to_timestamp(%s - random() * %s * 3600) as last_message_at
            from generate_series(0, %s - 1) as g
            """,
            (now, max_absent_h, count),
        )
        conn.execute(
            "insert into auth.users (id, email) select user_id, %s || '-' || g || '@players.test' from population_new",
            (tag,),
        )
        # The pool's bucket time and day move to the player's own last message.
        conn.execute(
            """
            insert into public.user_bayesian_state (user_id, state, version, last_message_at, decayed_at, decay_due_at)
            select n.user_id,
                   jsonb_set(
                       jsonb_set(p.state, '{b,4}', to_jsonb(floor(extract(epoch from n.last_message_at))::bigint)),
                       '{dd,0}', to_jsonb(floor(extract(epoch from n.last_message_at) / 86400)::bigint)
                   ),
                   1 + (p.state ->> 'n')::bigint,
                   n.last_message_at,
                   n.last_message_at,
                   n.last_message_at + make_interval(secs => p.due_after_s)
            from population_new as n
            join population_pool as p on p.i = n.g %% %s
            """,
            (len(pool),),
        )
    conn.execute("analyze public.user_bayesian_state")


def new_players(conn, count: int, tag: str) -> list[uuid.UUID]:
    """`count` new players of the benchmarks' message paths: a real auth.users row (email
    <tag>-<id>@bench.local) and a first message each."""
    players = [uuid.uuid4() for _ in range(count)]
    for user_id in players:
        conn.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{tag}-{user_id}@bench.local"))
        conn.execute("select public.bayes_process_message(%s, 'hello')", (user_id,))
    return players
