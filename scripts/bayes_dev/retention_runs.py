"""Running a retention run of the event log from the tests and benchmarks: the DO block of
bayes.run_retention_command, with its NOTICEs. A run commits after every batch, so it runs on an
autocommit psycopg connection (inside a transaction block it fails with 2D000)."""

from __future__ import annotations


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
