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
3. lets simulated time pass: it runs the bulk decay (the DO block of
   bayes.run_decay_command, which pg_cron runs every 15 minutes) with later
   and later instants and prints, per step and per player, the composite and
   the boss readiness as a read at that instant answers it (the read RPCs
   decay on read: bayes.decay_state of the row up to the instant, then
   bayes.state_readiness, what bayes_boss_readiness computes), which fall
   once a player's absence exceeds the chapter's grace; then the fallback
   check (bayes_fallback_check) of each player;
4. brings ava back for a few warm messages, and her readiness rises again;
   prints how often the engine asked for the LLM, per player and rule; then
   a fourth player, dana, sends 200 real chat lines (chatterbot-corpus, as
   the lifetime benchmark does), the stand-in (vaderSentiment) answering
   where the engine asks, and the demo prints the LLM call rate per stretch
   of her life next to what MODEL.md v1's rules say of the same results;
5. reads each player's state (bayes_get_state) and shows what a player's JWT
   and the anon key may and may not do;
6. runs one short round of the migration playbook (docs/migration-playbook.md):
   bayes.rollout back to 0% (everyone in shadow), SHADOW_PLAYERS new players
   send SHADOW_MESSAGES real chat lines each, the backend asking the stand-in
   about every message and reporting its deltas and a mood with the message
   id; then bayes.shadow_report, bayes.evaluate_policy at the current
   budget, bayes.calibrate_evidence (applied only if its verdict is better,
   after a copy of the feature_* rows is saved), the cohort moved (bayes.rollout
   to 100%) and the next message of a player, whose result says mode bayes;
   at the end the saved rows and the rollout are put back, so that the next
   run starts from the same parameters;
7. draws each player's composite over time, its 95% band and the boss
   threshold into out/demo_composite.png;
8. shows the engine's health as its operator sees it: the demo records a
   snapshot of bayes.health (select bayes.record_health(), what the pg_cron
   job bayes-record-health runs every minute) before its traffic and after
   each part of it, prints bayes.health() as a compact table and what
   bayes.alerts() says fires, and draws its snapshots into
   out/demo_health.png with the code of scripts/health
   (bayes_dev.health_picture).

Modes. bayes.rollout puts each player in mode shadow or bayes; a new
installation starts at 0% bayes (everyone shadow). Steps 1-5 show the engine
as a bayes-mode backend uses it (the LLM asked only when fallback.needed), so
the demo sets bayes.rollout to 100% for them, and every result says mode
bayes; the playbook round of step 6 starts again from 0%.

Time. The engine takes only send times within its window around the
database clock (at most clock_skew_s = 300 s ahead, at most
max_message_age_h = 720 h back), and decay never goes backwards, so the
demo's story lies in the recent past: the conversations end at T0, about
four days ago, the simulated decay instants T0 + 6 h, ..., T0 + 96 h follow,
and ava's return ends before now. The demo signs its players up afresh,
so no earlier decay has touched them. T0 is moved back (by at
most four hours) when it falls in the first or last hours of a UTC day, so
that no conversation straddles a UTC midnight: the `steady` feature counts
messages per UTC day, and the demo must print the same numbers at any hour.
While it runs, the demo holds the advisory lock a bulk run takes, so a
cron run in the middle of it does nothing (it logs itself as 'overlapped' in
bayes.decay_run), while the demo's own runs, on the session that holds the
lock, go through: an advisory lock is re-entrant.
The lock is held to the end, through the playbook round too, whose players'
messages lie a day and more in the past: a bulk decay in between would move
their states.
"""

from __future__ import annotations

import datetime as dt
import sys
import textwrap
import uuid
from pathlib import Path

import psycopg
from bayes_dev import health_picture  # scripts/health's reading and drawing
from bayes_dev.support import ROOT, player_jwt, stack_env  # the same helpers the tests use
from postgrest.exceptions import APIError

from supabase import create_client

# Three demo players and the chapter each plays in.
PLAYERS = [
    (uuid.UUID("00000000-0000-4000-8000-000000000d01"), "ava", 1),
    (uuid.UUID("00000000-0000-4000-8000-000000000d02"), "ben", 2),
    (uuid.UUID("00000000-0000-4000-8000-000000000d03"), "cleo", 3),
]
# A fourth player lives longer: 200 real chat lines (the lifetime benchmark's
# corpus and its seeded reply gaps), to show how rarely the engine asks the LLM
# once the cold start is over.
LONG_LIFE = (uuid.UUID("00000000-0000-4000-8000-000000000d04"), "dana", 200)
LONG_LIFE_SEED = 7
LONG_LIFE_BUCKETS = ((0, 10), (10, 20), (20, 50), (50, 100), (100, 200))

# The playbook round: new players in shadow mode, each a script of the lifetime benchmark's population
# (corpus lines, seeded reply gaps and send times) under a user id of the demo's own. With these ids,
# bayes.user_bucket(user_id, 'calibration') holds 4 of the 16 out of calibrate_evidence's fit (p_holdout 0.3).
SHADOW_PLAYERS = [(uuid.UUID(f"00000000-0000-4000-8000-000000000e{i:02d}"), f"s{i:02d}", i - 1) for i in range(1, 17)]
SHADOW_MESSAGES = 60
SHADOW_SEED = 14
# The stand-in's mood: VADER's compound score below -0.05 defensive, above 0.05 playful, else content
# (as tests/db/test_shadow_cohort.py; a stand-in too, not a model of the LLM's mood).

# (seconds since the character's previous message, topic changed?, text).
# Every conversation ends at the same instant T0.
CONVERSATIONS = {
    "ava": [
        (None, None, "hi! I just started playing, who are you?"),
        (35, False, "haha that's so sweet \U0001f602 I love how you talk"),
        (50, False, "I think you are amazing. What do you dream about at night?"),
        (40, False, "thank you, that is kind. I feel like I can be honest with you"),
        (25, True, "let's do something crazy and wild, a spontaneous adventure?"),
        (60, False, "I miss talking like this. what do you hope for?"),
        (30, False, "lol ok \U0001f606\U0001f606\U0001f606"),
        (
            45,
            False,
            "I'm afraid to say it but I really care about you, I want to be open and honest. "
            "It's strange how real this feels, I remember every word you said yesterday.",
        ),
        (20, False, "what do you think about when you are alone?"),
        (55, False, "you make me happy. wonderful evening, thank you"),
        (40, False, "do you ever feel vulnerable? I do, with you"),
        (35, False, "honestly you are the best part of my day. what do you wish for?"),
        (50, False, "I love our talks, thank you for being so sweet and kind. do you feel it too?"),
        (40, False, "I hope we can go on an adventure together one day, what would you like to do?"),
        (45, False, "haha you always make me smile \U0001f602 thank you, this was wonderful"),
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
        (
            70,
            False,
            "I have a secret confession: I'm scared of being vulnerable, of letting anyone see the real me. "
            "With you it feels different, like I can be honest and open about my fears and my dreams.",
        ),
        (40, False, "thank you for listening, I appreciate you so much. what do you wish for?"),
        (600, True, "dark humor time: I'm dead tired and the twisted irony is that I can't sleep haha"),
        (30, False, "goodnight \U0001f319"),
    ],
}
LLM_DELTAS = {"intimacy": 4, "passion": 2, "trust": 3, "secureness": 1}  # what an LLM pass might return

# bayes_boss_readiness's answer at a simulated instant %(t)s: the row decayed on read up to it.
READINESS_AT_SQL = """
select bayes.state_readiness(
    bayes.decay_state(
        s.state, (select r.revision from bayes.params_revision as r), extract(epoch from s.last_message_at)::float8,
        extract(epoch from s.decayed_at)::float8, extract(epoch from %(t)s::timestamptz)::float8
    ),
    'edgeworth', s.user_id::text, null
)
from public.user_bayesian_state as s
where s.user_id = %(user_id)s
"""
# Simulated absence: a bulk run up to T0 + h for these h (hours after the last messages).
DECAY_STEPS_H = (6, 12, 24, 48, 96)
# Who comes back, how long after the last decay instant, and what she says
# (the first gap is computed: the character's previous message was at T0).
RETURNING = "ava"
RETURN_AFTER = dt.timedelta(minutes=20)
RETURN_MESSAGES = [
    (None, False, "I'm back! I missed you so much, did you miss me too?"),
    (30, False, "sorry I was away, I love talking with you. what did you dream about?"),
    (40, False, "thank you for waiting, you are wonderful and kind. what do you hope for us?"),
    (35, False, "I feel happy and safe with you again. I want to remember this, do you?"),
    (45, False, "you are amazing, thank you. what do you dream about when I'm away?"),
    (30, False, "I think about our talks all day. what do you wish we could do together?"),
    (40, False, "you make me feel wonderful and excited, thank you. do you remember our first chat?"),
    (35, False, "I care about you so much. what makes you happy, honestly?"),
]

# The day window for T0 (UTC time of day): conversations start up to 2.3 h
# before T0 (ben's first three messages, three days earlier) and ava's return
# lasts a few minutes from T0 + 96 h + 20 min, so within [3 h, 23 h] every
# conversation stays inside its UTC day.
T0_EARLIEST = dt.timedelta(hours=3)
T0_LATEST = dt.timedelta(hours=23)
SESSION_BREAK = dt.timedelta(hours=6)  # a longer gap starts a new session (on another UTC day)

OUT_PNG = ROOT / "out" / "demo_composite.png"
OUT_HEALTH_PNG = ROOT / "out" / "demo_health.png"
Z95 = 1.959963984540054


def reset(db) -> None:
    """Sign the demo players up again: deleting auth.users cascades to their states and events."""
    for user_id, name, _ in [*PLAYERS, LONG_LIFE, *SHADOW_PLAYERS]:
        db.execute("delete from auth.users where id = %s", (user_id,))
        db.execute("insert into auth.users (id, email) values (%s, %s)", (user_id, f"{name}@demo.test"))


def anchor(now: dt.datetime) -> dt.datetime:
    """T0, when the conversations end: early enough that the whole story (the absence, decayed at T0 + 6 h
    ... T0 + 96 h, and ava's return after it) ends at least two minutes before now, to the minute, kept
    inside [3 h, 23 h] of its UTC day."""
    span = dt.timedelta(hours=DECAY_STEPS_H[-1]) + RETURN_AFTER
    span += dt.timedelta(seconds=sum(gap for gap, _, _ in RETURN_MESSAGES[1:]))
    t0 = (now - dt.timedelta(minutes=2) - span).astimezone(dt.UTC).replace(second=0, microsecond=0)
    midnight = t0.replace(hour=0, minute=0)
    if t0 - midnight < T0_EARLIEST:
        return midnight - (dt.timedelta(days=1) - T0_LATEST)
    return min(t0, midnight + T0_LATEST)


def timeline(end: dt.datetime, messages: list) -> list[dt.datetime]:
    """The send times of a conversation that ends at `end`, from its reply gaps."""
    times = [end]
    for gap, _, _ in reversed(messages[1:]):
        times.append(times[-1] - dt.timedelta(seconds=gap))
    return times[::-1]


def check_utc_days(times: list[dt.datetime]) -> None:
    """Each session (messages less than SESSION_BREAK apart) lies inside one UTC day, each on its own day."""
    days = [times[0].date()]
    for before, after in zip(times, times[1:]):
        if after - before < SESSION_BREAK:
            if after.date() != before.date():
                raise RuntimeError(f"a session straddles a UTC midnight at {after}")
        elif after.date() in days:
            raise RuntimeError(f"two sessions on the UTC day {after.date()}")
        else:
            days.append(after.date())


def return_timeline(t0: dt.datetime) -> tuple[list, list[dt.datetime]]:
    """The returning player's messages (the first gap filled in) and their times, from RETURN_AFTER
    after the last decay instant on."""
    back = t0 + dt.timedelta(hours=DECAY_STEPS_H[-1]) + RETURN_AFTER
    messages = [((back - t0).total_seconds(), *RETURN_MESSAGES[0][1:]), *RETURN_MESSAGES[1:]]
    times = timeline(back, messages)
    times = [t + (back - times[0]) for t in times]  # the first one at `back`
    check_utc_days([t0, *times])
    return messages, times


def fmt_ci(composite: float, lo: float, hi: float) -> str:
    return f"{composite:5.1f} [{lo:4.1f}, {hi:4.1f}]"


def ci95(composite: float, sd: float) -> tuple[float, float]:
    """composite +- 1.96 sd clipped to [0, 100], as the message RPC's composite_ci95."""
    return max(0.0, composite - Z95 * sd), min(100.0, composite + Z95 * sd)


class Demo:
    def __init__(self, env: dict[str, str], db):
        self.db = db
        self.backend = create_client(env["API_URL"], env["SERVICE_ROLE_KEY"])
        self.series: dict[str, list[tuple]] = {name: [] for _, name, _ in PLAYERS}  # (t, composite, lo, hi, kind)
        params = db.execute("select chapter, boss_threshold, decay_grace_h from bayes.chapter_params").fetchall()
        self.threshold = {c: float(t) for c, t, _ in params}
        self.grace_h = {c: float(g) for c, _, g in params}
        # Per player: messages sent, and those on which the engine asked for the LLM, by reason.
        self.sent: dict[str, int] = {}
        self.llm_asked: dict[str, dict[str, int]] = {}
        self.health = HealthSnapshots(db)

    def rpc(self, fn: str, args: dict):
        return self.backend.rpc(fn, args).execute().data

    def point(self, name: str, t: dt.datetime, composite: float, lo: float, hi: float, kind: str) -> None:
        self.series[name].append((t, composite, lo, hi, kind))

    def converse(self, user_id: uuid.UUID, name: str, chapter: int, t0: dt.datetime) -> None:
        if chapter > 1:
            self.rpc("bayes_advance_chapter", {"p_user_id": str(user_id), "p_chapter": chapter})
        print(f"\n{name}, chapter {chapter}")
        self.header()
        messages = CONVERSATIONS[name]
        times = timeline(t0, messages)
        check_utc_days(times)
        for i, ((gap, topic, text), t) in enumerate(zip(messages, times)):
            self.send(user_id, name, f"{name}-{i}", t, gap, topic, text, twice=(name == "ben" and i == 0))
        if name == "ben":
            print(
                '  (ben\'s first message was sent twice: the second call answered "duplicate": true, changed nothing)'
            )

    @staticmethod
    def header() -> None:
        print(
            f"  {'#':>2} {'gap':>6}  {'message':<34} {'composite [95%]':<20} {'mood':<10} {'top vice':<28}"
            f" {'reply':<14} {'LLM: rule, asked, budget':<26} boss"
        )

    def send(self, user_id, name, message_id, t, gap, topic, text, twice=False) -> dict:
        """One message through bayes_process_message, one printed line (and the LLM's scores when asked for)."""
        args = {
            "p_user_id": str(user_id),
            "p_message": text,
            "p_sent_at": t.isoformat(),
            "p_message_id": message_id,
            "p_reply_gap_s": gap,
            "p_topic_changed": topic,
        }
        r = self.rpc("bayes_process_message", args)
        assert r["mode"] == "bayes", r["mode"]  # bayes.rollout is at 100% for this part (main)
        if twice:
            again = self.rpc("bayes_process_message", args)
            assert again["duplicate"] and again["version"] == r["version"]
        lo, hi = r["composite_ci95"]
        self.point(name, t, r["composite"], lo, hi, "message")
        vice, p_vice = r["vices"]["top"][0]
        reply = f"skip (p {r['skip']['p']:.2f})" if r["skip"]["skip"] else f"in {r['delay_s']:.0f}s"
        fallback = r["fallback"]
        llm_cell = f"{fallback['reason']:<19} {'yes' if fallback['needed'] else 'no':<3} {fallback['budget_left']:.2f}"
        self.sent[name] = self.sent.get(name, 0) + 1
        if fallback["needed"]:
            asked = self.llm_asked.setdefault(name, {})
            asked[fallback["reason"]] = asked.get(fallback["reason"], 0) + 1
        gap_text = "-" if gap is None else (f"{gap / 86400:.0f}d" if gap >= 86400 else f"{gap:.0f}s")
        print(
            f"  {r['n']:>2} {gap_text:>6}  {shorten(text, 34):<34} {fmt_ci(r['composite'], lo, hi)}"
            f"  {r['mood']['state']:<10} {vice:<22} {p_vice:.2f}  {reply:<14} {llm_cell:<26}"
            f" P(ready) {r['boss']['p_ready']:.2f}"
        )
        if r["decay_hours"] > 0:
            hours = f"{r['decay_hours']:.0f}" if r["decay_hours"] >= 1 else f"{r['decay_hours']:.1f}"
            print(f"  {'':>10}  (away: {hours} h of decay applied before this message)")
        if fallback["needed"]:
            llm = self.rpc(
                "bayes_apply_llm_scores",
                {"p_user_id": str(user_id), "p_deltas": LLM_DELTAS, "p_message_id": message_id},
            )
            self.point(name, t, llm["composite"], *ci95(llm["composite"], llm["composite_sd"]), "llm")
            print(
                f"  {'':>10}  LLM consulted ({fallback['reason']}), deltas {LLM_DELTAS} -> composite"
                f" {llm['composite']:.1f}, P(ready) {llm['boss']['p_ready']:.2f}"
            )
        return r

    def llm_summary(self) -> None:
        print("\nLLM calls (fallback.needed) per player:")
        for _, name, _ in PLAYERS:
            asked = self.llm_asked.get(name, {})
            by_reason = ", ".join(f"{reason} {count}" for reason, count in sorted(asked.items()))
            print(f"  {name:<5} asked on {sum(asked.values())} of {self.sent[name]} messages ({by_reason})")
        print(
            "  the first 9 messages of a player are the cold start; after it, every message refills his LLM budget"
            " by B/W = 3/100 token and a request takes one (at most 3% of messages in the long run)"
        )

    def long_life(self) -> None:
        """dana's 200 messages through bayes_process_message; the stand-in answers when the engine asks."""
        from bayes_dev import lifetime  # the benchmark's corpus, population and stand-in

        user_id, name, count = LONG_LIFE
        corpus = lifetime.corpus_messages()
        standin = lifetime.StandIn()
        player = lifetime.make_player(LONG_LIFE_SEED, 0, count, len(corpus))
        now = self.db.execute("select extract(epoch from now())::float8").fetchone()[0]
        max_age_h = self.db.execute(
            "select (value #>> '{}')::float8 from bayes.params where name = 'max_message_age_h'"
        )
        day0 = lifetime.day0_for([player], now, max_age_h.fetchone()[0])
        print(
            f"\n{name} lives longer: {count} messages, each the first line of a conversation of the"
            f" chatterbot-corpus package\n  (real text people wrote to a chat character), reply gaps log-normal"
            " around 90 s; where the engine asks for the LLM,\n  vaderSentiment's score stands in for it"
            " (a stand-in, there is no LLM here)"
        )
        asked, v1_asked, reasons = [], [], {}
        for k, line in enumerate(player.lines):
            text = corpus[line]
            sent_at = dt.datetime.fromtimestamp(player.sent_at(day0, k), dt.UTC)
            args = {
                "p_user_id": str(user_id),
                "p_message": text,
                "p_sent_at": sent_at.isoformat(),
                "p_message_id": f"{name}-{k}",
                "p_reply_gap_s": player.gaps[k],
            }
            r = self.rpc("bayes_process_message", args)
            assert r["mode"] == "bayes", r["mode"]
            fallback = r["fallback"]
            counted = reasons.setdefault(fallback["reason"], [0, 0])
            counted[0] += 1
            counted[1] += fallback["needed"]
            asked.append(fallback["needed"])
            v1_asked.append(lifetime.v1_reason(r) != "bayesian_sufficient")
            if fallback["needed"]:
                self.rpc(
                    "bayes_apply_llm_scores",
                    {"p_user_id": str(user_id), "p_deltas": standin.deltas(text), "p_message_id": f"{name}-{k}"},
                )
        print(f"  {'messages':>10} {'LLM asked':>10} {'rate':>7} {'v1 rules, same results':>23}")
        for lo, hi in LONG_LIFE_BUCKETS:
            n = hi - lo
            print(
                f"  {f'{lo + 1}-{hi}':>10} {sum(asked[lo:hi]):>10} {sum(asked[lo:hi]) / n:>7.0%}"
                f" {sum(v1_asked[lo:hi]) / n:>23.0%}"
            )
        print(
            f"  {'all':>10} {sum(asked):>10} {sum(asked) / count:>7.0%} {sum(v1_asked) / count:>23.0%}"
            f"   (v1 would have asked on {sum(v1_asked)} of {count})"
        )
        fired = ", ".join(f"{reason} {n} (asked {k})" for reason, (n, k) in sorted(reasons.items()))
        print(f"  rules that fired: {fired}; budget left {fallback['budget_left']:.2f}")

    def readiness_cell(self, user_id: uuid.UUID, name: str, t: dt.datetime) -> str:
        """What bayes_boss_readiness answers at the simulated instant t (it decays on read up to now())."""
        b = self.db.execute(READINESS_AT_SQL, {"user_id": user_id, "t": t}).fetchone()[0]
        lo, hi = ci95(b["composite"], b["composite_sd"])
        self.point(name, t, b["composite"], lo, hi, "decay")
        return f"{fmt_ci(b['composite'], lo, hi)}  P(ready) {b['p_ready']:.2f}{' ready' if b['ready'] else '':<6}"

    def time_passes(self, t0: dt.datetime) -> None:
        print("\ntime passes: nobody writes; a bulk run up to T0 + h as pg_cron runs it, T0 = the last messages")
        graces = ", ".join(f"ch{c} {self.grace_h[c]:g} h" for _, _, c in PLAYERS)
        print(f"  decay starts after the chapter's grace ({graces}); composite [95%] and P(ready) per player")
        cells = [f"{name} (ch{c}, threshold {self.threshold[c]:g})" for _, name, c in PLAYERS]
        print(f"  {'after':>7}  " + "  ".join(f"{cell:<41}" for cell in cells).rstrip())
        for h in (0, *DECAY_STEPS_H):
            p_now = t0 + dt.timedelta(hours=h)
            if h:
                self.run_decay(p_now)
            row = "  ".join(f"{self.readiness_cell(user_id, name, p_now):<41}" for user_id, name, _ in PLAYERS)
            print(f"  {'+' + str(h) + ' h':>7}  {row.rstrip()}")
        print("  fallback check (bayes_fallback_check) now:")
        for user_id, name, _ in PLAYERS:
            f = self.rpc("bayes_fallback_check", {"p_user_id": str(user_id)})
            print(
                f"    {name:<5} {f['reason']:<20} needed {str(f['needed']).lower():<5}  "
                f"P(ready) {f['p_ready']:.2f}  budget left {f['budget_left']:.2f} of {f['budget_tokens']:g}"
            )

    def run_decay(self, p_now: dt.datetime) -> None:
        """A bulk run up to p_now on the session holding its lock; it must have run, not overlapped."""
        command = self.db.execute("select bayes.run_decay_command(%s)", (p_now,)).fetchone()[0]
        self.db.execute(command)
        status = self.db.execute(
            "select status from bayes.decay_run where decay_to = %s order by run_id desc limit 1", (p_now,)
        ).fetchone()
        if status is None or status[0] != "done":
            raise RuntimeError(f"the bulk run up to {p_now.isoformat()} did not run: {status}")

    def comes_back(self, t0: dt.datetime) -> None:
        user_id, name, chapter = next(p for p in PLAYERS if p[1] == RETURNING)
        messages, times = return_timeline(t0)
        print(f"\n{name} comes back, {messages[0][0] / 3600:.1f} h after her last message (chapter {chapter})")
        self.header()
        n0 = len(CONVERSATIONS[name])
        for i, ((gap, topic, text), t) in enumerate(zip(messages, times)):
            self.send(user_id, name, f"{name}-{n0 + i}", t, gap, topic, text)


class HealthSnapshots:
    """The demo's snapshots of the engine's health, at its phases, as the pg_cron job takes one a minute."""

    def __init__(self, db):
        self.db = db
        self.taken: list[tuple[str, dt.datetime, int | None]] = []  # (phase, when, changes of status or None)

    def take(self, phase: str) -> None:
        """select bayes.record_health(): one snapshot (its own transaction, taken_at its now()); None when
        the pg_cron job was taking one at that instant (its advisory lock)."""
        changes, taken_at = self.db.execute("select bayes.record_health(), now()").fetchone()
        self.taken.append((phase, taken_at, changes))

    def show(self, database: str) -> None:
        print("\nhealth of the engine during the demo (docs/operations.md, Health, alerts and metrics)")
        print("  snapshots: psql> select bayes.record_health();   (the pg_cron job bayes-record-health: every minute)")
        for phase, taken_at, changes in self.taken:
            said = "skipped: the pg_cron job held the lock" if changes is None else f"{changes} changes of status"
            print(f"    {taken_at:%H:%M:%S} UTC  {phase:<32} {said}")
        print("  psql> select * from bayes.health();")
        for line in health_picture.health_table(self.db):
            print(f"  {line}")
        alerts = health_picture.read_alerts(self.db)
        units = dict(self.db.execute("select signal, unit from bayes.health_threshold").fetchall())
        print(f"  psql> select * from bayes.alerts();   (what fires at the last snapshot: {len(alerts)})")
        for alert in alerts:
            unit = units.get(alert.signal, "")
            print(f"    {health_picture.alert_line(alert, unit)}")
        para(
            "The demo's traffic is no game's: every player is new (the cold start asks the LLM on each of the first"
            " 9 messages), and the client shares two cores with the database. What fires says so, not that the"
            " engine is broken."
        )
        history = health_picture.read_history(self.db, database, self.taken[0][1])
        health_picture.draw(history, OUT_HEALTH_PNG)
        print(f"health plot: {OUT_HEALTH_PNG}   (scripts/health draws the same from any database's snapshots)")


def para(text: str) -> None:
    """A paragraph of the playbook round, wrapped and indented."""
    print(textwrap.fill(text, width=116, initial_indent="   ", subsequent_indent="   "))


def figure(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


class PlaybookRound:
    """One short round of docs/migration-playbook.md: shadow -> report -> evaluate -> calibrate -> move the
    cohort, with the SQL a DBA would run at psql (self.db, the database owner) and the RPCs through the API."""

    def __init__(self, demo: Demo):
        from bayes_dev import lifetime  # the benchmark's corpus and stand-in, as for dana

        self.demo, self.db, self.lifetime = demo, demo.db, lifetime
        self.corpus = lifetime.corpus_messages()
        self.standin = lifetime.StandIn()
        # one message more than the round sends: the first player's next message after the move
        self.scripts = [
            lifetime.make_player(SHADOW_SEED, index, SHADOW_MESSAGES + 1, len(self.corpus))
            for _, _, index in SHADOW_PLAYERS
        ]
        now = db_now(self.db)
        max_age_h = self.db.execute(
            "select (value #>> '{}')::float8 from bayes.params where name = 'max_message_age_h'"
        ).fetchone()[0]
        self.day0 = lifetime.day0_for(self.scripts, now, max_age_h)
        self.saved = False  # feature_rows_saved made (step 4)
        sent = [self.sent_at(script, k) for script in self.scripts for k in range(SHADOW_MESSAGES)]
        # the window of every figure: the round's send times
        self.window = (min(sent), max(sent) + dt.timedelta(seconds=1))

    def sent_at(self, script, k: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(script.sent_at(self.day0, k), dt.UTC)

    def backend_turn(self, user_id: uuid.UUID, name: str, script, k: int) -> tuple[dict, bool]:
        """One message as the game's backend handles it in either mode: bayes_process_message, then the LLM
        (here the stand-in) when the result's mode is shadow (every message) or fallback.needed (mode bayes),
        its answer reported with the message's id: deltas and mood. Returns (result, LLM asked)."""
        text = self.corpus[script.lines[k]]
        message_id = f"{name}-{k}"
        args = {
            "p_user_id": str(user_id),
            "p_message": text,
            "p_sent_at": self.sent_at(script, k).isoformat(),
            "p_message_id": message_id,
            "p_reply_gap_s": script.gaps[k],
        }
        r = self.demo.rpc("bayes_process_message", args)
        ask = r["mode"] == "shadow" or r["fallback"]["needed"]
        if ask:
            compound = self.standin.compound(text)
            self.demo.rpc(
                "bayes_apply_llm_scores",
                {
                    "p_user_id": str(user_id),
                    "p_deltas": self.lifetime.standin_deltas(compound),
                    "p_message_id": message_id,
                    "p_mood": self.lifetime.standin_mood(compound),
                },
            )
        return r, ask

    def set_rollout(self, percent: float) -> None:
        self.db.execute("update bayes.rollout set bayes_percent = %s", (percent,))

    def run(self) -> None:
        print("\nthe migration playbook, one short round (docs/migration-playbook.md)")
        self.shadow()
        self.report()
        self.evaluate()
        self.calibrate()
        self.move()

    def shadow(self) -> None:
        players, messages = len(SHADOW_PLAYERS), SHADOW_MESSAGES
        print(
            "\n1. shadow. psql> update bayes.rollout set bayes_percent = 0;"
            "   (lowering it moves players back to shadow)"
        )
        self.set_rollout(0)
        para(
            f"{players} new players ({SHADOW_PLAYERS[0][1]}-{SHADOW_PLAYERS[-1][1]}) send {messages} real chat lines"
            " each, from the corpus above. In mode shadow the backend asks the LLM about every message and reports"
            " its answer with the message's id: here vaderSentiment stands in for the LLM (its deltas, and a mood"
            " from its compound score: < -0.05 defensive, > 0.05 playful, else content)."
        )
        modes: dict[str, int] = {}
        asked = needed = 0
        for (user_id, name, _), script in zip(SHADOW_PLAYERS, self.scripts):
            for k in range(messages):
                r, ask = self.backend_turn(user_id, name, script, k)
                modes[r["mode"]] = modes.get(r["mode"], 0) + 1
                asked += ask
                needed += r["fallback"]["needed"]
        said = ", ".join(f"mode {mode} on {count}" for mode, count in sorted(modes.items()))
        print(f"   results: {said} of {players * messages} messages; LLM answers reported: {asked}")
        print(f"   (fallback.needed said yes on {needed} of them: in mode shadow the backend asks regardless)")

    def report(self) -> None:
        print(
            "\n2. report. psql> select * from bayes.shadow_report(p_from, p_to);"
            "   (p_from, p_to: the round's send times)"
        )
        rows = self.db.execute("select * from bayes.shadow_report(%s, %s)", self.window).fetchall()
        ids = [str(user_id) for user_id, _, _ in SHADOW_PLAYERS]
        players, ours = self.db.execute(
            "select count(distinct user_id), count(distinct user_id) filter (where user_id = any(%s::uuid[]))"
            " from bayes.shadow_pairs(%s, %s) where sample = 'shadow'",
            (ids, *self.window),
        ).fetchone()
        others = players - ours
        print(
            f"   the window holds the shadow messages of {players} players: "
            + (f"the round's {ours}" if not others else f"the round's {ours} and {others} others, counted too")
        )
        print(
            f"   {'sample':<7} {'item':<11} {'pairs':>6} {'correlation':>12} {'sign agree':>11}"
            f" {'mean |diff|':>12} {'missed':>7} {'agreement':>10}"
        )
        for sample, item, pairs, corr, sign, mad, missed, agreement in rows:
            print(
                f"   {sample:<7} {item:<11} {pairs:>6} {figure(corr):>12} {figure(sign):>11}"
                f" {figure(mad, '.3f'):>12} {figure(missed):>7} {figure(agreement):>10}"
            )
        moods = self.db.execute(
            "select engine_mood, count(*) from bayes.shadow_pairs(%s, %s) group by 1 order by 2 desc, 1 limit 2",
            self.window,
        ).fetchall()
        para(
            "metrics: the engine's evidence of each message against the LLM's delta/10; missed: the engine saw"
            " nothing and the LLM moved the metric by 3 or more. mood: the engine's HMM said "
            + " and ".join(f"{mood} on {count}" for mood, count in moods)
            + " of these messages, the stand-in's moods are content, playful and defensive: a stand-in's mood says"
            " nothing of a real LLM's. boss_ready: see 3."
        )

    def evaluate(self) -> None:
        budget = dict(
            self.db.execute(
                "select name, (value #>> '{}')::float8 from bayes.params"
                " where name in ('llm_budget_tokens', 'llm_budget_window')"
            ).fetchall()
        )
        print(
            "\n3. evaluate. psql> select bayes.evaluate_policy('{}', null, p_from, p_to);"
            f"   (the current budget: B = {budget['llm_budget_tokens']:g},"
            f" W = {budget['llm_budget_window']:g})"
        )
        (report,) = self.db.execute("select bayes.evaluate_policy('{}', null, %s, %s)", self.window).fetchone()
        para(
            "The logs replayed as if the players had been in mode bayes: a logged LLM answer is applied only where"
            " the replayed fallback.needed says yes."
        )
        print(f"   {'messages':>10} {'LLM calls':>10} {'rate':>6}")
        for bucket in report["buckets"]:
            if bucket["count"]:
                lo, hi = bucket["messages"].split("-")
                span = f"{lo}-{min(int(hi), SHADOW_MESSAGES) if hi else SHADOW_MESSAGES}"
                print(f"   {span:>10} {bucket['llm_calls']:>10} {bucket['rate']:>6.0%}")
        print(f"   {'all':>10} {report['llm_calls']:>10} {report['lifetime_rate']:>6.0%}")
        fid = report["fidelity"]
        para(
            "Against the LLM's trajectory (every message's metric evidence its delta/10), over the"
            f" {fid['compared']} messages after message {fid['after_message']}: boss-ready agreement"
            f" {fid['boss_ready_agreement']:.3f} (the LLM's trajectory was ready on"
            f" {fid['reference_ready_share']:.0%} of them), mean |composite difference|"
            f" {fid['composite_mad']:.2f} points."
        )

    def calibrate(self) -> None:
        print(
            "\n4. calibrate. psql> create temp table feature_rows_saved as"
            "\n                    select name, value from bayes.params where name like 'feature\\_%';"
            "\n              psql> select bayes.calibrate_evidence(p_from, p_to, p_apply => true);"
        )
        self.db.execute(
            "create temp table feature_rows_saved as select name, value from bayes.params where name like 'feature\\_%'"
        )
        self.saved = True
        saved = dict(self.db.execute("select name, value from feature_rows_saved").fetchall())
        (cal,) = self.db.execute(
            "select bayes.calibrate_evidence(p_from => %s, p_to => %s, p_apply => true)", self.window
        ).fetchone()
        before, after = cal["before"], cal["after"]
        para(
            f"Fitted on {cal['training']['pairs']} messages of {cal['training']['players']} players (the LLM's"
            " delta/10 against the features that fired), evaluated on the"
            f" {cal['held_out']['players']} held-out players at the same budget:"
        )
        print(f"   {'':<28} {'current weights':>16} {'proposal':>9}")
        for label, key, spec in (
            ("boss-ready agreement", "boss_ready_agreement", ".3f"),
            ("mean |composite difference|", "composite_mad", ".2f"),
        ):
            print(f"   {label:<28} {before['fidelity'][key]:>16{spec}} {after['fidelity'][key]:>9{spec}}")
        print(f"   {'LLM call rate':<28} {before['lifetime_rate']:>16.1%} {after['lifetime_rate']:>9.1%}")
        changes = []
        for row, proposed in cal["proposal"].items():
            for metric, value in proposed.items():
                old = float(saved[row].get(metric, 0.0))
                if abs(value - old) > 1e-9:
                    changes.append((abs(value - old), row, metric, old, value))
        changes.sort(key=lambda c: (-c[0], c[1], c[2]))
        moved = [f"{row}.{metric} {old:.3g} -> {new:.3g}" for _, row, metric, old, new in changes[:3]]
        print(f"   weights that moved most: {', '.join(moved[:2])},\n   {', '.join(moved[2:])}")
        if cal["applied"]:
            print(
                f"   verdict {cal['verdict']}: applied (calibrate_evidence writes the proposal only when it is better)"
            )
        else:
            print(f"   verdict {cal['verdict']}: not applied (calibrate_evidence writes only a better proposal)")
        para(
            "Fitted to the stand-in's judgement, not a real LLM's: this shows the mechanics, not what a game would get."
        )

    def move(self) -> None:
        user_id, name, _ = SHADOW_PLAYERS[0]
        print(
            "\n5. move the cohort. psql> update bayes.rollout set bayes_percent = 100;"
            "   (raising it only moves shadow -> bayes)"
        )
        self.set_rollout(100)
        r, ask = self.backend_turn(user_id, name, self.scripts[0], SHADOW_MESSAGES)
        fallback = r["fallback"]
        print(
            f"   {name}'s next message (#{r['n']}): mode {r['mode']}; fallback {fallback['reason']},"
            f" needed {str(fallback['needed']).lower()} -> the backend {'asks' if ask else 'does not ask'} the LLM"
        )

    def roll_back(self, rollout: float) -> None:
        """The playbook's rollback of the weights, from the saved rows, and the rollout as the demo found it."""
        restored = self.saved
        if self.saved:
            self.db.execute(
                "update bayes.params as p set value = s.value from feature_rows_saved as s where p.name = s.name"
            )
            self.db.execute("drop table feature_rows_saved")
            self.saved = False
        self.set_rollout(rollout)
        print("\n6. roll back, so that the demo's next run starts from the same parameters:")
        if restored:
            print(
                "   psql> update bayes.params as p set value = s.value from feature_rows_saved as s"
                " where p.name = s.name;"
            )
        print(f"   psql> update bayes.rollout set bayes_percent = {rollout:g};   (as the demo found it)")


def db_now(db) -> float:
    return db.execute("select extract(epoch from now())::float8").fetchone()[0]


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


def sessions_and_absence(points: list[tuple], t0: dt.datetime) -> list[tuple[str, list[tuple]]]:
    """A player's points as time-ordered panels: each conversation session (messages less than
    SESSION_BREAK apart), and the absence from T0 (her last point then, and the decay steps)."""
    panels: list[tuple[str, list[tuple]]] = []
    for p in points:
        if p[4] == "decay":
            continue
        if panels and p[0] - panels[-1][1][-1][0] < SESSION_BREAK:
            panels[-1][1].append(p)
        else:
            panels.append(("session", [p]))
    at_t0 = [p for p in points if p[4] != "decay" and p[0] <= t0][-1:]
    absence = ("absence", at_t0 + [p for p in points if p[4] == "decay"])
    before = [panel for panel in panels if panel[1][0][0] <= t0]
    return before + [absence] + [panel for panel in panels if panel[1][0][0] > t0]


def plot(demo: Demo, t0: dt.datetime, path: Path) -> None:
    """Per player, the composite over time on a broken time axis: each conversation session (minutes)
    and the absence (hours), with points per message, per LLM answer and per decay step, the 95% band
    and the chapter's boss threshold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    kinds = (
        ("message", "o", "tab:blue", "after a message (bayes_process_message)"),
        ("llm", "^", "tab:purple", "after LLM scores (bayes_apply_llm_scores)"),
        ("decay", "s", "tab:orange", "while away (bayes_boss_readiness, decayed on read)"),
    )
    fig = plt.figure(figsize=(13, 3.4 * len(PLAYERS) + 0.8), layout="constrained")
    fig.suptitle("Composite score (0-100) of the demo players: conversations, absence decay and a return")
    rows = fig.subfigures(len(PLAYERS), 1)
    for row, (_, name, chapter) in zip(rows, PLAYERS):
        panels = sessions_and_absence(demo.series[name], t0)
        widths = [3 if kind == "absence" else 1 for kind, _ in panels]
        axes = row.subplots(1, len(panels), sharey=True, width_ratios=widths, squeeze=False)[0]
        threshold, grace = demo.threshold[chapter], demo.grace_h[chapter]
        row.suptitle(
            f"{name}, chapter {chapter}   (boss threshold {threshold:g}, decay grace {grace:g} h)",
            x=0.01,
            ha="left",
            fontsize=10,
            fontweight="bold",
        )
        for j, (ax, (kind, pts)) in enumerate(zip(axes, panels)):
            if kind == "absence":
                x = [(p[0] - t0).total_seconds() / 3600 for p in pts]
                ax.axvspan(0, grace, color="0.88", linewidth=0)
                ax.text(grace / 2, 3, "grace", ha="center", fontsize=7, color="0.4")
                ax.set_xticks(sorted({0, grace, *DECAY_STEPS_H}))
                ax.set_xlabel("hours after the last message (T0): absence")
            else:
                x = [p[0] for p in pts]
                ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=2, maxticks=4))
                ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=dt.UTC))
                ax.set_xlabel(f"UTC time, {pts[0][0]:%a %d %b}", fontsize=8)
                ax.margins(x=0.08)
            ax.fill_between(x, [p[2] for p in pts], [p[3] for p in pts], color="tab:blue", alpha=0.18, linewidth=0)
            ax.plot(x, [p[1] for p in pts], color="tab:blue", linewidth=1)
            for k, marker, color, _ in kinds:
                sel = [(xi, p[1]) for xi, p in zip(x, pts) if p[4] == k and not (kind == "absence" and xi == 0)]
                if sel:
                    ax.scatter(*zip(*sel), marker=marker, s=18, color=color, zorder=3)
            ax.axhline(threshold, color="tab:red", linestyle="--", linewidth=1.2)
            ax.set_ylim(0, 100)
            ax.grid(alpha=0.3)
            ax.tick_params(axis="x", labelsize=8)
            if j == 0:
                ax.set_ylabel("composite")
            else:  # a broken time axis: no spine between panels, a mark where time is cut
                ax.spines["left"].set_visible(False)
                ax.tick_params(axis="y", left=False)
                axes[j - 1].spines["right"].set_visible(False)
                for a, xs in ((axes[j - 1], 1), (ax, 0)):
                    a.plot(
                        [xs, xs],
                        [0, 1],
                        transform=a.transAxes,
                        color="0.3",
                        linestyle=(0, (2, 2)),
                        linewidth=0.8,
                        clip_on=False,
                    )
    handles = [
        Patch(color="tab:blue", alpha=0.18, label="95% interval"),
        Line2D([], [], color="tab:red", linestyle="--", label="boss threshold of the chapter"),
        Patch(color="0.88", label="grace: no decay yet"),
    ]
    handles += [Line2D([], [], marker=m, color=c, linestyle="", label=label) for _, m, c, label in kinds]
    fig.legend(handles=handles, loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    env = stack_env()
    with psycopg.connect(env["DB_URL"], autocommit=True) as db:
        # Keep pg_cron's bulk decay out of the demo's timeline (see the docstring).
        db.execute("select pg_advisory_lock(bayes.decay_lock_key())")
        reset(db)
        t0 = anchor(db.execute("select now()").fetchone()[0])
        demo = Demo(env, db)
        demo.health.take("before the demo's traffic")
        print(f"API {env['API_URL']}/rest/v1/  (supabase-py, service_role key)")
        print(f"T0 = {t0:%Y-%m-%d %H:%M} UTC: every conversation ends then; the absence and the return follow")
        warn_changed_weights(db)
        (rollout,) = db.execute("select bayes_percent::float8 from bayes.rollout").fetchone()
        try:
            db.execute("update bayes.rollout set bayes_percent = 100")
            print(
                f"rollout: update bayes.rollout set bayes_percent = 100 (it was {rollout:g}): every player below is in"
                " mode bayes, so the backend asks\n  the LLM only when fallback.needed (a new installation starts at 0:"
                " everyone in shadow; the playbook round at the end starts there)"
            )
            refused = demo_players(demo, env, t0)
            playbook = PlaybookRound(demo)
            try:
                playbook.run()
                demo.health.take("after the playbook round")
            finally:
                playbook.roll_back(rollout)
        finally:
            db.execute("update bayes.rollout set bayes_percent = %s", (rollout,))
            db.execute("select pg_advisory_unlock(bayes.decay_lock_key())")

        plot(demo, t0, OUT_PNG)
        print(f"\nplot: {OUT_PNG}")
        demo.health.show(health_picture.database_name(env["DB_URL"]))
    return 0 if refused else 1


def warn_changed_weights(db) -> None:
    """Say so when the feature_* rows are not the defaults (a run stopped between the calibration and the
    rollback, or a designer's change): the numbers printed then differ from a fresh stack's."""
    from bayes_engine.params import DEFAULT_SNAPSHOT, EVIDENCE_KEYS

    rows = dict(db.execute("select name, value from bayes.params where name like 'feature\\_%'").fetchall())
    changed = sorted(k for k in EVIDENCE_KEYS if rows.get(k) != DEFAULT_SNAPSHOT["global"][k])
    if changed:
        print(f"note: bayes.params rows {', '.join(changed)} differ from the defaults; the numbers below differ too")


def demo_players(demo: Demo, env: dict[str, str], t0: dt.datetime) -> bool:
    """Steps 2-5 of the module docstring; False if a refusal did not happen."""
    for user_id, name, chapter in PLAYERS:
        demo.converse(user_id, name, chapter, t0)
    demo.time_passes(t0)
    demo.comes_back(t0)
    demo.health.take("after ava, ben and cleo")
    demo.llm_summary()
    demo.long_life()
    demo.health.take("after dana's 200 messages")
    backend = demo.backend

    print("\nstates now (bayes_get_state):")
    for user_id, name, _ in PLAYERS:
        show(name, backend.rpc("bayes_get_state", {"p_user_id": str(user_id)}).execute().data)

    ava, ben = PLAYERS[0][0], PLAYERS[1][0]
    print("\nava's own JWT (role authenticated):")
    as_ava = create_client(env["API_URL"], env["ANON_KEY"])
    as_ava.postgrest.auth(player_jwt(env["JWT_SECRET"], ava, ttl_s=600))
    mine = as_ava.rpc("bayes_get_state", {"p_user_id": str(ava)}).execute().data
    print(f"  her own state: composite {mine['composite']:.1f}")
    ready = as_ava.rpc("bayes_boss_readiness", {"p_user_id": str(ava)}).execute().data
    print(f"  her own boss readiness: P(ready) {ready['p_ready']:.2f}")
    refused = refuses("  ben's state", as_ava, ben)
    refused &= refuses("  ben's boss readiness", as_ava, ben, "bayes_boss_readiness")
    refused &= refuses("  writing her own state", as_ava, ava, "bayes_process_message", {"p_message": "hi"})
    anon = create_client(env["API_URL"], env["ANON_KEY"])
    refused &= refuses("anon key, ava's state", anon, ava)
    return refused


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
