"""Corrupt states, as an operator's mistake would leave them in public.user_bayesian_state.

:func:`corruptions` turns one valid state into about a hundred variants,
each wrong in one way (a key missing, a value of the wrong type, a number out
of range, an array of the wrong length, a belief that does not sum to 1, a
schema version the code does not know, unknown keys, numbers JSON can hold
but a float cannot). :func:`plant` writes one into a row the way a manual
``UPDATE`` would, with the table's triggers off (``session_replication_role
= replica``): what still refuses it is the table itself (its check
constraints and generated columns), never the engine.

The database tests plant them to check that the bulk decay skips and records
each one, that the analytics functions return NULL for each one, and that the
per-player RPCs refuse each one with the codec's error.
"""

from __future__ import annotations

import copy
import json
import math

from bayes_engine import codec
from hypothesis import strategies as hs

from .states import states

KEYS = ("v", "c", "n", "nc", "m", "mp", "d", "h", "k", "g", "b", "dd", "lb")
WRONG_TYPES = {"string": "x", "object": {}, "array": [], "null": None}
HUGE = 10**400  # a JSON number, and a jsonb numeric, that no float can hold
TINY = "1e-400"  # positive in JSON; 0.0 as a float


def _text(state: dict) -> str:
    return json.dumps(state)


def _set(state: dict, path: tuple, value) -> dict:
    out = copy.deepcopy(state)
    node = out
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return out


def _show(path: tuple) -> str:
    out = str(path[0])
    for step in path[1:]:
        out += f"[{step}]" if isinstance(step, int) else f".{step}"
    return out


def corruptions(state: dict) -> list[tuple[str, str]]:
    """(name, JSON text) of corrupt variants of a valid decoded state without A/B, each wrong in one way."""
    out: list[tuple[str, str]] = []
    for key in KEYS:
        out.append((f"missing {key}", _text({k: v for k, v in state.items() if k != key})))
    for key in KEYS:
        for kind, value in WRONG_TYPES.items():
            out.append((f"{key} is {kind}", _text(_set(state, (key,), value))))
    # Numbers out of range: zero or negative where positive is required,
    # negative counts, fractions where an integer is required, booleans,
    # numbers given as strings.
    numbers = [
        (("m", "i", 0), 0),
        (("m", "p", 1), -1.5),
        (("m", "t", 0), "0.5"),
        (("mp", "s", 1), 0),
        (("mp", "t", 0), -2),
        (("d", 3), 0),
        (("d", 0), -1),
        (("k", 0), 0),
        (("k", 1), -1),
        (("k", 2), -1),
        (("k", 2), 1.5),
        (("g", 1), 0),
        (("g", 1), -1),
        (("g", 0), "x"),
        (("b", 0), -1),
        (("b", 4), -5),
        (("dd", 0), -1),
        (("dd", 1), 2.5),
        (("lb",), -1),
        (("lb",), 2e6),
        (("lb",), "3"),
        (("n",), -1),
        (("n",), 2.5),
        (("n",), True),
        (("nc",), state["n"] + 1),
        (("c",), "3"),
        (("c",), 3.5),
        (("c",), 0),
        (("c",), 6),
        (("c",), True),
    ]
    for path, value in numbers:
        out.append((f"{_show(path)} = {json.dumps(value)}", _text(_set(state, path, value))))
    h = list(state["h"])
    negative = [h[0] - 0.5, h[1] + 0.5, *h[2:]]  # sums to 1, one entry below 0
    out.append(("h has a negative entry", _text(_set(state, ("h",), negative))))
    # Numbers a float cannot hold: huge (jsonb prints every digit), tiny (0.0 as a float).
    for path in (("d", 2), ("g", 0), ("mp", "i", 0), ("m", "s", 0), ("b", 1), ("lb",)):
        out.append((f"{_show(path)} is huge", _text(_set(state, path, HUGE))))
    for path in (("d", 5), ("g", 1), ("m", "p", 0)):
        text = _text(_set(state, path, 123456789))
        out.append((f"{_show(path)} is tiny", text.replace("123456789", TINY, 1)))
    # Integers beyond SQL's bigint, and a number of more digits than Python converts (4300).
    out.append(("n is huge", _text(_set(state, ("n",), HUGE))))
    out.append(("dd[0] = 2**63", _text(_set(state, ("dd", 0), 2**63))))
    text = _text(_set(state, ("d", 1), 123456789))
    out.append(("d[1] has 5000 digits", text.replace("123456789", "7" * 5000, 1)))
    # Arrays of the wrong length.
    lengths = [
        (("d",), 7),
        (("d",), 9),
        (("h",), 5),
        (("h",), 7),
        (("k",), 2),
        (("k",), 4),
        (("g",), 1),
        (("g",), 3),
        (("b",), 4),
        (("b",), 6),
        (("dd",), 1),
        (("dd",), 3),
        (("m", "i"), 1),
        (("m", "i"), 3),
        (("mp", "p"), 3),
    ]
    for path, length in lengths:
        node = state
        for step in path:
            node = node[step]
        value = (list(node) * 3)[:length]
        out.append((f"{_show(path)} has {length} entries", _text(_set(state, path, value))))
    # A belief that does not sum to 1.
    out.append(("h sums to 3", _text(_set(state, ("h",), [0.5] * 6))))
    out.append(("h sums to 0", _text(_set(state, ("h",), [0] * 6))))
    out.append(("h sums to 1.001", _text(_set(state, ("h",), [h[0] + 0.001, *h[1:]]))))
    # Schema versions.
    for value in (1, 3, 99, 0, -1, "2", 1.5, True):  # v = 1: a v1 state has no lb
        out.append((f"v = {json.dumps(value)}", _text(_set(state, ("v",), value))))
    # Unknown keys, and malformed optional ones.
    out.append(("an unknown key", _text({**state, "zz": 1})))
    out.append(("only unknown keys", _text({"foo": 1, "bar": [1, 2]})))
    out.append(("an empty object", "{}"))
    out.append(("an unknown metric in m", _text(_set(state, ("m", "x"), [1, 1]))))
    out.append(("an unknown metric in mp", _text(_set(state, ("mp", "x"), [1, 1]))))
    out.append(("A has 5 rows", _text({**state, "A": [[1 / 6] * 6] * 5})))
    out.append(("a row of A sums to 2", _text({**state, "A": [[1 / 3] * 6] + [[1 / 6] * 6] * 5})))
    out.append(("a row of B is all zero", _text({**state, "B": [[0] * 14] + [[1 / 14] * 14] * 5})))
    out.append(("A is a string", _text({**state, "A": "identity"})))
    deep = "[" * 5000 + "]" * 5000
    out.append(("an unknown key nested 5000 deep", _text({**state, "zz": 0}).replace('"zz": 0', f'"zz": {deep}')))
    return out


def plant(conn, user_id, text: str) -> None:
    """Write `text` as the state of `user_id` the way an operator's UPDATE would, triggers off.

    `conn` is an autocommit connection of a superuser; the change is
    committed. Raises what the table itself raises when it refuses the state.
    """
    with conn.transaction():
        conn.execute("set local session_replication_role = replica")
        conn.execute("update public.user_bayesian_state set state = %s::jsonb where user_id = %s", (text, user_id))


# jsonb cannot hold U+0000, nor a lone surrogate (hypothesis found '\ud800' as a key: PostgreSQL refuses
# the JSON text before the codec sees it, so it is not a stored state at all)
_CHARACTERS = hs.characters(blacklist_characters="\x00", blacklist_categories=("Cs",))
# Any JSON value that jsonb can hold (no NaN, no infinity, no U+0000, no lone surrogate).
JSON = hs.recursive(
    hs.none()
    | hs.booleans()
    | hs.integers(-(2**70), 2**70)
    | hs.sampled_from([10**400, 0, -1, 1])
    | hs.floats(allow_nan=False, allow_infinity=False)
    | hs.text(_CHARACTERS, max_size=5),
    lambda inner: hs.lists(inner, max_size=4) | hs.dictionaries(hs.text(_CHARACTERS, max_size=3), inner, max_size=3),
    max_leaves=8,
)


def _paths(value, prefix=()):
    """Every path into a JSON value (keys and indices), the root excluded."""
    out = []
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


@hs.composite
def mutated_states(draw):
    """Hypothesis strategy: a valid state (as JSON), then none, one or two mutations.

    A mutation replaces a value anywhere with any JSON value, removes or adds
    a key or an entry, or scales a number (by 0, -1, a tiny or a huge
    factor). Many results are corrupt, some are still valid.
    """
    state = json.loads(codec.encode(draw(states())))
    if draw(hs.booleans()):
        state["A"] = [[1 / 6] * 6 for _ in range(6)]
    for _ in range(draw(hs.integers(0, 2))):
        where = draw(hs.sampled_from(_paths(state)))
        parent = state
        for step in where[:-1]:
            parent = parent[step]
        action = draw(hs.sampled_from(["replace", "remove", "add", "scale"]))
        key = where[-1]
        if action == "replace":
            parent[key] = draw(JSON)
        elif action == "remove":
            del parent[key]
        elif action == "add":
            if isinstance(parent, dict):
                parent[draw(hs.text(_CHARACTERS, min_size=1, max_size=3))] = draw(JSON)
            else:
                parent.insert(key, draw(JSON))
        elif isinstance(parent[key], (int, float)) and not isinstance(parent[key], bool):
            # zero, a sign, tiny and huge numbers, and nudges across the codec's tolerance of 1e-5
            factor = draw(hs.sampled_from([0, -1, 1e-320, 1e300, 0.5, 2, 1 + 1e-5, 1 - 1e-5, 1 + 5e-6, 1 + 2e-5]))
            if math.isfinite(parent[key] * factor):
                parent[key] = parent[key] * factor
    return state
