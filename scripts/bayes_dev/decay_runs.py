"""What the database tests of the bulk decay share: planting a player's row at
chosen instants, reading rows back, and calling bayes.run_decay with its
NOTICEs. Every function takes an autocommit psycopg connection (a run
commits, so it cannot run inside a transaction block)."""

from __future__ import annotations

import uuid

from psycopg import sql

from .support import new_player

READ_ROWS_SQL = (
    "select user_id, state::text, version, extract(epoch from last_message_at)::float8,"
    " extract(epoch from decayed_at)::float8, decayed_at"
    " from public.user_bayesian_state where user_id = any(%s)"
)


def add_player(
    conn, state_text: str, last_message_at, decayed_at="same", mine: list | None = None, due: str = "engine"
) -> uuid.UUID:
    """A new player whose state row is `state_text`, last written at `last_message_at` (and decayed up to
    `decayed_at`, by default the same instant); his id is appended to `mine` when given. His decay_due_at
    is the engine's (due="engine": bayes.decay_due_at), or the start of his decay window (due="window":
    what migration 0013 gives a row written before it, due at once)."""
    user_id = new_player(conn)
    if mine is not None:
        mine.append(user_id)
    conn.execute(
        "insert into public.user_bayesian_state (user_id, state, version, last_message_at, decayed_at)"
        " values (%s, %s, 1, %s, %s)",
        (user_id, state_text, last_message_at, last_message_at if decayed_at == "same" else decayed_at),
    )
    if due == "window":
        conn.execute(WINDOW_DUE_SQL, ([user_id],))
    else:
        set_due(conn, [user_id])
    return user_id


# As sql/migrations/0013_decay_due.sql does for the rows written before it.
WINDOW_DUE_SQL = (
    "update public.user_bayesian_state as s set decay_due_at = greatest(s.decayed_at, s.last_message_at"
    " + make_interval(secs => 3600 * coalesce((select cp.decay_grace_h from bayes.chapter_params as cp"
    " where cp.chapter = s.chapter), 0))) where s.user_id = any(%s) and s.last_message_at is not null"
)


SET_DUE_SQL = (
    "update public.user_bayesian_state set decay_due_at = to_timestamp(bayes.decay_due_at(state,"
    " extract(epoch from last_message_at)::float8, extract(epoch from decayed_at)::float8))"
    " where user_id = any(%s) and bayes.state_problem(state) is null"
)


def set_due(conn, ids) -> None:
    """Give planted rows the due time a write of the engine gives them (bayes.decay_due_at)."""
    conn.execute(SET_DUE_SQL, (list(ids),))


def decay_command(conn, now=None, batch=5000) -> str:
    """The DO block of a bulk decay run up to `now` (bayes.run_decay_command): execute it to run.

    On a database that has not reached issue 15's code yet (tests/db/test_upgrade_v1_v2.py builds the
    old schema first), the call of the procedure bayes.run_decay that it replaced.
    """
    if conn.execute("select to_regproc('bayes.run_decay_command')").fetchone()[0] is None:
        return sql.SQL("call bayes.run_decay({}, {})").format(sql.Literal(now), sql.Literal(batch)).as_string(conn)
    return conn.execute("select bayes.run_decay_command(%s, %s::integer)", (now, batch)).fetchone()[0]


def due_times(conn, ids) -> dict:
    """{user_id: decay_due_at} of these players."""
    return dict(
        conn.execute(
            "select user_id, decay_due_at from public.user_bayesian_state where user_id = any(%s)", (list(ids),)
        ).fetchall()
    )


def rows(conn, ids) -> dict:
    """{user_id: (state text, version, last_message_at epoch, decayed_at epoch, decayed_at)} of these players."""
    return {r[0]: r[1:] for r in conn.execute(READ_ROWS_SQL, (list(ids),)).fetchall()}


def run_decay(conn, now, batch: int = 5000) -> list[str]:
    """A bulk decay run up to `now` (bayes.run_decay_command's DO block); the NOTICEs it sent."""
    notices: list[str] = []
    command = decay_command(conn, now, batch)
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    conn.execute(command)
    return notices
