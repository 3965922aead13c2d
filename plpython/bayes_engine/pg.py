"""The PL/Python entry points: with pg_shadow (the shadow functions' reads, kept
off the per-message path), the one place that talks to PostgreSQL.

Each SQL function of the engine is a shim that loads the package
(bayes.py_load, on a backend's first call) and calls one function here,
passing ``plpy`` in; scripts/build writes the shims. Nothing in the
package imports ``plpy``, so plain pytest imports all of it.

jsonb arrives as JSON text (no transform is used) and is returned as JSON
text, which PostgreSQL parses into jsonb; timestamps arrive as epoch seconds
(the SQL layer converts them).  A :class:`BayesError` becomes a PostgreSQL
error with its own SQLSTATE, which PostgREST maps to a 4xx.

The writers share one step (:func:`step`): the SQL helper around it
(bayes.apply_input) locks the row, checks idempotency and writes the row and
the event, so that one transaction holds one row lock.

Per backend this module caches its prepared plans and the parsed parameters
of the last revision of bayes.params_revision it saw. When that revision
moves (a parameter or a module of bayes.py_module changed), it also compares
its own build with bayes.py_build(); on a new build, :func:`entry_point`
loads the new code and calls the new copy of the function.
"""

import importlib
import json

from . import codec, cohort, decay_due, eventlog, events, model, vocab, wire
from .errors import INVALID_PARAMETER, BayesError
from .params import GLOBAL_KEYS, Params

_REVISION_SQL = "select revision from bayes.params_revision"
_SNAPSHOT_SQL = "select bayes.params_snapshot()::text as snapshot"
_BUILD_SQL = "select bayes.py_build() as build"
_LOAD_SQL = "select bayes.py_load()"
# The event log is read here and nowhere else in this module: a player's
# checkpoint (what retention folded and deleted, bayes.player_checkpoint) and
# the events after it, in log order (pg_shadow reads its own columns).
_CHECKPOINT_SQL = (
    "select state::text as state, last_message_epoch, decayed_epoch, events_folded, last_event_id"
    " from bayes.player_checkpoint where user_id = $1"
)
_LOG_SQL = (
    "select event_id, kind::text as kind, input, extract(epoch from occurred_at)::float8 as occurred_at"
    " from bayes.player_event where user_id = $1 and event_id > $2 order by event_id"
)
_LOG_CHUNK = 500
_DECAYED_AT_SQL = (
    "select extract(epoch from decayed_at)::float8 as decayed_at from public.user_bayesian_state where user_id = $1"
)

# Per backend: prepared plans and the parameters of the last revision seen.
_plans = {}
_params_cache = {}


class CodeChanged(Exception):
    """bayes.py_module holds another build than the one this copy of the module was loaded from."""


def entry_point(fn):
    """Turn a BayesError raised by ``fn`` into plpy.error with its SQLSTATE; reload changed code."""
    name = fn.__name__

    def wrapper(plpy, *args):
        try:
            return fn(plpy, *args)
        except BayesError as err:
            plpy.error(err.message, hint=err.hint, sqlstate=err.sqlstate)
        except CodeChanged:
            pass
        # Outside the except clause, so that an error of the new code does not
        # carry this one as its context.
        plpy.execute(_plan(plpy, _LOAD_SQL))
        return getattr(importlib.import_module(__name__), name)(plpy, *args)

    wrapper.__name__ = name
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _plan(plpy, sql, types=None):
    plan = _plans.get(sql)
    if plan is None:
        plan = _plans[sql] = plpy.prepare(sql, types or [])
    return plan


def load_params(plpy, revision=None):
    """The current parameters, parsed again only when bayes.params_revision moved.

    A statement trigger bumps the revision on any change to bayes.chapter_params,
    bayes.params or bayes.py_module, so a changed row changes the next call.
    When it moved, the code is checked first: :class:`CodeChanged` when
    bayes.py_module holds another build than this copy (loaded by
    bayes.py_load, which sets ``__build__``; plain imports have none).
    """
    if revision is None:
        revision = plpy.execute(_plan(plpy, _REVISION_SQL))[0]["revision"]
    params = _params_cache.get(revision)
    if params is None:
        _check_build(plpy)
        text = plpy.execute(_plan(plpy, _SNAPSHOT_SQL))[0]["snapshot"]
        params = Params.from_snapshot(json.loads(text))
        _params_cache.clear()
        _params_cache[revision] = params
    return params


def _check_build(plpy):
    """Raise :class:`CodeChanged` when bayes.py_module holds another build than this copy of the code."""
    build = globals().get("__build__")
    if build is not None and plpy.execute(_plan(plpy, _BUILD_SQL))[0]["build"] != build:
        raise CodeChanged


@entry_point
def check_params(plpy):
    """bayes.check_params, the statement trigger of the parameter tables: the
    parameters after the change, validated (22023 naming the key), uncached.
    A row of bayes.params that the engine does not read (a misspelt name, or
    one that newer code reads: a migration adds those before the code) is
    a WARNING, not an error. The check is the deployed code's: a migration
    that installs new code and then changes the parameters (in the same
    session) is checked by the new code."""
    _check_build(plpy)
    snapshot = json.loads(plpy.execute(_plan(plpy, _SNAPSHOT_SQL))[0]["snapshot"])
    Params.from_snapshot(snapshot)
    unread = sorted(set(snapshot.get("global") or ()) - set(GLOBAL_KEYS))
    if unread:
        plpy.warning(
            f"bayes.params has rows that this code does not read: {', '.join(unread)}",
            hint="a misspelt name changes nothing; the names this code reads are bayes_engine.params.GLOBAL_KEYS",
        )


# json.dumps(value, separators=(",", ":"), allow_nan=False), without building an encoder per call.
_dumps = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


@entry_point
def default_state(plpy, chapter):
    params = load_params(plpy)
    params.chapter(chapter)  # 22023 for a chapter outside 1..5
    return codec.encode(codec.default_state(chapter, params))


@entry_point
def decode_state(plpy, state_text):
    """The stored state as the codec reads it (an older schema upgraded), encoded again."""
    return codec.encode(codec.decode(state_text, load_params(plpy)))


@entry_point
def describe_state(plpy, state_text):
    from . import describe  # imported on first use: not on the per-message path

    params = load_params(plpy)
    state = codec.decode(state_text, params)
    return _dumps(describe.describe_state(state, params))


@entry_point
def step(
    plpy,
    kind,
    user_id,
    message_id,
    input_text,
    state_text,
    version,
    last_message_at,
    decayed_at,
    revision,
    bayes_percent,
):
    """Any writer's input applied to a locked row's state (events.apply).

    Returns (new state, result, event input, due time): the state and the
    result as JSON texts, the input packed for the event log
    (bayes_engine.eventlog), and the new state's decay due time (epoch
    seconds, None for never: decay_due.due_at, with the row's times after
    the write); the new state is None when nothing changed (a chapter that is
    already current). The result says the player's mode under
    bayes.rollout's `bayes_percent` (issue 14).
    """
    params = load_params(plpy, revision)
    state = codec.decode(state_text, params)
    times = model.RowTimes(last_message_at, decayed_at)
    data = json.loads(input_text)
    result, event_input = events.apply(state, params, user_id, kind, data, times)
    changed = result.get("changed", True)
    result["user_id"] = user_id
    if kind in ("message", "llm_scores"):
        result["message_id"] = message_id
        result["duplicate"] = False
    result["version"] = version + 1 if changed else version
    result["mode"] = cohort.player_mode(user_id, bayes_percent)
    result_text = wire.message_result(result) if kind == "message" else _dumps(result)
    if not changed:
        return None, result_text, eventlog.pack(kind, event_input), None
    if kind == "message":  # bayes.save_state advances both times to the message's
        sent_at = data["sent_at"]
        last_message_at = sent_at if last_message_at is None else max(last_message_at, sent_at)
        decayed_at = sent_at if decayed_at is None else max(decayed_at, sent_at)
    due = decay_due.due_at(params, state, last_message_at, decayed_at)
    return codec.encode(state), result_text, eventlog.pack(kind, event_input), due


def read_checkpoint(plpy, user_id):
    """(events.Checkpoint or None, the id of the last event it folded: 0 when none) of a player."""
    rows = plpy.execute(_plan(plpy, _CHECKPOINT_SQL, ["uuid"]), [user_id])
    if not rows:
        return None, 0
    row = rows[0]
    start = events.Checkpoint(row["state"], row["last_message_epoch"], row["decayed_epoch"], row["events_folded"])
    return start, row["last_event_id"]


def read_log(plpy, user_id, after=0):
    """The player's events after event `after`, in log order: (event_id, kind, input, occurred_at epoch s).

    Streamed through a cursor, a chunk at a time: a caller that stops early
    (retention's fold) reads little more than it uses, and a long log never
    sits in memory whole. Closing the generator closes the cursor.
    """
    cursor = plpy.cursor(_plan(plpy, _LOG_SQL, ["uuid", "int8"]), [user_id, after])
    try:
        while True:
            rows = cursor.fetch(_LOG_CHUNK)
            if not rows:
                return
            for r in rows:
                yield r["event_id"], r["kind"], eventlog.unpack(r["kind"], r["input"]), r["occurred_at"]
    finally:
        cursor.close()


@entry_point
def replay(plpy, user_id):
    """The state rebuilt from the player's checkpoint and the events after it (current
    parameters), decayed up to the row's decayed_at."""
    params = load_params(plpy)
    start, after = read_checkpoint(plpy, user_id)
    decayed_to = plpy.execute(_plan(plpy, _DECAYED_AT_SQL, ["uuid"]), [user_id])
    state_text = events.replay(
        params,
        user_id,
        ((kind, data) for _, kind, data, _ in read_log(plpy, user_id, after)),
        decayed_to=decayed_to[0]["decayed_at"] if decayed_to else None,
        start=start,
    )
    return state_text


@entry_point
def fold_events(plpy, users, after, states, last_message_at, decayed_at, events_folded, horizon, revision):
    """bayes.fold_events, retention's step for a batch of players (events.fold each).

    Per player (one item per input in every array): the id of the last folded
    event (null: nothing folded), how many were folded, the new checkpoint
    (state text, clock, events folded in all), the occurred_at of the first
    event kept (null: none), and an error (null, or why his log cannot be
    replayed: then nothing is folded for him). A player never makes the call fail.
    """
    params = load_params(plpy, revision)
    out = {k: [] for k in ("last_event_ids", "folded", "states", "last_message_at", "decayed_at", "kept_from")}
    out["events_folded"], out["errors"] = [], []
    for i, user_id in enumerate(users):
        start = events.Checkpoint(states[i], last_message_at[i], decayed_at[i], events_folded[i])
        log = read_log(plpy, user_id, after[i])
        try:
            checkpoint, last_id, n, kept_from = events.fold(params, user_id, start, log, horizon)
            error = None
        except BayesError as err:
            checkpoint, last_id, n, kept_from, error = start, None, 0, None, err.message
        finally:
            log.close()
        out["last_event_ids"].append(last_id)
        out["folded"].append(n)
        out["states"].append(checkpoint.text)
        out["last_message_at"].append(checkpoint.last_message_at)
        out["decayed_at"].append(checkpoint.decayed_at)
        out["events_folded"].append(checkpoint.events)
        out["kept_from"].append(kept_from)
        out["errors"].append(error)
    return out


@entry_point
def expired_duplicate(plpy, user_id, message_id, state_text, version, last_message_at, decayed_at, now, bayes_percent):
    """The answer to a message id sent again after the idempotency window (bayes.expired_duplicate).

    The first result is no longer kept: the player's current summary
    (model.summary of the stored state decayed up to `now`; nothing is
    written), marked "duplicate" and "result_expired".
    """
    params = load_params(plpy)
    state = codec.decode(state_text, params)
    model.decay(state, params, last_message_at, decayed_at, now)
    result = model.summary(state, params)
    result.update(
        user_id=user_id,
        message_id=message_id,
        duplicate=True,
        result_expired=True,
        version=version,
        mode=cohort.player_mode(user_id, bayes_percent),
    )
    return _dumps(result)


@entry_point
def event_input(plpy, kind, blob):
    """An event's stored input as JSON text (bayes.event_input)."""
    return eventlog.input_text(kind, blob)


@entry_point
def sign_agreement(plpy, messages, answers):
    """bayes.sign_agreement: over pairs (a message's packed input, the LLM's packed scores of it),
    the share of (pair, metric) in which the engine's net evidence (plus - minus) and the LLM's
    delta have the same sign (0 counts as a sign, as in bayes.shadow_report); pairs with a null
    side are left out; None without pairs."""
    pairs = [(m, a) for m, a in zip(messages or (), answers or (), strict=True) if m is not None and a is not None]
    same = 0
    for message, answer in pairs:
        observation = eventlog.unpack("message", message)["observation"]
        deltas = eventlog.unpack("llm_scores", answer)["deltas"]
        for k, name in enumerate(vocab.METRIC_NAMES):
            engine = observation["plus"][k] - observation["minus"][k]
            llm = deltas.get(name, 0.0)
            same += (engine > 0) - (engine < 0) == (llm > 0) - (llm < 0)
    return same / (len(pairs) * len(vocab.METRIC_NAMES)) if pairs else None


@entry_point
def pack_event_input(plpy, kind, input_text):
    """An input in the JSON of bayes_engine.events packed as the event log stores it (bayes.pack_event_input)."""
    return eventlog.pack(kind, json.loads(input_text))


@entry_point
def decay_state(plpy, state_text, revision, last_message_at, decayed_at, now):
    """Section 5: one stored state decayed up to `now` (bayes.decay_state)."""
    return events.decayed_text(load_params(plpy, revision), state_text, last_message_at, decayed_at, now)


@entry_point
def decay_due_at(plpy, state_text, last_message_at, decayed_at):
    """When the bulk decay next rewrites a row with this state and these times (bayes.decay_due_at)."""
    params = load_params(plpy)
    return decay_due.due_at(params, codec.decode(state_text, params), last_message_at, decayed_at)


@entry_point
def decay_states(plpy, state_texts, last_message_at, decayed_at, now, revision):
    """Section 5 for a batch of stored states (the bulk decay's step): (states, sqlstates, errors, due times).

    One item per row in each: the decayed text, two nulls and its due time
    (epoch seconds, decay_due: None for never), or a null state and the
    SQLSTATE and message of what is wrong with the row (which
    bayes.run_decay skips and records). A row never raises; the parameters
    and the code may (then the whole call fails, as before).
    """
    from . import bulk  # numpy: only the bulk decay loads it, never the per-message path

    texts, errors, dues = bulk.decayed_texts(
        load_params(plpy, revision), state_texts, last_message_at, decayed_at, now, with_due=True
    )
    return (
        texts,
        [None if e is None else e[0] for e in errors],
        [None if e is None else e[1] for e in errors],
        dues,
    )


def _problem(exc):
    """The message of the codec's refusal of a state (a BayesError's own; anything else with its type)."""
    return exc.message if isinstance(exc, BayesError) else f"stored state cannot be read: {type(exc).__name__}: {exc}"


# The last state bayes.state_problem looked at in this backend, and its
# answer: a query that calls several functions of a state per row (the view
# bayes.player_summary calls five) decodes each state once.
_last_problem = ["", None]


@entry_point
def state_problem(plpy, state_text):
    """None when the codec accepts the stored state, else its error message (bayes.state_problem).

    Only codec.decode runs on the way to None: no parameters, no numpy. On a
    refusal the build is checked first (load_params raises CodeChanged, and
    the new code answers), so a backend never reports a state as wrong
    because it runs older code than is deployed.
    """
    if state_text == _last_problem[0]:
        return _last_problem[1]
    try:
        codec.decode(state_text)
        problem = None
    except Exception as exc:  # noqa: BLE001 - whatever decode raises is a refusal
        problem = _problem(exc)
        load_params(plpy)
    _last_problem[:] = state_text, problem
    return problem


def _decoded(state_text, params):
    """The decoded state, or None when the codec refuses it: the analytics skip a corrupt state.

    Exactly the states for which bayes.state_problem is not null. The
    per-player RPCs that read through these functions turn the None back into
    the codec's error (bayes.decode_state), so a player's own read never
    gets a silent null.
    """
    try:
        return codec.decode(state_text, params)
    except Exception:  # noqa: BLE001 - whatever decode raises is a refusal
        return None


@entry_point
def readiness(plpy, state_text, method, user_id, session_seed):
    """Section 6 for a stored state, as JSON text; None for a state the codec refuses."""
    from . import readiness as readiness_module  # not on the per-message path

    params = load_params(plpy)
    if method not in readiness_module.METHODS:  # an argument error even for a corrupt state
        readiness_module.readiness(None, params, method)
    state = _decoded(state_text, params)
    if state is None:
        return None
    return _dumps(readiness_module.readiness(state, params, method, user_id, session_seed))


@entry_point
def fallback_check(plpy, state_text):
    """Section 7, rules 1 and 3, for a stored state, as JSON text; None for a state the codec refuses."""
    from . import readiness as readiness_module

    params = load_params(plpy)
    state = _decoded(state_text, params)
    return None if state is None else _dumps(readiness_module.fallback_check(state, params))


@entry_point
def readiness_probability(plpy, state_text):
    """P(C >= T_c) of a stored state by the Edgeworth expansion (section 6); None for a state the codec refuses."""
    params = load_params(plpy)
    state = _decoded(state_text, params)
    return None if state is None else model.boss_readiness(state, params)["p_ready"]


@entry_point
def fallback_reason(plpy, state_text):
    """The first of section 7's rules 1 and 3 that fires for a stored state; None for a state the codec refuses."""
    params = load_params(plpy)
    state = _decoded(state_text, params)
    if state is None:
        return None
    return model.fallback_reason(state, params, model.boss_readiness(state, params)["p_ready"])


@entry_point
def metric_interval(plpy, state_text, metric, mass):
    """The equal-tailed credible interval of one metric's Beta posterior; None for a state the codec refuses."""
    from . import stats, vocab

    params = load_params(plpy)  # a new build of the code is noticed here
    if metric not in vocab.METRIC_NAMES:
        raise BayesError(
            INVALID_PARAMETER, f"unknown metric {metric!r}", "metrics are intimacy, passion, trust, secureness"
        )
    if not 0.0 < mass < 1.0:  # an argument error even for a corrupt state
        stats.beta_interval(1.0, 1.0, mass)
    state = _decoded(state_text, params)
    if state is None:
        return None
    alpha, beta = state["m"][vocab.METRIC_KEYS[vocab.METRIC_NAMES.index(metric)]]
    return list(stats.beta_interval(alpha, beta, mass))


# --------------------------------------------------------------------------
# Shadow cohorts (issue 14): counterfactual replay and calibration
# --------------------------------------------------------------------------
# Their SQL and their work live in pg_shadow, which only these two import: the
# source a backend compiles before its first message stays as it was.


@entry_point
def evaluate_policy(plpy, overrides_text, users, since, until):
    """bayes.evaluate_policy (bayes_engine.pg_shadow.evaluate_policy)."""
    from . import pg_shadow

    return pg_shadow.evaluate_policy(plpy, load_params(plpy), overrides_text, users, since, until)


@entry_point
def calibrate_evidence(plpy, since, until, holdout, ridge, overrides_text, apply):
    """bayes.calibrate_evidence (bayes_engine.pg_shadow.calibrate_evidence)."""
    from . import pg_shadow

    return pg_shadow.calibrate_evidence(plpy, load_params(plpy), since, until, holdout, ridge, overrides_text, apply)
