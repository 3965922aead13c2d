"""The differential test of the partitioned mode (issue 17): the same seeded
conversations of real text, sent to the single node and through the proxy of
the partitioned mode, give identical results, identical stored states and
equivalent event logs.

The players have the same ids on both sides: on the single node each has an
auth.users row (its writer RPCs refuse a player Supabase Auth does not know),
in the partitioned mode none (a partition has no auth.users: a player exists
when he first writes). The conversations are lines of chatterbot-corpus (real
text people wrote to a chat character), with seeded reply gaps, message ids,
a repeated message id, topic changes, the LLM's deltas (a stand-in:
vaderSentiment, bayes_dev.lifetime) with vices and a mood, outcomes, chapter
changes, then every read RPC. Every send time is explicit and in the last
hour, inside every chapter's decay grace: no decay window opens, so a read
does not depend on the instant it is made (bayes.readable_state decays on
read only past the grace), and both sides see exactly the same inputs.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid

import psycopg
import pytest
from bayes_dev import lifetime
from bayes_engine import vocab
from psycopg.types.json import Jsonb

pytestmark = pytest.mark.e2e

SEED = 17
PLAYERS = 12  # enough to land on each of the 4 partitions (asserted)
MESSAGES = 14
SESSION_SEED = "differential-17"  # setting bayes.seed, in both sessions
READS = [
    ("bayes_get_state", {}),
    ("bayes_boss_readiness", {}),
    ("bayes_boss_readiness", {"p_method": "edgeworth"}),
    ("bayes_boss_readiness", {"p_method": "normal"}),
    ("bayes_boss_readiness", {"p_method": "monte_carlo"}),
    ("bayes_fallback_check", {}),
]


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    return lifetime.corpus_messages()


@pytest.fixture(scope="module")
def standin() -> lifetime.StandIn:
    return lifetime.StandIn()


def conversation(user_id: uuid.UUID, index: int, corpus, standin, start: dt.datetime) -> list[tuple[str, dict]]:
    """Player `index`'s calls, in order: (rpc, arguments). Seeded: the same for both sides."""
    rnd = random.Random(f"differential/{SEED}/{index}")
    calls: list[tuple[str, dict]] = []
    at = start + dt.timedelta(seconds=rnd.randrange(120))
    chapter = 1
    sent: list[dict] = []
    for k in range(MESSAGES):
        gap = None if k == 0 else float(min(240, max(1, round(rnd.lognormvariate(3.4, 0.9)))))
        if gap:
            at += dt.timedelta(seconds=gap)
        text = corpus[rnd.randrange(len(corpus))]
        message = {
            "p_user_id": user_id,
            "p_message": text,
            "p_sent_at": at,
            # one message of seven without an id (not idempotent, as the RPC allows)
            "p_message_id": None if rnd.random() < 1 / 7 else f"m{k}",
            "p_reply_gap_s": gap,
            "p_topic_changed": rnd.choice([None, False, True]),
        }
        calls.append(("bayes_process_message", message))
        if message["p_message_id"]:
            sent.append(message)
        if k == 5 and sent:
            calls.append(("bayes_process_message", dict(sent[0])))  # a repeated message id: the first result
        if rnd.random() < 0.5 and message["p_message_id"]:
            judgement = {
                "p_user_id": user_id,
                "p_deltas": standin.deltas(text),
                "p_message_id": message["p_message_id"],
            }
            if rnd.random() < 0.5:
                judgement["p_vices"] = {v: round(rnd.random(), 3) for v in rnd.sample(vocab.VICES, 2)}
                judgement["p_mood"] = standin.mood(text)
            if all(value == 0 for value in judgement["p_deltas"].values()):
                judgement["p_deltas"] = {"intimacy": rnd.randint(-10, 10)}
            calls.append(("bayes_apply_llm_scores", judgement))
        if rnd.random() < 0.3:
            calls.append(
                (
                    "bayes_record_outcome",
                    {
                        "p_user_id": user_id,
                        "p_decision": rnd.choice(["skip", "reply"]),
                        "p_engaged": rnd.random() < 0.6,
                    },
                )
            )
        if k in (6, 11):
            calls.append(("bayes_advance_chapter", {"p_user_id": user_id, "p_chapter": chapter}))  # again: no-op
            chapter += 1
            calls.append(("bayes_advance_chapter", {"p_user_id": user_id, "p_chapter": chapter}))
    if sent:
        calls.append(("bayes_apply_llm_scores", {"p_user_id": user_id, "p_deltas": {"trust": 3}, "p_message_id": "m1"}))
        calls.append(("bayes_apply_llm_scores", {"p_user_id": user_id, "p_deltas": {"trust": 3}, "p_message_id": "m1"}))
    calls += [(fn, {"p_user_id": user_id, **args}) for fn, args in READS]
    return calls


def sql_call(conn: psycopg.Connection, fn: str, args: dict) -> dict:
    """public.<fn>(named arguments) on conn; the jsonb result."""
    named = ", ".join(f"{name} => %({name})s" for name in args)
    values = {name: Jsonb(value) if isinstance(value, dict) else value for name, value in args.items()}
    (text,) = conn.execute(f"select public.{fn}({named})::text", values).fetchone()
    return json.loads(text)


def api_args(args: dict) -> dict:
    out = {}
    for name, value in args.items():
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif isinstance(value, dt.datetime):
            value = value.isoformat()
        out[name] = value
    return out


def stored_row(conn, user_id) -> tuple:
    """The player's row, without updated_at and created_at (the instants of each side's own writes)."""
    return conn.execute(
        "select state, version, last_message_at, decayed_at, decay_due_at, chapter, composite"
        " from public.user_bayesian_state where user_id = %s",
        (user_id,),
    ).fetchone()


def event_log(conn, user_id) -> list[tuple]:
    """The player's events in log order, as the facts both sides must share: the kind, message id and key,
    mode, n, mood, fallback, observations, the packed input (text, send time, seed, the LLM's answer ...),
    the instant of a message (its send time), and the stored first result of an idempotent input. Not the
    event ids (each partition numbers its own), nor what each side's clock says: recorded_at, db_time_us,
    and occurred_at of the inputs without a send time (now() of their call)."""
    return conn.execute(
        "select e.kind::text, e.message_id, e.message_key, e.player_mode::text, e.n, e.mood::text,"
        " e.fallback_reason::text, e.fallback_needed, e.observations, e.input,"
        " case when e.kind = 'message' then e.occurred_at end, r.result::text"
        " from bayes.player_event as e left join bayes.event_result as r using (event_id)"
        " where e.user_id = %s order by e.event_id",
        (user_id,),
    ).fetchall()


def assert_same_result(fn: str, single: dict, partitioned: dict, homes) -> None:
    """Equal, except the field that is the instant of each side's own write: bayes_get_state's updated_at is
    the stored row's updated_at (the write's transaction time) on each side."""
    if fn == "bayes_get_state":
        single, partitioned = dict(single), dict(partitioned)
        for side, conn in zip((single, partitioned), homes, strict=True):
            (updated_at,) = conn.execute(
                "select updated_at from public.user_bayesian_state where user_id = %s", (side["user_id"],)
            ).fetchone()
            assert dt.datetime.fromisoformat(side.pop("updated_at")) == updated_at
    assert partitioned == single


@pytest.fixture
def twins(db, proxy_db, partition_dbs):
    """twins(k): k new player ids, the same on both sides: each an auth.users row on the single node; the
    partitioned mode needs none. Player i lives on partition i mod N (ids drawn until one hashes there), so
    that k >= N covers every partition whatever the draw."""
    n = len(partition_dbs)

    def make(k: int) -> list[uuid.UUID]:
        ids = []
        while len(ids) < k:
            user_id = uuid.uuid4()
            if partition_of(proxy_db, user_id, n) == len(ids) % n:
                ids.append(user_id)
        for user_id in ids:
            db.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@players.test"))
        return ids

    return make


def partition_of(proxy_db, user_id, n: int) -> int:
    (i,) = proxy_db.execute("select hashtext(%s::text) & %s", (str(user_id), n - 1)).fetchone()
    return i


def test_seeded_conversations_give_identical_results_states_and_logs(
    db, proxy_db, partition_dbs, twins, corpus, standin
):
    players = twins(PLAYERS)
    n = len(partition_dbs)
    homes = {p: partition_dbs[partition_of(proxy_db, p, n)] for p in players}
    assert {partition_of(proxy_db, p, n) for p in players} == set(range(n)), "a player on every partition"
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    scripts = {p: conversation(p, i, corpus, standin, start) for i, p in enumerate(players)}
    for conn in (db, proxy_db):
        conn.execute("select set_config('bayes.seed', %s, false)", (SESSION_SEED,))
    kinds: set[str] = set()
    duplicates = 0
    # Round robin over the players: the calls of the partitions interleave.
    for step in range(max(len(s) for s in scripts.values())):
        for p in players:
            if step >= len(scripts[p]):
                continue
            fn, args = scripts[p][step]
            single = sql_call(db, fn, args)
            partitioned = sql_call(proxy_db, fn, args)
            assert_same_result(fn, single, partitioned, (db, homes[p]))
            kinds.add(fn)
            duplicates += bool(single.get("duplicate"))
    assert kinds == {
        "bayes_process_message",
        "bayes_apply_llm_scores",
        "bayes_record_outcome",
        "bayes_advance_chapter",
        "bayes_get_state",
        "bayes_boss_readiness",
        "bayes_fallback_check",
    }
    assert duplicates >= 2 * PLAYERS  # the repeated message and the repeated LLM answer of every player
    for p in players:
        assert stored_row(homes[p], p) == stored_row(db, p), p
        single_log, partitioned_log = event_log(db, p), event_log(homes[p], p)
        assert len(single_log) > MESSAGES
        assert partitioned_log == single_log, p
        for conn in partition_dbs:  # and nowhere else
            if conn is not homes[p]:
                assert conn.execute("select count(*) from bayes.player_event where user_id = %s", (p,)).fetchone() == (
                    0,
                )


def test_a_conversation_through_the_api_is_the_same(
    db, service, pservice, proxy_db, partition_dbs, twins, corpus, standin
):
    """The same calls through supabase-py, at each side's gateway (the API cannot set bayes.seed: both draw
    with the player's own seeding)."""
    players = twins(4)
    n = len(partition_dbs)
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(minutes=50)
    for i, p in enumerate(players):
        home = partition_dbs[partition_of(proxy_db, p, n)]
        for fn, args in conversation(p, 100 + i, corpus, standin, start):
            single = service.rpc(fn, api_args(args)).data
            assert service.status == 200
            partitioned = pservice.rpc(fn, api_args(args)).data
            assert pservice.status == 200
            assert_same_result(fn, single, partitioned, (db, home))
        assert stored_row(home, p) == stored_row(db, p)
        assert event_log(home, p) == event_log(db, p)
