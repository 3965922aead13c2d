"""The PL/Python entry points: the one place that talks to PostgreSQL.

Each SQL function of the engine is a shim of three lines that loads the
package (bayes.py_load) and calls one function here, passing ``plpy`` in.
Nothing in the package imports ``plpy``, so plain pytest imports all of it.

jsonb arrives as JSON text (no transform is used) and is returned as JSON
text, which PostgreSQL parses into jsonb; timestamps arrive as epoch seconds
(the SQL layer converts them).  A :class:`BayesError` becomes a PostgreSQL
error with its own SQLSTATE, which PostgREST maps to a 4xx.

The writers (``step_*``) do the math only: the SQL functions around them
lock the row, check idempotency and write the row and the event, so that
one transaction holds one row lock.
"""

import json

from . import codec, events, model, wire
from .errors import INVALID_PARAMETER, BayesError
from .params import Params

_REVISION_SQL = "select revision from bayes.params_revision"
_SNAPSHOT_SQL = "select bayes.params_snapshot()::text as snapshot"
_EVENTS_SQL = "select kind, input::text as input from bayes.player_event where user_id = $1 order by event_id"
_DECAYED_AT_SQL = (
    "select extract(epoch from decayed_at)::float8 as decayed_at from public.user_bayesian_state where user_id = $1"
)

# Per backend: prepared plans and the parameters of the last revision seen.
_plans = {}
_params_cache = {}


def entry_point(fn):
    """Turn a BayesError raised by ``fn`` into plpy.error with its SQLSTATE."""

    def wrapper(plpy, *args):
        try:
            return fn(plpy, *args)
        except BayesError as err:
            plpy.error(err.message, hint=err.hint, sqlstate=err.sqlstate)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _plan(plpy, sql, types=None):
    plan = _plans.get(sql)
    if plan is None:
        plan = _plans[sql] = plpy.prepare(sql, types or [])
    return plan


def load_params(plpy, revision=None):
    """The current parameters, parsed again only when bayes.params_revision moved.

    A statement trigger bumps the revision on any change to bayes.chapter_params
    or bayes.params, so a changed row changes the next call.
    """
    if revision is None:
        revision = plpy.execute(_plan(plpy, _REVISION_SQL))[0]["revision"]
    params = _params_cache.get(revision)
    if params is None:
        text = plpy.execute(_plan(plpy, _SNAPSHOT_SQL))[0]["snapshot"]
        params = Params.from_snapshot(json.loads(text))
        _params_cache.clear()
        _params_cache[revision] = params
    return params


def _dumps(value):
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


@entry_point
def default_state(plpy, chapter):
    params = load_params(plpy)
    params.chapter(chapter)  # 22023 for a chapter outside 1..5
    return codec.encode(codec.default_state(chapter, params))


@entry_point
def decode_state(plpy, state_text):
    return codec.encode(codec.decode(state_text))


@entry_point
def describe_state(plpy, state_text):
    from . import describe  # imported on first use: not on the per-message path

    state = codec.decode(state_text)
    return _dumps(describe.describe_state(state, load_params(plpy)))


@entry_point
def step_message(
    plpy,
    state_text,
    revision,
    version,
    user_id,
    message_id,
    text,
    sent_at,
    last_message_at,
    decayed_at,
    reply_gap_s,
    topic_changed,
    session_seed,
):
    """Section 4 for one message: returns (new state, result, event input) as JSON texts."""
    params = load_params(plpy, revision)
    state = codec.decode(state_text)
    result, event_input = events.apply_message(
        state, params, user_id, text, sent_at, last_message_at, decayed_at, reply_gap_s, topic_changed, session_seed
    )
    result["user_id"] = user_id
    result["message_id"] = message_id
    result["duplicate"] = False
    result["version"] = version + 1
    return codec.encode(state), wire.message_result(result), _dumps(event_input)


@entry_point
def step_llm_scores(plpy, state_text, revision, version, user_id, message_id, deltas_text):
    """Section 7's LLM evidence: returns (new state, result, event input) as JSON texts."""
    params = load_params(plpy, revision)
    state = codec.decode(state_text)
    result, event_input = events.apply_llm_scores(state, params, json.loads(deltas_text))
    result["user_id"] = user_id
    result["message_id"] = message_id
    result["duplicate"] = False
    result["version"] = version + 1
    return codec.encode(state), _dumps(result), _dumps(event_input)


@entry_point
def step_outcome(plpy, state_text, revision, version, user_id, decision, engaged):
    """Section 4.4's outcome: returns (new state, result, event input) as JSON texts."""
    params = load_params(plpy, revision)
    state = codec.decode(state_text)
    result, event_input = events.apply_outcome(state, params, decision, engaged)
    result["user_id"] = user_id
    result["version"] = version + 1
    return codec.encode(state), _dumps(result), _dumps(event_input)


@entry_point
def step_chapter(plpy, state_text, revision, version, user_id, chapter):
    """Section 8: returns (new state, result, event input) as JSON texts; state is null when unchanged."""
    params = load_params(plpy, revision)
    state = codec.decode(state_text)
    changed, result, event_input = events.apply_chapter(state, params, chapter)
    result["user_id"] = user_id
    result["version"] = version + 1 if changed else version
    return (codec.encode(state) if changed else None), _dumps(result), _dumps(event_input)


@entry_point
def replay(plpy, user_id):
    """The state rebuilt from the player's event log (current parameters), decayed up to the row's decayed_at."""
    params = load_params(plpy)
    rows = plpy.execute(_plan(plpy, _EVENTS_SQL, ["uuid"]), [user_id])
    decayed_to = plpy.execute(_plan(plpy, _DECAYED_AT_SQL, ["uuid"]), [user_id])
    state_text = events.replay(
        params,
        user_id,
        ((row["kind"], json.loads(row["input"])) for row in rows),
        decayed_to=decayed_to[0]["decayed_at"] if decayed_to else None,
    )
    return state_text


@entry_point
def decay_state(plpy, state_text, revision, last_message_at, decayed_at, now):
    """Section 5: one stored state decayed up to `now` (bayes.decay_state)."""
    return events.decayed_text(load_params(plpy, revision), state_text, last_message_at, decayed_at, now)


@entry_point
def decay_states(plpy, state_texts, last_message_at, decayed_at, now, revision):
    """Section 5 for a batch of stored states (the bulk decay's step): their decayed texts."""
    from . import bulk  # numpy: only the bulk decay loads it, never the per-message path

    return bulk.decayed_texts(load_params(plpy, revision), state_texts, last_message_at, decayed_at, now)


@entry_point
def readiness(plpy, state_text, method, user_id, session_seed):
    """Section 6 for a stored state, as JSON text."""
    from . import readiness as readiness_module  # not on the per-message path

    state = codec.decode(state_text)
    return _dumps(readiness_module.readiness(state, load_params(plpy), method, user_id, session_seed))


@entry_point
def fallback_check(plpy, state_text):
    """Section 7, rules 1, 2 and 4, for a stored state, as JSON text."""
    from . import readiness as readiness_module

    return _dumps(readiness_module.fallback_check(codec.decode(state_text), load_params(plpy)))


@entry_point
def readiness_probability(plpy, state_text):
    """P(C >= T_c) of a stored state by the normal approximation."""
    state = codec.decode(state_text)
    return model.boss_readiness(state, load_params(plpy))["p_ready"]


@entry_point
def fallback_reason(plpy, state_text):
    """The first of section 7's rules 1, 2 and 4 that fires for a stored state."""
    state = codec.decode(state_text)
    params = load_params(plpy)
    metrics, composite, _ = model.metric_summary(state)
    return model.fallback_reason(state, params, metrics, composite)


@entry_point
def metric_interval(plpy, state_text, metric, mass):
    """The equal-tailed credible interval of one metric's Beta posterior."""
    from . import stats, vocab

    if metric not in vocab.METRIC_NAMES:
        raise BayesError(
            INVALID_PARAMETER, f"unknown metric {metric!r}", "metrics are intimacy, passion, trust, secureness"
        )
    state = codec.decode(state_text)
    alpha, beta = state["m"][vocab.METRIC_KEYS[vocab.METRIC_NAMES.index(metric)]]
    return list(stats.beta_interval(alpha, beta, mass))
