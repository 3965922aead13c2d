"""Running a retention run of the event log from the tests and benchmarks: the DO block of
bayes.run_retention_command, with its NOTICEs. A run commits after every batch, so it runs on an
autocommit psycopg connection (inside a transaction block it fails with 2D000)."""

from __future__ import annotations

import datetime as dt


def retention_command(conn, now=None, batch: int = 1000) -> str:
    """The DO block of a retention run up to `now` (None: now() when it starts): execute it to run."""
    return conn.execute("select bayes.run_retention_command(%s, %s::integer)", (now, batch)).fetchone()[0]


def run_retention(conn, now=None, batch: int = 1000) -> list[str]:
    """A retention run up to `now` (bayes.run_retention_command's DO block); the NOTICEs it sent."""
    notices: list[str] = []
    command = retention_command(conn, now, batch)
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    conn.execute(command)
    return notices


def copied_histories(db, template: str, players: int, old, recent, seed: str, email_prefix: str) -> tuple[int, int]:
    """One history written by the engine for `template` (48 messages from `old`, LLM scores, an outcome and a
    chapter, all before `recent`; then 6 messages from `recent`), copied to `players` - 1 new players whose
    emails start with `email_prefix`, each with the template's state row and his own message keys. Returns
    (the template's events before `recent`, all his events). The engine's random draws depend on the player's
    id: a copy's state is the template's, not what a replay of his log gives (see replayed_copies)."""
    db.execute("insert into auth.users (id, email) values (%s, %s)", (template, f"{email_prefix}template@players.test"))
    db.execute("select set_config('bayes.seed', %s, false)", (seed,))
    t = old
    for i in range(48):
        t += dt.timedelta(minutes=7 + i % 5)
        db.execute(
            "select public.bayes_process_message(%s, %s, %s, %s)", (template, f"hello {i} I love you", t, f"o{i}")
        )
    db.execute("select public.bayes_apply_llm_scores(%s, '{\"trust\": 4}', 'o47')", (template,))
    db.execute("select public.bayes_record_outcome(%s, 'skip', true)", (template,))
    db.execute("select public.bayes_advance_chapter(%s, 2)", (template,))
    # the other writers are stamped with now(): back to the time of the last old message
    db.execute("update bayes.player_event set occurred_at = %s where user_id = %s and kind <> 'message'", (t, template))
    for i in range(6):
        db.execute(
            "select public.bayes_process_message(%s, 'back again', %s, %s)",
            (template, recent + dt.timedelta(hours=i), f"r{i}"),
        )
    db.execute(
        "insert into auth.users (id, email) select gen_random_uuid(), %s || g || '@players.test'"
        " from generate_series(1, %s) as g",
        (email_prefix, players - 1),
    )
    copies = "from auth.users as u, {table} where {alias}.user_id = %s and u.email like %s and u.id <> %s"
    like = email_prefix.replace("%", r"\%").replace("_", r"\_") + "%"
    db.execute("set bayes.state_writer = 'engine'")  # the states are the engine's own (the template's)
    db.execute(
        "insert into public.user_bayesian_state (user_id, state, version, last_message_at, decayed_at)"
        " select u.id, s.state, s.version, s.last_message_at, s.decayed_at "
        + copies.format(table="public.user_bayesian_state as s", alias="s"),
        (template, like, template),
    )
    db.execute(
        "insert into bayes.player_event (user_id, kind, message_id, message_key, occurred_at, input,"
        " player_mode, n, mood, fallback_reason, fallback_needed)"
        " select u.id, e.kind, e.message_id, bayes.message_key(u.id, e.kind, e.message_id), e.occurred_at,"
        " e.input, e.player_mode, e.n, e.mood, e.fallback_reason, e.fallback_needed "
        + copies.format(table="bayes.player_event as e", alias="e")
        + " order by u.id, e.event_id",
        (template, like, template),
    )
    return tuple(
        db.execute(
            "select count(*) filter (where occurred_at < %s), count(*) from bayes.player_event where user_id = %s",
            (recent, template),
        ).fetchone()
    )


def replayed_copies(db, template: str) -> None:
    """Each copy's state set to what the engine makes of his log (bayes.replay before any retention)."""
    db.execute("update public.user_bayesian_state set state = bayes.replay(user_id) where user_id <> %s", (template,))
