"""The upgrade from MODEL v1 to v2 on a database that has v1 states and
events (issue 13, point 2): the migrations of the last v1 commit pushed with
the Supabase CLI, a v1 history written through the v1 RPCs, then the
migrations of the working tree pushed onto the same database.

One cluster and one database for the whole module (pushing the migrations
twice is the cost). The history lives in the past, inside the send-time
window of the migrations (at most max_message_age_h = 720 h back): every
instant is BASE + some hours, BASE = the database clock - 700 h. The pg_cron
job is made inactive after each push, so that only this module's calls of
bayes.run_decay decay anyone.

The players (hours after BASE; ch = chapter; grace 8 h in chapter 1, 24 h in
chapter 3; B = 3 tokens):

    untouched     v1 messages at 600-602 h; never written again (v1 on disk
                  until the end, whatever is read).
    bulk          v1 messages at 0-3 h; the v1 bulk decay at 300 h writes a
                  v1 state; the v2 bulk decay at 500 h is its first v2 write.
    bulk_message  like bulk, then a v2 message at 400 h (lazy decay from the
                  v1 bulk's 300 h), then the v2 bulk decay at 500 h.
    mixed         v1 messages at 290-298 h; its first v2 write is a message
                  at 495 h (a lazy decay over 197 h), then more.
    llm           v1 messages, LLM scores and outcomes at 290-298 h; its
                  first v2 write is LLM scores, then v2 messages.
    outcome       v1 messages at 290-298 h; its first v2 write is an outcome.
    chapter       v1 messages at 200-205 h (ch 1), LLM scores, outcomes, the
                  advance to chapter 3 (S < S0 for some metric), a v1 message
                  at 290 h after 85 h of absence (the v1 lazy decay raises
                  S towards S0: v1 and v2 differ there), more at 295-298 h;
                  its first v2 write is a message at 495 h after 197 h of
                  absence (v2: S <= S0 stays).
    chapter_bulk  v1 messages at 0-3 h, the advance to chapter 3, the v1 bulk
                  decay at 300 h (which raises S towards S0), a v2 message
                  at 400 h, the v2 bulk decay at 500 h.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from bayes_dev.decay_runs import run_decay
from bayes_dev.support import BOOTSTRAP, ROOT, create_database, cron_cluster, new_player, psql

pytestmark = pytest.mark.db

DBNAME = "bayes_upgrade"
SUPABASE = ROOT / "node_modules" / ".bin" / "supabase"
V1_COMMIT = "ce0c4a3"  # the last commit of MODEL v1 on main
HOUR = dt.timedelta(hours=1)
V1_BULK_H = 300  # the v1 bulk decay
V2_BULK_H = 500  # the v2 bulk decay

upgrade_proc = cron_cluster(DBNAME)

TEXTS = [
    "hey! how was your day?",
    "I love you, you make me laugh \U0001f602",
    "I feel like I can be honest with you, I trust you",
    "whatever, this is boring",
    "you are so sweet, thank you for listening to me",
    "ok",
]
MESSAGE_SQL = "select public.bayes_process_message(%s, %s, %s, %s, %s)"
ROW_SQL = (
    "select state::text, version, extract(epoch from last_message_at)::float8,"
    " extract(epoch from decayed_at)::float8 from public.user_bayesian_state where user_id = %s"
)


# ---------------------------------------------------------------------------
# The two migration sets and the CLI
# ---------------------------------------------------------------------------


def v1_supabase_dir(dst: Path) -> Path:
    """supabase/ exactly as it is at V1_COMMIT, under dst (the CLI's workdir)."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.fail(f"{ROOT} is not a git checkout: this test needs the history (commit {V1_COMMIT})")
    found = subprocess.run(
        ["git", "-C", str(ROOT), "cat-file", "-e", f"{V1_COMMIT}^{{commit}}"], capture_output=True, text=True
    )
    if found.returncode != 0:
        pytest.fail(
            f"commit {V1_COMMIT} (the last MODEL v1 commit, whose migrations this test pushes first) is not in"
            f" the history of {ROOT}: run the test in a full clone (git fetch --unshallow)\n{found.stderr}"
        )
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", V1_COMMIT, "supabase"], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(dst)], input=archive.stdout, check=True)
    return dst


def push(workdir: Path, url: str) -> list[str]:
    """supabase db push of workdir's supabase/migrations; the files it applied."""
    proc = subprocess.run(
        [str(SUPABASE), "db", "push", "--workdir", str(workdir), f"--remote={url}", "--yes"],
        capture_output=True,
        text=True,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    return [line.split()[-1].rstrip(".") for line in out.splitlines() if line.startswith("Applying migration")]


def pause_cron(url: str) -> None:
    """Every pg_cron job made inactive (kept, so that a migration may still alter or reschedule it)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("select cron.alter_job(jobid, active => false) from cron.job")
        assert conn.execute("select count(*) from cron.job where active").fetchone()[0] == 0


def migration_names(directory: Path) -> list[str]:
    return sorted(p.name for p in (directory / "supabase" / "migrations").glob("*.sql"))


# ---------------------------------------------------------------------------
# The v1 history
# ---------------------------------------------------------------------------


@dataclass
class History:
    url: str
    base: dt.datetime
    v1_migrations: list[str]
    players: dict[str, uuid.UUID] = field(default_factory=dict)
    counter: dict[str, int] = field(default_factory=dict)
    # rows kept on the way: {label: (state text, version, last_message_at, decayed_at)}
    kept: dict[str, tuple] = field(default_factory=dict)

    def at(self, hours: float) -> dt.datetime:
        return self.base + hours * HOUR

    def send(self, conn, name: str, hours: float, gap: float | None = 90.0) -> dict:
        """One message of player `name` at BASE + hours, through bayes_process_message."""
        i = self.counter.get(name, 0)
        self.counter[name] = i + 1
        text = TEXTS[i % len(TEXTS)]
        return conn.execute(
            MESSAGE_SQL, (self.players[name], text, self.at(hours), f"{name}-{i}", gap)
        ).fetchone()[0]

    def llm(self, conn, name: str, deltas: dict) -> dict:
        i = self.counter.get(name, 0)
        self.counter[name] = i + 1
        return conn.execute(
            "select public.bayes_apply_llm_scores(%s, %s, %s)", (self.players[name], json.dumps(deltas), f"llm-{i}")
        ).fetchone()[0]

    def outcome(self, conn, name: str, decision: str, engaged: bool) -> dict:
        return conn.execute(
            "select public.bayes_record_outcome(%s, %s, %s)", (self.players[name], decision, engaged)
        ).fetchone()[0]

    def advance(self, conn, name: str, chapter: int) -> dict:
        return conn.execute("select public.bayes_advance_chapter(%s, %s)", (self.players[name], chapter)).fetchone()[0]

    def rows(self, conn) -> dict[str, tuple]:
        """{name: (state text, version, last_message_at, decayed_at)} (times in epoch seconds)."""
        return {name: conn.execute(ROW_SQL, (uid,)).fetchone() for name, uid in self.players.items()}


def write_v1_history(h: History, conn) -> None:
    for name in ("untouched_1", "untouched_2", "bulk", "bulk_message", "mixed", "llm", "outcome", "chapter"):
        h.players[name] = new_player(conn)
    h.players["chapter_bulk"] = new_player(conn)

    for name in ("untouched_1", "untouched_2"):
        for hours in (600, 601, 601.5, 602):
            h.send(conn, name, hours)
    for name in ("bulk", "bulk_message", "chapter_bulk"):
        for hours in (0, 1, 2, 3):
            h.send(conn, name, hours)
    h.advance(conn, "chapter_bulk", 3)
    for name in ("mixed", "llm", "outcome"):
        for hours in (290, 292, 294, 296, 298):
            h.send(conn, name, hours)
    h.llm(conn, "llm", {"intimacy": 6, "trust": -3})
    h.outcome(conn, "llm", "skip", True)
    h.outcome(conn, "llm", "reply", False)
    h.send(conn, "llm", 298.5)

    for hours in (200, 201, 202, 204, 205):
        h.send(conn, "chapter", hours)
    h.llm(conn, "chapter", {"passion": 5, "secureness": -4})
    h.outcome(conn, "chapter", "reply", True)
    h.advance(conn, "chapter", 3)
    h.kept["chapter before its absence"] = conn.execute(ROW_SQL, (h.players["chapter"],)).fetchone()
    h.send(conn, "chapter", 290)  # 85 h after 205 h: the v1 lazy decay, in chapter 3 (grace 24 h)
    for hours in (295, 298):
        h.send(conn, "chapter", hours)


@pytest.fixture(scope="module")
def v1(upgrade_proc, tmp_path_factory) -> History:
    """The database after the v1 migrations and the v1 history (v1 bulk decay included)."""
    workdir = v1_supabase_dir(tmp_path_factory.mktemp("v1"))
    url = create_database(upgrade_proc, DBNAME)
    psql(url, "-v", "authenticator_password=postgres", "-f", str(BOOTSTRAP))
    applied = push(workdir, url)
    assert applied == migration_names(workdir)
    pause_cron(url)
    with psycopg.connect(url, autocommit=True) as conn:
        now = conn.execute("select date_trunc('second', now())").fetchone()[0]
        h = History(url, now - 700 * HOUR, applied)
        write_v1_history(h, conn)
        h.kept["chapter_bulk before the v1 bulk"] = conn.execute(ROW_SQL, (h.players["chapter_bulk"],)).fetchone()
        run_decay(conn, h.at(V1_BULK_H))
    return h


def test_the_v1_history_is_v1_and_replays(v1):
    with psycopg.connect(v1.url) as conn:
        rows = v1.rows(conn)
        assert {name: json.loads(r[0])["v"] for name, r in rows.items()} == dict.fromkeys(rows, 1)
        assert conn.execute("select count(*) from bayes.params where name like 'variance_threshold_%'").fetchone()[0]
        bulk_written = {"bulk", "bulk_message", "chapter_bulk"}
        for name, (text, *_, decayed_at) in rows.items():
            assert (decayed_at == v1.at(V1_BULK_H).timestamp()) == (name in bulk_written), name
            replayed = conn.execute("select bayes.replay(%s)::text", (v1.players[name],)).fetchone()[0]
            if name not in bulk_written:
                assert json.loads(replayed) == json.loads(text), name


def narrower_than_prior(state_text: str) -> list[str]:
    """The metrics whose strength S = alpha + beta is below the chapter prior's S0 (where v1 and v2 decay differ)."""
    state = json.loads(state_text)
    return [k for k, (a, b) in state["m"].items() if a + b < sum(state["mp"][k])]


def test_the_v1_history_has_posteriors_narrower_than_their_prior_before_an_absence(v1):
    """The premise of the chapter players: after the advance to chapter 3, some S < S0 (decay differs there)."""
    for label in ("chapter before its absence", "chapter_bulk before the v1 bulk"):
        text = v1.kept[label][0]
        assert json.loads(text)["c"] == 3 and narrower_than_prior(text), (label, text)
