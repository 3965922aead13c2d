"""The compact stored state, schema v2 (MODEL.md section 2).

Keys, in their fixed order: v c n nc m mp d h k g b dd lb, optionally A B::

    v   int                     schema version (2)
    c   int                     chapter 1..5
    n   int                     messages processed in total
    nc  int                     messages processed in the current chapter
    m   {i,p,t,s: [alpha, beta]}  metric Beta posteriors
    mp  {i,p,t,s: [alpha0, beta0]}  metric priors of the current chapter
    d   [8 floats]              vice Dirichlet concentrations
    h   [6 floats]              mood belief (sums to 1)
    k   [a_skip, a_respond, consecutive_skips]
    g   [mu, tau]               Normal posterior of the log reply gap
    b   [4 spent floats, t]     evidence budget per metric at epoch second t
    dd  [day, count]            UTC day number and messages on that day
    lb  float                   LLM budget: tokens left (MODEL.md section 7)
    A   6x6, B 6x14             optional personalised HMM matrices

Schema v1 had no ``lb``; :func:`decode` upgrades a stored v1 state on read
(lb = B, a full budget), and the next write stores it as v2.

Rounding on :func:`encode` (keeps the text of a state without A/B within 512
bytes; decoded values are plain Python floats/ints):

- every float is written with 6 significant digits, integral floats without a
  fraction (``2.5`` -> ``2.5``, ``2.0`` -> ``2``, ``1e-05`` -> ``1e-5``);
- ``h`` and the rows of ``A`` are written in micro-units (multiples of 1e-6,
  largest-remainder rounding) so that they sum to exactly 1; probabilities
  below 1e-6 may become 0;
- the spent amounts of ``b`` below 1e-6 are written as 0, and the bucket time
  ``b[4]`` as a whole epoch second;
- ``lb`` is written in whole micro-tokens, rounded down (a budget is never
  rounded up), with up to 12 significant digits;
- a decay-only write (``stored_decay.encode_decayed``) rounds each metric so
  that the promises of MODEL.md section 5 hold for the stored numbers.

``encode(decode(text)) == text`` for any text produced by ``encode``.
"""

from __future__ import annotations

import copy
import json
import math
import re

from . import SCHEMA_VERSION, vocab
from .errors import DATA_CORRUPTED, FEATURE_NOT_SUPPORTED, BayesError
from .params import Params, int_value, real_value

KEY_ORDER = ("v", "c", "n", "nc", "m", "mp", "d", "h", "k", "g", "b", "dd", "lb", "A", "B")
OPTIONAL_KEYS = ("A", "B")
MAX_BYTES = 512  # a state without A/B
MAX_BYTES_WITH_HMM = 2048  # a state with A and/or B
SIGNIFICANT_DIGITS = 6
PROBABILITY_UNITS = 1_000_000  # h and rows of A are stored in multiples of 1e-6
ROW_TOLERANCE = 1e-5  # h and rows of A must sum to 1 within this
_STORED_HINT = "repair the row in public.user_bayesian_state; it is never reset automatically"

# Bounds that no state the engine writes ever leaves (with any parameters
# that bayes.params and bayes.chapter_params accept: concentrations there are
# in [0.01, 1e5], message times at most a year ahead of the database clock): a value
# outside them was written by something else, and is refused like a missing key.
MAX_COUNT = 10**15  # n, nc, consecutive skips, messages of a day
MIN_CONCENTRATION = 1e-12  # alpha, beta (m, mp), vices d, skip Beta k[0..1]
MAX_CONCENTRATION = 1e15
MAX_ABS_LOG_GAP = 1000.0  # g[0], a log of seconds (the log of the largest float is 710)
MIN_PRECISION = 1e-12  # g[1]
MAX_PRECISION = 1e15
MAX_SPENT = 1e15  # b[0..3]
MAX_EPOCH_S = 7_258_118_400  # 2200-01-01T00:00:00Z: b[4], and dd[0] as a day number
MAX_DAY = MAX_EPOCH_S // 86400
MAX_LLM_TOKENS = 1e6  # lb: at most the largest budget bayes.params accepts
MICRO = 1_000_000  # lb is stored in whole micro-tokens


def _upgrade_v1(state: dict, params) -> dict:
    """Schema v1 -> v2: the LLM budget ``lb`` arrives full (B tokens)."""
    if "lb" in state:
        raise _Checker("stored state").fail("lb", "is not a key of schema v1 (v = 1)")
    state["v"] = 2
    state["lb"] = float(_budget_tokens(params))
    return state


def _budget_tokens(params) -> float:
    """B of the parameters, or of the defaults when there are none (a check of validity only)."""
    if params is None:
        from .params import DEFAULT_SNAPSHOT

        return DEFAULT_SNAPSHOT["global"]["llm_budget_tokens"]
    return params.g["llm_budget_tokens"]


# Upgrade steps: UPGRADES[v](state, params) turns a state of schema v into
# schema v + 1. A step receives a deep copy and returns the upgraded state
# (with "v" set to v + 1).
UPGRADES: dict = {1: _upgrade_v1}


# --------------------------------------------------------------------------
# Defaults
# --------------------------------------------------------------------------


def default_state(chapter: int, params: Params) -> dict:
    """A fresh state at the start of `chapter` (no messages yet)."""
    cp = params.chapter(chapter)
    prior = params.metric_prior(chapter)
    return {
        "v": SCHEMA_VERSION,
        "c": cp.chapter,
        "n": 0,
        "nc": 0,
        "m": {key: list(prior[key]) for key in vocab.METRIC_KEYS},
        "mp": {key: list(prior[key]) for key in vocab.METRIC_KEYS},
        "d": [float(params.g["vice_prior"])] * len(vocab.VICES),
        "h": list(params.g["mood_start_belief"]),
        "k": [cp.skip_prior_skip, cp.skip_prior_respond, 0],
        "g": [math.log(cp.reply_baseline_s), 1.0],
        "b": [0.0, 0.0, 0.0, 0.0, 0.0],
        "dd": [0, 0],
        "lb": float(params.g["llm_budget_tokens"]),
    }


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------


class _Checker:
    """Validates one state, building a normalised copy; errors name the JSON path."""

    def __init__(self, what: str) -> None:
        self.what = what

    def fail(self, path: str, problem: str) -> BayesError:
        hint = _STORED_HINT if self.what == "stored state" else "the engine built an invalid state; nothing was written"
        return BayesError(DATA_CORRUPTED, f"{self.what} is corrupt: {path} {problem}", hint)

    def real(
        self, value: object, path: str, minimum: float = -math.inf, strict: bool = False, maximum: float = math.inf
    ) -> float:
        """A finite float, > minimum when strict, else >= minimum, and <= maximum."""
        try:
            x = real_value(value)
        except (TypeError, ValueError) as exc:
            raise self.fail(path, str(exc)) from None
        if (strict and not x > minimum) or x < minimum:
            raise self.fail(path, f"must be {'>' if strict else '>='} {_num(minimum)}, got {x!r}")
        if x > maximum:
            raise self.fail(path, f"must be <= {_num(maximum)}, got {x!r}")
        return x

    def concentration(self, value: object, path: str) -> float:
        return self.real(value, path, MIN_CONCENTRATION, maximum=MAX_CONCENTRATION)

    def integer(self, value: object, path: str, minimum: int = 0, maximum: int = MAX_COUNT) -> int:
        try:
            x = int_value(value)
        except (TypeError, ValueError) as exc:
            raise self.fail(path, str(exc)) from None
        if x < minimum:
            raise self.fail(path, f"must be >= {minimum}, got {x}")
        if x > maximum:
            raise self.fail(path, f"must be <= {maximum}, got {_show_int(x)}")
        return x

    def array(self, value: object, path: str, length: int) -> list:
        if not isinstance(value, (list, tuple)):
            raise self.fail(path, f"must be an array of {length}, got {type(value).__name__}")
        if len(value) != length:
            raise self.fail(path, f"must have {length} entries, got {len(value)}")
        return list(value)

    def probabilities(self, value: object, path: str, length: int, sum_to_one: bool) -> list[float]:
        """Non-negative entries summing to 1 (sum_to_one) or to a positive total."""
        row = [self.real(x, f"{path}[{j}]", 0.0) for j, x in enumerate(self.array(value, path, length))]
        total = math.fsum(row)
        if sum_to_one and abs(total - 1.0) > ROW_TOLERANCE:
            raise self.fail(path, f"must sum to 1 (within {ROW_TOLERANCE}), got {total!r}")
        if not sum_to_one and not total > 0:
            raise self.fail(path, "must have a positive sum")
        return row

    def metrics(self, value: object, path: str) -> dict[str, list[float]]:
        if not isinstance(value, dict):
            raise self.fail(path, f"must be an object, got {type(value).__name__}")
        keys = set(value)
        for key in vocab.METRIC_KEYS:
            if key not in keys:
                raise self.fail(f"{path}.{key}", "is missing")
        extra = sorted(str(k) for k in keys - set(vocab.METRIC_KEYS))
        if extra:
            raise self.fail(f"{path}.{extra[0]}", "is not a metric (expected i, p, t, s)")
        out = {}
        for key in vocab.METRIC_KEYS:
            pair = self.array(value[key], f"{path}.{key}", 2)
            out[key] = [
                self.concentration(pair[0], f"{path}.{key}[0] (alpha)"),
                self.concentration(pair[1], f"{path}.{key}[1] (beta)"),
            ]
        return out


def _num(x: float) -> str:
    """A bound for an error message: 0, -1000, 7258118400, 1e-12, 1e15."""
    if x == int(x) and abs(x) < 1e12:
        return str(int(x))
    return f"{x:g}".replace("e+", "e")


def _show_int(x: int) -> str:
    """An integer for a message: a huge one by its number of digits."""
    text = str(x)
    return text if len(text) <= 24 else f"a number of {len(text)} digits"


class _NotPlain(Exception):
    """Raised inside _validate_plain: leave the state to the full validation."""


_BASE_KEYS = frozenset(KEY_ORDER[:13])
_METRIC_KEY_SET = frozenset(vocab.METRIC_KEYS)


def _floats(values: list, minimum: float, maximum: float) -> list[float]:
    """`values` as floats when each is a plain JSON number (int or float, never bool) in
    [minimum, maximum], else _NotPlain. One loop, no call per entry: the decode and the
    encode of every message run it over 40 numbers."""
    out = []
    append = out.append
    for x in values:
        t = type(x)
        if t is not float and t is not int or not minimum <= x <= maximum:
            raise _NotPlain
        append(float(x))
    return out


_LISTS = (("d", 8), ("h", 6), ("k", 3), ("g", 2), ("b", 5), ("dd", 2))


def _plain_numbers(state: object) -> tuple:
    """The numbers of a well-formed state without A/B, checked as :func:`validate` checks them, else _NotPlain.

    Returns (c, n, nc, concentrations, h, run, mu, tau, b, day, count, lb):
    the 26 concentrations are m and mp (alpha, beta per metric in
    METRIC_KEYS order), d, and the skip Beta k[0..1]; every float a float.
    """
    if type(state) is not dict or state.keys() != _BASE_KEYS:
        raise _NotPlain
    v, c, n, nc = state["v"], state["c"], state["n"], state["nc"]
    if (
        type(v) is not int
        or v != SCHEMA_VERSION
        or type(c) is not int
        or not 1 <= c <= 5
        or type(n) is not int
        or type(nc) is not int
        or not 0 <= nc <= n <= MAX_COUNT
    ):
        raise _NotPlain
    m, mp = state["m"], state["mp"]
    if type(m) is not dict or type(mp) is not dict or m.keys() != _METRIC_KEY_SET or mp.keys() != _METRIC_KEY_SET:
        raise _NotPlain
    pairs = (m["i"], m["p"], m["t"], m["s"], mp["i"], mp["p"], mp["t"], mp["s"])
    for pair in pairs:
        if type(pair) is not list or len(pair) != 2:
            raise _NotPlain
    for key, length in _LISTS:
        value = state[key]
        if type(value) is not list or len(value) != length:
            raise _NotPlain
    d, k, g, b, dd = state["d"], state["k"], state["g"], state["b"], state["dd"]
    concentrations = _floats(
        [*pairs[0], *pairs[1], *pairs[2], *pairs[3], *pairs[4], *pairs[5], *pairs[6], *pairs[7], *d, k[0], k[1]],
        MIN_CONCENTRATION,
        MAX_CONCENTRATION,
    )
    h = _floats(state["h"], 0.0, 1.0)
    if abs(math.fsum(h) - 1.0) > ROW_TOLERANCE:
        raise _NotPlain
    b = _floats(b, 0.0, MAX_SPENT)  # then b[4] its own range
    run, day, count = k[2], dd[0], dd[1]
    if (
        type(run) is not int
        or not 0 <= run <= MAX_COUNT
        or type(day) is not int
        or not 0 <= day <= MAX_DAY
        or type(count) is not int
        or not 0 <= count <= MAX_COUNT
        or not b[4] <= MAX_EPOCH_S
    ):
        raise _NotPlain
    mu, tau = _floats(g, -MAX_ABS_LOG_GAP, MAX_PRECISION)  # then each its own range
    if mu > MAX_ABS_LOG_GAP or tau < MIN_PRECISION:
        raise _NotPlain
    (lb,) = _floats((state["lb"],), 0.0, MAX_LLM_TOKENS)
    return c, n, nc, concentrations, h, run, mu, tau, b, day, count, lb


def _validate_plain(state: object) -> object:
    """The fast path of :func:`validate` for a well-formed state without A/B.

    It accepts only what the full validation accepts and returns the same
    normalised copy; anything else (including every invalid state) returns
    None, and the full validation then names the problem.
    """
    try:
        c, n, nc, x, h, run, mu, tau, b, day, count, lb = _plain_numbers(state)
    except _NotPlain:
        return None
    return {
        "v": SCHEMA_VERSION,
        "c": c,
        "n": n,
        "nc": nc,
        "m": {"i": x[0:2], "p": x[2:4], "t": x[4:6], "s": x[6:8]},
        "mp": {"i": x[8:10], "p": x[10:12], "t": x[12:14], "s": x[14:16]},
        "d": x[16:24],
        "h": h,
        "k": [x[24], x[25], run],
        "g": [mu, tau],
        "b": b,
        "dd": [day, count],
        "lb": lb,
    }


def validate(state: object, what: str = "stored state") -> dict:
    """Check a schema-v2 state and return a normalised copy (plain floats/ints).

    Raises BayesError(DATA_CORRUPTED) naming the JSON path of the first problem.
    `what` starts the message ("stored state is corrupt: ...").
    """
    plain = _validate_plain(state)
    if plain is not None:
        return plain
    return validate_fully(state, what)


def validate_fully(state: object, what: str = "stored state") -> dict:
    """:func:`validate` without its fast path: every check written out, naming the path of the first problem.

    On the states the fast path accepts it returns the same normalised copy
    (the unit tests compare the two).
    """
    ck = _Checker(what)
    if not isinstance(state, dict):
        raise ck.fail("(root)", f"must be a JSON object, got {type(state).__name__}")
    for key in KEY_ORDER:
        if key not in state and key not in OPTIONAL_KEYS:
            raise ck.fail(key, "is missing")
    unknown = sorted(str(k) for k in state if k not in KEY_ORDER)
    if unknown:
        raise ck.fail(unknown[0], f"is not a key of schema v{SCHEMA_VERSION}")

    out: dict[str, object] = {}
    out["v"] = ck.integer(state["v"], "v")
    if out["v"] != SCHEMA_VERSION:
        raise ck.fail("v", f"must be {SCHEMA_VERSION}, got {out['v']}")
    out["c"] = ck.integer(state["c"], "c")
    if out["c"] not in vocab.CHAPTERS:
        raise ck.fail("c", f"must be a chapter in 1..5, got {out['c']}")
    out["n"] = ck.integer(state["n"], "n")
    out["nc"] = ck.integer(state["nc"], "nc")
    if out["nc"] > out["n"]:
        raise ck.fail("nc", f"must be <= n ({out['n']}), got {out['nc']}")
    out["m"] = ck.metrics(state["m"], "m")
    out["mp"] = ck.metrics(state["mp"], "mp")
    out["d"] = [ck.concentration(x, f"d[{j}]") for j, x in enumerate(ck.array(state["d"], "d", len(vocab.VICES)))]
    out["h"] = ck.probabilities(state["h"], "h", len(vocab.MOODS), sum_to_one=True)

    k = ck.array(state["k"], "k", 3)
    out["k"] = [
        ck.concentration(k[0], "k[0] (a_skip)"),
        ck.concentration(k[1], "k[1] (a_respond)"),
        ck.integer(k[2], "k[2] (consecutive_skips)"),
    ]
    g = ck.array(state["g"], "g", 2)
    out["g"] = [
        ck.real(g[0], "g[0] (mu)", -MAX_ABS_LOG_GAP, maximum=MAX_ABS_LOG_GAP),
        ck.real(g[1], "g[1] (tau)", MIN_PRECISION, maximum=MAX_PRECISION),
    ]
    b = ck.array(state["b"], "b", 5)
    out["b"] = [ck.real(x, f"b[{j}] (spent)", 0.0, maximum=MAX_SPENT) for j, x in enumerate(b[:4])] + [
        ck.real(b[4], "b[4] (epoch second)", 0.0, maximum=MAX_EPOCH_S)
    ]
    dd = ck.array(state["dd"], "dd", 2)
    out["dd"] = [ck.integer(dd[0], "dd[0] (day)", maximum=MAX_DAY), ck.integer(dd[1], "dd[1] (count)")]
    out["lb"] = ck.real(state["lb"], "lb (LLM budget)", 0.0, maximum=MAX_LLM_TOKENS)

    n_moods = len(vocab.MOODS)
    if "A" in state:
        rows = ck.array(state["A"], "A", n_moods)
        out["A"] = [ck.probabilities(row, f"A[{r}]", n_moods, sum_to_one=True) for r, row in enumerate(rows)]
    if "B" in state:
        rows = ck.array(state["B"], "B", n_moods)
        out["B"] = [
            ck.probabilities(row, f"B[{r}]", len(vocab.SYMBOLS), sum_to_one=False) for r, row in enumerate(rows)
        ]
    return out


# --------------------------------------------------------------------------
# Upgrades
# --------------------------------------------------------------------------


def upgrade(state: dict, params=None) -> dict:
    """Bring a stored state to SCHEMA_VERSION by applying the UPGRADES chain.

    A state newer than this code raises FEATURE_NOT_SUPPORTED (never a reset);
    a missing or unknown old version raises DATA_CORRUPTED. `params` gives
    the values a step fills in (v1 -> v2: lb = B); without them, the defaults.
    """
    if type(state) is dict and type(state.get("v")) is int and state["v"] == SCHEMA_VERSION:
        return state
    ck = _Checker("stored state")
    if not isinstance(state, dict):
        raise ck.fail("(root)", f"must be a JSON object, got {type(state).__name__}")
    if "v" not in state:
        raise ck.fail("v", "is missing")
    v = ck.integer(state["v"], "v", minimum=-(2**63))
    if v > SCHEMA_VERSION:
        raise BayesError(
            FEATURE_NOT_SUPPORTED,
            f"stored state has schema v={v}, newer than this code (v{SCHEMA_VERSION}): deploy the newer code",
            "a newer engine wrote this row; do not reset it",
        )
    while v < SCHEMA_VERSION:
        step = UPGRADES.get(v)
        if step is None:
            raise ck.fail("v", f"is {v}, and there is no upgrade from schema v={v} (this code reads v{SCHEMA_VERSION})")
        state = step(copy.deepcopy(state), params)
        new_v = state.get("v") if isinstance(state, dict) else None
        if new_v != v + 1:
            raise ck.fail("v", f"was not advanced by the upgrade step from v={v} (got {new_v!r}, expected {v + 1})")
        v = new_v
    return state


# --------------------------------------------------------------------------
# Encoding
# --------------------------------------------------------------------------


def _fmt_float(x: float) -> str:
    """A float as the shortest JSON text with 6 significant digits."""
    if x == 0.0:
        return "0"
    text = format(x, f".{SIGNIFICANT_DIGITS}g")
    if "e" in text:
        mantissa, exponent = text.split("e")
        text = f"{mantissa}e{int(exponent)}"
    return text


def quantize_probabilities(row: list[float]) -> list[float]:
    """Round a distribution to multiples of 1e-6 summing to exactly 1 (largest remainder)."""
    total = math.fsum(row)
    scaled = [x / total * PROBABILITY_UNITS for x in row]
    units = list(map(math.floor, scaled))
    missing = PROBABILITY_UNITS - sum(units)
    if missing > 0:
        remainders = [x - u for x, u in zip(scaled, units)]
        # By decreasing remainder, the first entry first on a tie: the sort is stable, also reversed.
        for j in sorted(range(len(row)), key=remainders.__getitem__, reverse=True)[:missing]:
            units[j] += 1
    return [u / PROBABILITY_UNITS for u in units]


def micro_tokens(tokens: float) -> int:
    """An amount of LLM budget in whole micro-tokens, rounded down (never up)."""
    units = round(tokens * MICRO)
    if units / MICRO > tokens:
        units -= 1
    return units


def tokens_text(tokens: float) -> str:
    """lb as stored: whole micro-tokens, rounded down; 12 significant digits hold any lb <= 1e6 exactly."""
    return format(micro_tokens(tokens) / MICRO, ".12g")


class _Tokens(str):
    """The text of lb inside _write (a float would be written with 6 digits)."""


def _write(value: object) -> str:
    """Compact JSON of a normalised state (dicts keep their insertion order)."""
    t = type(value)
    if t is _Tokens:
        return str(value)
    if t is float:
        return _fmt_float(value)
    if t is int:
        return str(value)
    if t is list:
        return "[" + ",".join(map(_write, value)) + "]"
    if t is dict:
        return "{" + ",".join('"' + k + '":' + _write(x) for k, x in value.items()) + "}"
    raise TypeError(f"cannot encode {t.__name__}")


# The text of a state without A/B in one %-format: every float as %.6g, the
# exponents then shortened as _fmt_float does ("1e-05" -> "1e-5").
_PLAIN_TEMPLATE = (
    '{"v":%d,"c":%d,"n":%d,"nc":%d,'
    '"m":{"i":[%.6g,%.6g],"p":[%.6g,%.6g],"t":[%.6g,%.6g],"s":[%.6g,%.6g]},'
    '"mp":{"i":[%.6g,%.6g],"p":[%.6g,%.6g],"t":[%.6g,%.6g],"s":[%.6g,%.6g]},'
    '"d":[%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g],'
    '"h":[%.6g,%.6g,%.6g,%.6g,%.6g,%.6g],'
    '"k":[%.6g,%.6g,%d],"g":[%.6g,%.6g],"b":[%.6g,%.6g,%.6g,%.6g,%d],"dd":[%d,%d],"lb":%s}'
)
_EXPONENT = re.compile(r"e([+-])0*(\d)")


def _short_exponent(match: re.Match) -> str:
    return "e" + ("-" if match.group(1) == "-" else "") + match.group(2)


def _write_plain(s: dict) -> str:
    m, mp, k = s["m"], s["mp"], s["k"]
    values = (
        s["v"],
        s["c"],
        s["n"],
        s["nc"],
        *m["i"],
        *m["p"],
        *m["t"],
        *m["s"],
        *mp["i"],
        *mp["p"],
        *mp["t"],
        *mp["s"],
        *s["d"],
        *s["h"],
        k[0],
        k[1],
        k[2],
        s["g"][0] + 0.0,
        s["g"][1],
        *s["b"],
        *s["dd"],
        tokens_text(s["lb"]),
    )
    text = _PLAIN_TEMPLATE % values
    if "e" in text:
        text = _EXPONENT.sub(_short_exponent, text)
    return text


def encode(state: dict) -> str:
    """Validate and serialise a state as compact JSON text (see the module docstring)."""
    try:
        return _encode_plain(state)
    except _NotPlain:
        return encode_normalised(validate(state, what="state to store"))


def _encode_plain(state: dict) -> str:
    """:func:`encode` of a well-formed state without A/B, in one pass: the numbers that
    :func:`validate` accepts (else _NotPlain), written as :func:`encode_normalised`
    writes the normalised copy, without building it."""
    c, n, nc, x, h, run, mu, tau, b, day, count, lb = _plain_numbers(state)
    b0, b1, b2, b3, b4 = b
    text = _PLAIN_TEMPLATE % (
        SCHEMA_VERSION,
        c,
        n,
        nc,
        *x[:24],
        *quantize_probabilities(h),
        x[24],
        x[25],
        run,
        mu + 0.0,
        tau,
        0.0 if b0 < 1e-6 else b0,
        0.0 if b1 < 1e-6 else b1,
        0.0 if b2 < 1e-6 else b2,
        0.0 if b3 < 1e-6 else b3,
        round(b4),  # a whole epoch second
        day,
        count,
        tokens_text(lb),
    )
    if "e" in text:
        text = _EXPONENT.sub(_short_exponent, text)
    return text


def encode_normalised(s: dict) -> str:
    """Serialise a state that :func:`validate` (or :func:`decode`) normalised; consumes it."""
    s["h"] = quantize_probabilities(s["h"])
    if "A" in s:
        s["A"] = [quantize_probabilities(row) for row in s["A"]]
    spent = [0.0 if x < 1e-6 else x for x in s["b"][:4]]
    s["b"] = spent + [int(round(s["b"][4]))]  # written as an int: a whole epoch second
    if "A" not in s and "B" not in s:
        return _write_plain(s)
    s["lb"] = _Tokens(tokens_text(s["lb"]))
    return _write({key: s[key] for key in KEY_ORDER if key in s})


def decode(data: str | bytes | dict, params=None) -> dict:
    """Parse (if text), upgrade and validate a stored state; returns plain floats/ints.

    Raises BayesError, and nothing else, for any state it refuses: XX001 for
    a corrupt one (naming the JSON path of the first problem), 0A000 for a
    newer schema version. An older schema is upgraded with `params` (v1: lb
    = B); without them, with the defaults (enough to check a state).
    """
    try:
        if isinstance(data, (str, bytes, bytearray)):
            try:
                data = json.loads(data)
            except ValueError as exc:  # also an integer of more than 4300 digits
                raise BayesError(
                    DATA_CORRUPTED, f"stored state is corrupt: not valid JSON ({exc})", _STORED_HINT
                ) from None
        return validate(upgrade(data, params))
    except RecursionError:  # JSON nested deeper than the interpreter's recursion limit (about 1000)
        raise BayesError(DATA_CORRUPTED, "stored state is corrupt: nested too deeply", _STORED_HINT) from None
