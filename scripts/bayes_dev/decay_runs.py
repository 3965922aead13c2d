"""What the database tests of the bulk decay share: planting a player's row at
chosen instants, reading rows back, and calling bayes.run_decay with its
NOTICEs. Every function takes an autocommit psycopg connection (the
procedure commits, so it cannot run inside a transaction block)."""

from __future__ import annotations

import uuid

from .support import new_player

READ_ROWS_SQL = (
    "select user_id, state::text, version, extract(epoch from last_message_at)::float8,"
    " extract(epoch from decayed_at)::float8, decayed_at"
    " from public.user_bayesian_state where user_id = any(%s)"
)


def add_player(conn, state_text: str, last_message_at, decayed_at="same", mine: list | None = None) -> uuid.UUID:
    """A new player whose state row is `state_text`, last written at `last_message_at` (and decayed up to
    `decayed_at`, by default the same instant); his id is appended to `mine` when given."""
    user_id = new_player(conn)
    if mine is not None:
        mine.append(user_id)
    conn.execute(
        "insert into public.user_bayesian_state (user_id, state, version, last_message_at, decayed_at)"
        " values (%s, %s, 1, %s, %s)",
        (user_id, state_text, last_message_at, last_message_at if decayed_at == "same" else decayed_at),
    )
    return user_id


def rows(conn, ids) -> dict:
    """{user_id: (state text, version, last_message_at epoch, decayed_at epoch, decayed_at)} of these players."""
    return {r[0]: r[1:] for r in conn.execute(READ_ROWS_SQL, (list(ids),)).fetchall()}


def run_decay(conn, now, batch: int = 5000) -> list[str]:
    """call bayes.run_decay(now, batch); the NOTICEs it sent."""
    notices: list[str] = []
    conn.add_notice_handler(lambda diag: notices.append(diag.message_primary))
    conn.execute("call bayes.run_decay(%s, %s)", (now, batch))
    return notices
