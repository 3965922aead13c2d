"""scripts/health: the engine's recorded health as a PNG, and what fires now.

Reads bayes.health_snapshot (a snapshot of bayes.health a minute, taken by the
pg_cron job bayes-record-health, or by hand with `select bayes.record_health()`),
bayes.health_change and bayes.health_threshold of a database, draws one small
panel per main signal over the snapshots of the last --hours (24 by default)
or from --since on, with the warn and critical thresholds as lines and the
changes of status marked (scripts/bayes_dev/health_picture.py, which the demo
draws with too), writes it to --out (out/health.png), and prints one line per
alert that fires at the last snapshot (bayes.alerts()).

Exit status: 0 when the picture was written (whatever fires), 1 when there is
nothing to draw (no snapshot in the time range), 2 when the database cannot be
read.
"""

from __future__ import annotations

import argparse
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import psycopg
from bayes_dev.health_picture import alert_lines, database_name, draw, read_history
from bayes_dev.support import ROOT, stack_env

DEFAULT_OUT = ROOT / "out" / "health.png"
DEFAULT_HOURS = 24.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/health",
        description="Draw the engine's recorded health signals (bayes.health_snapshot) into a PNG and print"
        " what fires now (bayes.alerts()).",
    )
    parser.add_argument(
        "--db-url", help="the database to read (default: the local stack's DB_URL, from `scripts/stack env`)"
    )
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--hours", type=float, help=f"draw the snapshots of the last HOURS hours (default {DEFAULT_HOURS:g})"
    )
    when.add_argument(
        "--since",
        type=dt.datetime.fromisoformat,
        help="draw the snapshots from this instant on (ISO 8601; without a time zone: UTC)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG to write (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    if args.hours is not None and not args.hours > 0:
        parser.error("--hours must be a positive number")
    return args


class Progress:
    """Says on stderr what it is doing, with the seconds since the start, once a step has taken a while."""

    def __init__(self, after_s: float = 3.0):
        self.started = time.monotonic()
        self.after_s = after_s

    def __call__(self, message: str) -> None:
        elapsed = time.monotonic() - self.started
        if elapsed >= self.after_s:
            print(f"health: {elapsed:5.1f} s  {message}", file=sys.stderr, flush=True)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.db_url:
        url = args.db_url
    else:
        try:
            url = stack_env()["DB_URL"]
        except subprocess.CalledProcessError as err:
            print(f"health: no local stack to read ({err.stderr.strip()}); give --db-url", file=sys.stderr)
            return 2
    database = database_name(url)
    progress = Progress()
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            now = conn.execute("select now()").fetchone()[0]
            if args.since is not None:
                since = args.since if args.since.tzinfo else args.since.replace(tzinfo=dt.UTC)
            else:
                since = now - dt.timedelta(hours=args.hours or DEFAULT_HOURS)
            progress(f"reading the snapshots since {since:%Y-%m-%d %H:%M:%S %Z}")
            history = read_history(conn, database, since)
    except psycopg.errors.UndefinedTable as err:
        print(
            f"health: {database} has no health tables ({err.diag.message_primary}): the migrations of issue 16"
            " are not applied there (scripts/stack up applies them on the local stack)",
            file=sys.stderr,
        )
        return 2
    except psycopg.OperationalError as err:
        print(f"health: cannot read {database}: {err}".rstrip(), file=sys.stderr)
        print("health: is the stack up? (scripts/stack up, or --db-url)", file=sys.stderr)
        return 2

    if not history.snapshots_taken:
        if history.recorded_ever:
            print(
                f"health: no snapshot in {database} since {since:%Y-%m-%d %H:%M:%S %Z}; the last of its"
                f" {history.recorded_ever} snapshot rows was taken at {history.last_ever:%Y-%m-%d %H:%M:%S %Z}"
                " (a longer --hours, or an earlier --since, draws it)"
            )
        else:
            print(
                f"health: no snapshots in {database} yet. The pg_cron job bayes-record-health records one a minute"
                " (select jobname, schedule, active from cron.job); to record one now:\n"
                "  psql \"$DB_URL\" -c 'select bayes.record_health()'"
            )
        return 1

    path = draw(history, args.out, progress)
    first, last = history.snapshots_taken[0], history.snapshots_taken[-1]
    print(
        f"wrote {path}: {len(history.snapshots_taken)} snapshots of {database},"
        f" {first:%Y-%m-%d %H:%M:%S} to {last:%Y-%m-%d %H:%M:%S} UTC"
    )
    lines = alert_lines(history)
    print(f"firing at the last snapshot (bayes.alerts()): {len(lines) or 'nothing'}")
    for line in lines:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
