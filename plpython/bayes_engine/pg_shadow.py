"""The shadow functions' side of PostgreSQL (issue 14): bayes.evaluate_policy and
bayes.calibrate_evidence read the shadow players' logs here and hand them to
bayes_engine.shadow. Only the two entry points of the same names in
bayes_engine.pg import this module (with pg, the only modules that talk to
PostgreSQL), so a backend that only processes messages never compiles it.
"""

import json

from . import cohort, eventlog, shadow
from .errors import INSUFFICIENT_PRIVILEGE, INVALID_PARAMETER, NO_DATA_FOUND, NULL_VALUE, BayesError
from .pg import _SNAPSHOT_SQL, _dumps, _plan, read_checkpoint

_SHADOW_PLAYERS_SQL = (
    "select distinct e.user_id::text as user_id from bayes.player_event as e"
    " where e.kind = 'message' and e.player_mode = 'shadow'"
    " and e.occurred_at >= coalesce($1, '-infinity') and e.occurred_at < coalesce($2, 'infinity')"
    " and ($3::uuid[] is null or e.user_id = any($3))"
    " order by 1"
)
# A player's log after his checkpoint (retention folded and deleted what came before).
_LOG_SQL = (
    "select kind::text as kind, message_id, input, player_mode::text as mode,"
    " extract(epoch from occurred_at)::float8 as occurred_at"
    " from bayes.player_event where user_id = $1 and event_id > $2 order by event_id"
)
_TRAINING_PAIRS_SQL = (
    "select p.features, p.llm_evidence from bayes.shadow_pairs($1, $2) as p"
    " where bayes.user_bucket(p.user_id, 'calibration') >= $3 * 10000"
)
_MAY_APPLY_SQL = "select has_table_privilege('bayes.params', 'update') as may"
_APPLY_SQL = (
    "update bayes.params as p set value = x.value from jsonb_each($1::jsonb) as x(name, value) where p.name = x.name"
)


def _shadow_logs(plpy, user_ids):
    """(user_id, [LoggedEvent], checkpoint) for each player, read one player at a time: the events
    inside the retention horizon, and the checkpoint (events.Checkpoint or None) they start from."""
    plan = _plan(plpy, _LOG_SQL, ["uuid", "int8"])
    for user_id in user_ids:
        start, after = read_checkpoint(plpy, user_id)
        rows = plpy.execute(plan, [user_id, after])
        yield (
            user_id,
            [
                shadow.LoggedEvent(
                    r["kind"], r["message_id"], eventlog.unpack(r["kind"], r["input"]), r["mode"], r["occurred_at"]
                )
                for r in rows
            ],
            start,
        )


def _shadow_players(plpy, since, until, users):
    plan = _plan(plpy, _SHADOW_PLAYERS_SQL, ["timestamptz", "timestamptz", "uuid[]"])
    return [r["user_id"] for r in plpy.execute(plan, [since, until, users])]


def _window(plpy, since, until):
    """The window's bounds as epoch seconds (None: open)."""
    row = plpy.execute(
        _plan(
            plpy,
            "select extract(epoch from $1::timestamptz)::float8 as since,"
            " extract(epoch from $2::timestamptz)::float8 as until",
            ["timestamptz", "timestamptz"],
        ),
        [since, until],
    )[0]
    return row["since"], row["until"]


def _snapshot(plpy):
    return json.loads(plpy.execute(_plan(plpy, _SNAPSHOT_SQL))[0]["snapshot"])


def evaluate_policy(plpy, stored, overrides_text, users, since, until):
    """bayes.evaluate_policy: the candidate (the parameters with `overrides`) replayed over the
    shadow players' logs against the LLM's trajectory (bayes_engine.shadow.evaluate)."""
    candidate = shadow.candidate_params(_snapshot(plpy), json.loads(overrides_text) if overrides_text else {})
    ids = _shadow_players(plpy, since, until, users)
    lo, hi = _window(plpy, since, until)
    progress = shadow.Progress(plpy.notice, "evaluate_policy", len(ids))
    report = shadow.evaluate(stored, candidate, _shadow_logs(plpy, ids), lo, hi, progress)
    report["overrides"] = json.loads(overrides_text) if overrides_text else {}
    return _dumps(report)


def calibrate_evidence(plpy, stored, since, until, holdout, ridge, overrides_text, apply):
    """bayes.calibrate_evidence: fit on the training players' shadow pairs, evaluate on the held-out ones."""
    if ridge is None:
        raise BayesError(NULL_VALUE, "p_ridge must not be null", "0 for plain least squares")
    if holdout is None:
        raise BayesError(NULL_VALUE, "p_holdout must not be null", "the share of players held out, e.g. 0.3")
    if not 0.0 < holdout < 1.0:
        raise BayesError(INVALID_PARAMETER, f"p_holdout must be in (0, 1), got {holdout!r}")
    if apply and not plpy.execute(_plan(plpy, _MAY_APPLY_SQL))[0]["may"]:
        raise BayesError(
            INSUFFICIENT_PRIVILEGE,
            "p_apply => true writes bayes.params, which this role may not update",
            "apply as the database owner, or call without p_apply to see the proposal and its evaluation",
        )
    overrides = json.loads(overrides_text) if overrides_text else {}
    snapshot = _snapshot(plpy)
    baseline = shadow.candidate_params(snapshot, overrides)
    rows, targets = [], []
    plan = _plan(plpy, _TRAINING_PAIRS_SQL, ["timestamptz", "timestamptz", "float8"])
    for r in plpy.execute(plan, [since, until, holdout]):
        rows.append(shadow.design_row(r["features"]))
        targets.append(r["llm_evidence"])
    if not rows:
        raise BayesError(
            NO_DATA_FOUND,
            "no LLM-scored shadow or audit message of a training player in the window",
            "calibration needs shadow players whose LLM answers were reported with p_message_id",
        )
    proposal = shadow.fit_evidence(rows, targets, baseline, ridge)

    ids = _shadow_players(plpy, since, until, None)
    # bayes.user_bucket(user_id, 'calibration') < p_holdout * 10000, the rule of _TRAINING_PAIRS_SQL
    held_out = [u for u in ids if cohort.user_bucket(u, "calibration") < holdout * 10000]
    if not held_out:
        raise BayesError(
            NO_DATA_FOUND,
            "no held-out shadow player in the window to evaluate the proposal on",
            "more shadow players, or a larger p_holdout",
        )
    lo, hi = _window(plpy, since, until)
    proposed = shadow.candidate_params(snapshot, {**overrides, **proposal})
    before, after = shadow.evaluate_all(
        stored,
        [baseline, proposed],
        _shadow_logs(plpy, held_out),
        lo,
        hi,
        shadow.Progress(plpy.notice, "calibrate_evidence, current weights and proposal", len(held_out)),
    )
    verdict = shadow.verdict(before, after)
    applied = False
    if apply:
        if verdict == "better":
            plpy.execute(_plan(plpy, _APPLY_SQL, ["text"]), [_dumps(proposal)])
            applied = True
        else:
            plpy.warning(
                f"the proposal was not applied: held-out fidelity is {verdict.replace('_', ' ')}",
                hint="only a proposal that improves held-out fidelity is written",
            )
    return _dumps(
        {
            "training": {"players": len(ids) - len(held_out), "pairs": len(rows)},
            "held_out": {"players": len(held_out), "share": holdout},
            "ridge": ridge,
            "overrides": overrides,
            "proposal": proposal,
            "before": before,
            "after": after,
            "verdict": verdict,
            "applied": applied,
        }
    )
