"""The PL/Python entry points: the one place that talks to PostgreSQL.

Each SQL function of the engine is a shim of three lines that loads the
package (bayes.py_load) and calls one function here, passing ``plpy`` in.
Nothing in the package imports ``plpy``, so plain pytest imports all of it.

jsonb arrives as JSON text (no transform is used) and is returned as JSON
text, which PostgreSQL parses into jsonb.  A :class:`BayesError` becomes a
PostgreSQL error with its own SQLSTATE, which PostgREST maps to a 4xx.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable

from . import codec, describe
from .errors import BayesError
from .params import Params

_PARAMS_SQL = "select bayes.params_snapshot()::text as snapshot"

# Per backend: prepared plans and the parsed parameters of the last snapshot.
_plans: dict[str, Any] = {}
_params_cache: dict[str, Params] = {}


def entry_point(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a BayesError raised by ``fn`` into plpy.error with its SQLSTATE."""

    @functools.wraps(fn)
    def wrapper(plpy: Any, *args: Any) -> Any:
        try:
            return fn(plpy, *args)
        except BayesError as err:
            plpy.error(err.message, hint=err.hint, sqlstate=err.sqlstate)

    return wrapper


def _plan(plpy: Any, sql: str, types: list[str] | None = None) -> Any:
    plan = _plans.get(sql)
    if plan is None:
        plan = _plans[sql] = plpy.prepare(sql, types or [])
    return plan


def load_params(plpy: Any) -> Params:
    """The current parameters; re-parsed only when a table row changed."""
    text = plpy.execute(_plan(plpy, _PARAMS_SQL))[0]["snapshot"]
    params = _params_cache.get(text)
    if params is None:
        params = Params.from_snapshot(json.loads(text))
        _params_cache.clear()
        _params_cache[text] = params
    return params


@entry_point
def default_state(plpy: Any, chapter: int) -> str:
    params = load_params(plpy)
    params.chapter(chapter)  # 22023 for a chapter outside 1..5
    return codec.encode(codec.default_state(chapter, params))


@entry_point
def decode_state(plpy: Any, state_text: str) -> str:
    return codec.encode(codec.decode(state_text))


@entry_point
def describe_state(plpy: Any, state_text: str) -> str:
    state = codec.decode(state_text)
    return json.dumps(describe.describe_state(state, load_params(plpy)), separators=(",", ":"))
