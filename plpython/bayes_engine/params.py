"""Model parameters (MODEL.md sections 1-7, stored in the tables of section 9).

At run time the parameters come from ``bayes.chapter_params`` (one row per
chapter) and ``bayes.params`` (global constants) as one JSON snapshot::

    {"chapters": [{"chapter": 1, "boss_threshold": 55, ...}, ... 5 rows],
     "global": {"discount": 0.98, ..., "mood_emission": [[...]]}}

:data:`DEFAULT_SNAPSHOT` holds the defaults of MODEL.md in exactly that shape;
the SQL seed uses the same numbers. :meth:`Params.from_snapshot` validates a
snapshot (every key present, finite, in range) and raises
``BayesError('22023', ...)`` naming the offending key. Keys that are not part
of the model (for example bookkeeping columns) are ignored.
"""

import json
import math
import numbers
import sys
from collections.abc import Mapping
from types import MappingProxyType

from . import encoder, vocab
from .errors import INVALID_PARAMETER, BayesError

_HINT_CHAPTER = "fix the row in bayes.chapter_params"
_HINT_GLOBAL = "fix the row in bayes.params"
_ROW_TOLERANCE = 1e-5  # rows of probabilities must sum to 1 within this


# --------------------------------------------------------------------------
# JSON number helpers (shared with the codec)
# --------------------------------------------------------------------------


def real_value(value) -> float:
    """Return a JSON number (int, float or Decimal; never bool) as a finite float.

    Raises TypeError for a non-number and ValueError for NaN or infinity; the
    exception text completes a sentence such as "key must be ...".
    """
    if type(value) is float or type(value) is int:
        try:
            result = float(value)
        except OverflowError:  # an int beyond the largest float: jsonb prints 1e400 as 1 and 400 zeros
            raise ValueError(f"must be a finite number, got {_show(value)}") from None
        if not math.isfinite(result):
            raise ValueError(f"must be a finite number, got {_show(value)}")
        return result
    if isinstance(value, bool) or not (isinstance(value, numbers.Real) or _is_decimal(value)):
        raise TypeError(f"must be a number, got {_show(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise ValueError(f"must be a finite number, got {_show(value)}") from None
    if not math.isfinite(result):
        raise ValueError(f"must be a finite number, got {_show(value)}")
    return result


def int_value(value, allow_integral_float: bool = False) -> int:
    """Return a JSON integer (never bool) as an int.

    An integral Decimal is accepted; an integral float only when
    ``allow_integral_float`` is true.
    """
    if isinstance(value, bool):
        raise TypeError(f"must be an integer, got {_show(value)}")
    if isinstance(value, numbers.Integral):
        return int(value)
    if _is_decimal(value) or (allow_integral_float and isinstance(value, numbers.Real)):
        number = real_value(value)
        if number == int(number):
            return int(number)
    raise TypeError(f"must be an integer, got {_show(value)}")


def _is_decimal(value) -> bool:
    """A decimal.Decimal (what jsonb numbers become under the jsonb_plpython3u
    transform), tested without importing decimal on every backend's first call."""
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(value, decimal.Decimal)


def _show(value) -> str:
    """Short printable form of a bad value for error messages."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{text} ({type(value).__name__})"


# --------------------------------------------------------------------------
# Defaults (MODEL.md)
# --------------------------------------------------------------------------

# Section 2.1: chapter 1 uses the narrative priors; chapters 2..5 use
# (mean * strength, (1 - mean) * strength), rounded to 10 decimals.
_PRIOR_MEAN_STRENGTH = {
    2: ((0.40, 12), (0.55, 10), (0.45, 11), (0.50, 10)),
    3: ((0.55, 18), (0.60, 16), (0.58, 17), (0.60, 15)),
    4: ((0.68, 25), (0.65, 22), (0.67, 24), (0.70, 20)),
    5: ((0.78, 35), (0.72, 30), (0.75, 33), (0.80, 28)),
}
_PRIORS_CHAPTER_1 = ((1.5, 6), (3, 3), (2, 5), (2, 3))


def _chapter_priors(chapter: int) -> dict:
    """The prior_<metric>_alpha/beta keys of one chapter."""
    if chapter == 1:
        pairs = _PRIORS_CHAPTER_1
    else:
        pairs = tuple(
            (round(mean * strength, 10), round((1 - mean) * strength, 10))
            for mean, strength in _PRIOR_MEAN_STRENGTH[chapter]
        )
    out = {}
    for name, (alpha, beta) in zip(vocab.METRIC_NAMES, pairs):
        out[f"prior_{name}_alpha"] = alpha
        out[f"prior_{name}_beta"] = beta
    return out


def _default_chapter(chapter: int) -> dict:
    """One default row of bayes.chapter_params."""
    j = chapter - 1
    row = {"chapter": chapter, "boss_threshold": (55, 60, 65, 70, 75)[j]}
    row.update(_chapter_priors(chapter))
    row.update(
        {
            "skip_prior_skip": (3, 2, 1.5, 1, 0.5)[j],  # 2.1
            "skip_prior_respond": (7, 8, 8.5, 9, 9.5)[j],  # 2.1
            "skip_cap": (0.50, 0.35, 0.25, 0.15, 0.08)[j],  # 4.4
            "reply_baseline_s": (300, 240, 180, 120, 90)[j],  # 2.1
            "delay_coef": (0.15, 0.30, 0.50, 0.75, 1.0)[j],  # 4.2
            "delay_cap_s": (10, 60, 300, 900, 1800)[j],  # 4.2
            "fast_reply_s": (600, 300, 300, 300, 300)[j],  # 3
            "slow_reply_s": (28800, 14400, 7200, 3600, 1800)[j],  # 3
            "decay_grace_h": (8, 16, 24, 48, 72)[j],  # 5
            "decay_rate_per_h": (0.008, 0.006, 0.004, 0.003, 0.002)[j],  # 5
            "vice_decay_grace_h": (24, 48, 72, 96, 168)[j],  # 5
            "mood_volatility": (1.3, 1.15, 1.0, 0.9, 0.85)[j],  # 4.2
        }
    )
    return row


# Section 3 as parameter rows (issue 14): the evidence of each metric feature
# ({metric name: signed evidence}, absent metrics 0) and of every message
# (the intercept, 0 in MODEL.md), and the lexicons (lists of entries).
EVIDENCE_FEATURES = (*encoder.FEATURES, "intercept")
EVIDENCE_KEYS = tuple(f"feature_{name}" for name in EVIDENCE_FEATURES)
LEXICON_KEYS = tuple(f"lexicon_{name}" for name in encoder.default_words())
_EVIDENCE_LIMIT = 1.0  # one feature moves one metric by at most one observation
_LEXICON_MAX_ENTRIES = 10_000
_LEXICON_MAX_CHARS = 64


def _default_evidence_rows() -> dict:
    rows = {}
    for name, row in encoder.default_evidence().items():
        values = {metric: value for metric, value in zip(vocab.METRIC_NAMES, row) if value or name == "intercept"}
        rows[f"feature_{name}"] = values
    return rows


DEFAULT_SNAPSHOT: dict = {
    "chapters": [_default_chapter(c) for c in vocab.CHAPTERS],
    "global": {
        "discount": 0.98,
        "cold_start_messages": 10,
        "evidence_budget_per_hour": 5.0,
        "ready_probability": 0.7,
        "uncertain_margin": 0.1,
        "audit_rate": 0.02,
        "llm_budget_tokens": 3,
        "llm_budget_window": 100,
        "vice_prior": 1.0,
        "vice_decay_rate_per_h": 0.002,
        "timing_obs_precision": 1.0,
        "timing_max_gap_s": 21600,
        "max_consecutive_skips": 2,
        "clock_skew_s": 300,
        "max_message_age_h": 720,
        "event_retention_days": 90,
        "idempotency_window_h": 72,
        "decay_tolerance_composite": 0.1,
        "decay_tolerance_p_ready": 0.005,
        "health_window_short_s": 300,
        "health_window_long_s": 3600,
        "health_agreement_window_h": 24,
        "health_agreement_pairs": 2000,
        "health_snapshot_retention_days": 7,
        **_default_evidence_rows(),
        **{f"lexicon_{name}": entries for name, entries in encoder.default_words().items()},
        "mood_start_belief": [0.40, 0.25, 0.10, 0.10, 0.05, 0.10],
        "mood_transition": [
            [0.55, 0.20, 0.08, 0.07, 0.03, 0.07],
            [0.25, 0.50, 0.05, 0.05, 0.05, 0.10],
            [0.10, 0.05, 0.50, 0.10, 0.15, 0.10],
            [0.08, 0.02, 0.10, 0.55, 0.10, 0.15],
            [0.05, 0.02, 0.15, 0.10, 0.55, 0.13],
            [0.05, 0.02, 0.10, 0.15, 0.08, 0.60],
        ],
        "mood_emission": [
            [0.12, 0.08, 0.12, 0.10, 0.02, 0.08, 0.08, 0.10, 0.05, 0.10, 0.08, 0.03, 0.02, 0.02],
            [0.08, 0.05, 0.08, 0.08, 0.01, 0.05, 0.18, 0.12, 0.02, 0.08, 0.05, 0.10, 0.08, 0.02],
            [0.10, 0.05, 0.18, 0.05, 0.05, 0.15, 0.02, 0.15, 0.02, 0.05, 0.08, 0.05, 0.02, 0.03],
            [0.02, 0.18, 0.03, 0.02, 0.05, 0.03, 0.03, 0.03, 0.18, 0.08, 0.05, 0.15, 0.02, 0.13],
            [0.15, 0.05, 0.05, 0.01, 0.18, 0.15, 0.02, 0.12, 0.03, 0.05, 0.05, 0.08, 0.01, 0.05],
            [0.02, 0.22, 0.03, 0.01, 0.08, 0.05, 0.01, 0.02, 0.22, 0.05, 0.03, 0.12, 0.01, 0.13],
        ],
    },
}


# --------------------------------------------------------------------------
# Validation rules
# --------------------------------------------------------------------------

# Range rules: "pos" > 0, "nonneg" >= 0, "unit" in [0, 1], "score" in [0, 100],
# "discount" in (0, 1], "int_nonneg" an integer >= 0, "concentration" in
# [0.01, 1e5] (a prior pseudo-count: within these the states the engine writes
# keep inside the codec's bounds), "per_message" in (0, 1e6] (an amount that
# a state accumulates message after message, within the codec's bounds),
# "skew" in [0, 31536000] s and "age" in (0, 87600] h: the time window of a
# message (a year ahead, ten years back at most), so that the times a state
# stores stay inside the codec's bounds (after 1970, before 2200); "margin" in
# [0, 0.5] (the uncertain band of the fallback, eps < P_ready < 1 - eps),
# "budget" in [0, 1e6] tokens (B of the LLM budget; the codec's bound on lb)
# and "window" in [1, 1e9] messages (W: the budget refills B/W a message);
# "retention" in [1, 36500] days (the event log's horizon: bayes.run_retention_command);
# "health_window" in [10, 604800] s (a window of bayes.health) and "pairs" in
# [1, 1e9] (the shadow/audit pairs it compares at most).
_CHAPTER_RULES = {
    "boss_threshold": "score",
    **{f"prior_{name}_{ab}": "concentration" for name in vocab.METRIC_NAMES for ab in ("alpha", "beta")},
    "skip_prior_skip": "concentration",
    "skip_prior_respond": "concentration",
    "skip_cap": "unit",
    "reply_baseline_s": "pos",
    "delay_coef": "nonneg",
    "delay_cap_s": "pos",
    "fast_reply_s": "pos",
    "slow_reply_s": "pos",
    "decay_grace_h": "nonneg",
    "decay_rate_per_h": "nonneg",
    "vice_decay_grace_h": "nonneg",
    "mood_volatility": "pos",
}

_GLOBAL_SCALAR_RULES = {
    "discount": "discount",
    "cold_start_messages": "int_nonneg",
    "evidence_budget_per_hour": "per_message",
    "ready_probability": "unit",
    "uncertain_margin": "margin",
    "audit_rate": "unit",
    "llm_budget_tokens": "budget",
    "llm_budget_window": "window",
    "vice_prior": "concentration",
    "vice_decay_rate_per_h": "nonneg",
    "timing_obs_precision": "per_message",
    "timing_max_gap_s": "pos",
    "max_consecutive_skips": "int_nonneg",
    "clock_skew_s": "skew",
    "max_message_age_h": "age",
    "event_retention_days": "retention",
    "idempotency_window_h": "window_h",
    "decay_tolerance_composite": "score",
    "decay_tolerance_p_ready": "unit",
    # read by the health signals (bayes.health, bayes.record_health), not by the engine
    "health_window_short_s": "health_window",
    "health_window_long_s": "health_window",
    "health_agreement_window_h": "window_h",
    "health_agreement_pairs": "pairs",
    "health_snapshot_retention_days": "retention",
}

_RULE_TEXT = {
    "pos": ("must be > 0", lambda x: x > 0),
    "nonneg": ("must be >= 0", lambda x: x >= 0),
    "unit": ("must be in [0, 1]", lambda x: 0 <= x <= 1),
    "score": ("must be in [0, 100]", lambda x: 0 <= x <= 100),
    "discount": ("must be in (0, 1]", lambda x: 0 < x <= 1),
    "int_nonneg": ("must be >= 0", lambda x: x >= 0),
    "concentration": ("must be in [0.01, 100000]", lambda x: 0.01 <= x <= 1e5),
    "per_message": ("must be in (0, 1000000]", lambda x: 0 < x <= 1e6),
    "skew": ("must be in [0, 31536000] (a year)", lambda x: 0 <= x <= 31_536_000),
    "age": ("must be in (0, 87600] (ten years)", lambda x: 0 < x <= 87_600),
    "margin": ("must be in [0, 0.5]", lambda x: 0 <= x <= 0.5),
    "budget": ("must be in [0, 1000000]", lambda x: 0 <= x <= 1e6),
    "window": ("must be in [1, 1000000000] (messages)", lambda x: 1 <= x <= 1e9),
    "retention": ("must be in [1, 36500] (days)", lambda x: 1 <= x <= 36_500),
    "window_h": ("must be in [0, 87600] (hours; ten years)", lambda x: 0 <= x <= 87_600),
    "health_window": ("must be in [10, 604800] (seconds; a week)", lambda x: 10 <= x <= 604_800),
    "pairs": ("must be in [1, 1000000000] (pairs)", lambda x: 1 <= x <= 1e9),
}


def _bad(where: str, problem: str, hint: str) -> BayesError:
    return BayesError(INVALID_PARAMETER, f"invalid parameter snapshot: {where} {problem}", hint)


def _scalar(container: Mapping, key: str, rule: str, where: str, hint: str) -> float:
    """Fetch, type-check and range-check one scalar parameter."""
    if key not in container:
        raise _bad(where, "is missing", hint)
    try:
        if rule == "int_nonneg":
            value: float = int_value(container[key], allow_integral_float=True)
        else:
            value = real_value(container[key])
    except (TypeError, ValueError) as exc:
        raise _bad(where, str(exc), hint) from None
    text, ok = _RULE_TEXT[rule]
    if not ok(value):
        raise _bad(where, f"{text}, got {value!r}", hint)
    return value


def _vector(raw, where: str, length: int, row_rule: str) -> tuple:
    """Validate a list of `length` non-negative numbers as a tuple of floats.

    row_rule "sum1": the entries sum to 1 (within 1e-5); "positive": they have
    a positive sum.
    """
    if not isinstance(raw, (list, tuple)) or len(raw) != length:
        raise _bad(where, f"must be a list of {length} numbers, got {_show(raw)}", _HINT_GLOBAL)
    values = []
    for pos, cell in enumerate(raw):
        try:
            x = real_value(cell)
        except (TypeError, ValueError) as exc:
            raise _bad(f"{where}[{pos}]", str(exc), _HINT_GLOBAL) from None
        if x < 0:
            raise _bad(f"{where}[{pos}]", f"must be >= 0, got {x!r}", _HINT_GLOBAL)
        values.append(x)
    total = math.fsum(values)
    if row_rule == "sum1" and abs(total - 1.0) > _ROW_TOLERANCE:
        raise _bad(where, f"must sum to 1, got {total!r}", _HINT_GLOBAL)
    if row_rule == "positive" and not total > 0:
        raise _bad(where, "must have a positive sum", _HINT_GLOBAL)
    return tuple(values)


def _matrix(raw, where: str, rows: int, cols: int, row_rule: str) -> tuple:
    """Validate a rows x cols matrix of non-negative numbers as nested tuples."""
    if not isinstance(raw, (list, tuple)) or len(raw) != rows:
        raise _bad(where, f"must be a list of {rows} rows, got {_show(raw)}", _HINT_GLOBAL)
    return tuple(_vector(row, f"{where}[{r}]", cols, row_rule) for r, row in enumerate(raw))


# --------------------------------------------------------------------------
# Parameter objects
# --------------------------------------------------------------------------

CHAPTER_KEYS = ("chapter", *_CHAPTER_RULES)


class ChapterParams:
    """One row of bayes.chapter_params (all values plain Python numbers), read-only.

    Attributes: the keys of CHAPTER_KEYS (chapter, boss_threshold, the
    prior_<metric>_alpha/beta pairs, skip_prior_skip, ..., mood_volatility).
    A plain class rather than a dataclass: importing dataclasses costs a
    fresh database backend milliseconds before its first message.
    """

    __slots__ = CHAPTER_KEYS

    def __init__(self, **values):
        if set(values) != set(CHAPTER_KEYS):
            raise TypeError(f"ChapterParams needs exactly {CHAPTER_KEYS}")
        for key in CHAPTER_KEYS:
            object.__setattr__(self, key, values[key])

    def __setattr__(self, key, value):
        raise AttributeError("ChapterParams is read-only")

    def __eq__(self, other):
        return type(other) is ChapterParams and all(getattr(self, k) == getattr(other, k) for k in CHAPTER_KEYS)

    def __hash__(self):
        return hash(tuple(getattr(self, k) for k in CHAPTER_KEYS))

    def __repr__(self):
        return "ChapterParams(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in CHAPTER_KEYS) + ")"


GLOBAL_KEYS = (
    tuple(_GLOBAL_SCALAR_RULES)
    + ("mood_start_belief", "mood_transition", "mood_emission")
    + EVIDENCE_KEYS
    + LEXICON_KEYS
)


class Params:
    """Validated, read-only model parameters.

    ``params.g`` is a read-only mapping of the global constants (floats, ints
    for cold_start_messages and max_consecutive_skips, tuples for
    mood_start_belief and the nested tuples mood_transition (6x6) and
    mood_emission (6x14)).
    """

    __slots__ = ("_chapters", "g", "derived")

    def __init__(self, chapters: tuple, g: Mapping) -> None:
        self._chapters = chapters
        self.g = g
        # Values computed from these parameters and cached with them (for
        # example the chapter transition matrices of the mood model).
        self.derived: dict = {}

    @classmethod
    def from_snapshot(cls, snapshot) -> "Params":
        """Validate a parameter snapshot (dict, or its JSON text) into Params."""
        if isinstance(snapshot, str):
            try:
                snapshot = json.loads(snapshot)
            except ValueError as exc:
                raise BayesError(INVALID_PARAMETER, f"invalid parameter snapshot: not valid JSON ({exc})") from None
        if not isinstance(snapshot, Mapping):
            raise _bad("snapshot", f"must be an object, got {_show(snapshot)}", _HINT_GLOBAL)
        return cls(_parse_chapters(snapshot), _parse_globals(snapshot))

    def chapter(self, c: int) -> ChapterParams:
        """Parameters of chapter c (1..5)."""
        if isinstance(c, bool) or not isinstance(c, int) or c not in vocab.CHAPTERS:
            raise BayesError(INVALID_PARAMETER, f"unknown chapter {c!r}: chapters are 1..5")
        return self._chapters[c - 1]

    def metric_prior(self, c: int) -> dict:
        """Metric priors of chapter c: {"i": (alpha0, beta0), "p": ..., "t": ..., "s": ...}."""
        cp = self.chapter(c)
        return {
            key: (getattr(cp, f"prior_{name}_alpha"), getattr(cp, f"prior_{name}_beta"))
            for key, name in zip(vocab.METRIC_KEYS, vocab.METRIC_NAMES)
        }

    @property
    def weights(self) -> tuple:
        """Composite weights in METRIC_KEYS order (fixed: vocab.METRIC_WEIGHTS)."""
        return vocab.METRIC_WEIGHTS

    def __repr__(self) -> str:
        return f"Params(chapters={self._chapters!r}, g={dict(self.g)!r})"


def _parse_chapters(snapshot: Mapping) -> tuple:
    """Validate snapshot["chapters"]: exactly one row for each chapter 1..5."""
    rows = snapshot.get("chapters")
    if not isinstance(rows, (list, tuple)):
        raise _bad("chapters", f"must be a list of 5 chapter rows, got {_show(rows)}", _HINT_CHAPTER)
    by_chapter = {}
    for pos, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise _bad(f"chapters[{pos}]", f"must be an object, got {_show(row)}", _HINT_CHAPTER)
        if "chapter" not in row:
            raise _bad(f"chapters[{pos}].chapter", "is missing", _HINT_CHAPTER)
        try:
            c = int_value(row["chapter"], allow_integral_float=True)
        except (TypeError, ValueError) as exc:
            raise _bad(f"chapters[{pos}].chapter", str(exc), _HINT_CHAPTER) from None
        if c not in vocab.CHAPTERS:
            raise _bad(f"chapters[{pos}].chapter", f"must be in 1..5, got {c}", _HINT_CHAPTER)
        if c in by_chapter:
            raise _bad(f"chapters[{pos}].chapter", f"duplicates chapter {c}", _HINT_CHAPTER)
        by_chapter[c] = row
    for c in vocab.CHAPTERS:
        if c not in by_chapter:
            raise _bad(f"chapter {c}", "is missing", _HINT_CHAPTER)
    out = []
    for c in vocab.CHAPTERS:
        values = {
            key: _scalar(by_chapter[c], key, rule, f"chapter {c} {key}", _HINT_CHAPTER)
            for key, rule in _CHAPTER_RULES.items()
        }
        out.append(ChapterParams(chapter=c, **values))
    return tuple(out)


def _parse_globals(snapshot: Mapping) -> Mapping:
    """Validate snapshot["global"] into a read-only mapping."""
    raw = snapshot.get("global")
    if not isinstance(raw, Mapping):
        raise _bad("global", f"must be an object, got {_show(raw)}", _HINT_GLOBAL)
    g: dict = {
        key: _scalar(raw, key, rule, f"global.{key}", _HINT_GLOBAL) for key, rule in _GLOBAL_SCALAR_RULES.items()
    }
    n_moods, n_symbols = len(vocab.MOODS), len(vocab.SYMBOLS)
    for key in ("mood_start_belief", "mood_transition", "mood_emission"):
        if key not in raw:
            raise _bad(f"global.{key}", "is missing", _HINT_GLOBAL)
    g["mood_start_belief"] = _vector(raw["mood_start_belief"], "global.mood_start_belief", n_moods, "sum1")
    g["mood_transition"] = _matrix(raw["mood_transition"], "global.mood_transition", n_moods, n_moods, "sum1")
    g["mood_emission"] = _matrix(raw["mood_emission"], "global.mood_emission", n_moods, n_symbols, "positive")
    for key in EVIDENCE_KEYS:
        g[key] = _evidence(raw, key)
    for key in LEXICON_KEYS:
        g[key] = _lexicon(raw, key)
    return MappingProxyType(g)


def _evidence(raw: Mapping, key: str) -> tuple:
    """A feature's evidence row: {metric name: signed evidence in [-1, 1]} as 4 floats (METRIC_KEYS order)."""
    where = f"global.{key}"
    if key not in raw:
        raise _bad(where, "is missing", _HINT_GLOBAL)
    value = raw[key]
    if not isinstance(value, Mapping):
        raise _bad(where, f"must be an object of metric evidences, got {_show(value)}", _HINT_GLOBAL)
    row = [0.0, 0.0, 0.0, 0.0]
    for metric, cell in value.items():
        if metric not in vocab.METRIC_NAMES:
            raise _bad(
                where, f"names an unknown metric {metric!r} (metrics are {', '.join(vocab.METRIC_NAMES)})", _HINT_GLOBAL
            )
        try:
            x = real_value(cell)
        except (TypeError, ValueError) as exc:
            raise _bad(f"{where}.{metric}", str(exc), _HINT_GLOBAL) from None
        if not -_EVIDENCE_LIMIT <= x <= _EVIDENCE_LIMIT:
            raise _bad(f"{where}.{metric}", f"must be in [-1, 1], got {x!r}", _HINT_GLOBAL)
        row[vocab.METRIC_NAMES.index(metric)] = x
    return tuple(row)


def _lexicon(raw: Mapping, key: str) -> tuple:
    """A lexicon: a list of lower-case words (matched on word boundaries) or tokens without
    word characters (emoji, counted as occurrences), each at most 64 characters; sorted, unique."""
    where = f"global.{key}"
    if key not in raw:
        raise _bad(where, "is missing", _HINT_GLOBAL)
    value = raw[key]
    if not isinstance(value, (list, tuple)) or len(value) > _LEXICON_MAX_ENTRIES:
        raise _bad(where, f"must be a list of at most {_LEXICON_MAX_ENTRIES} strings, got {_show(value)}", _HINT_GLOBAL)
    for pos, entry in enumerate(value):
        if not isinstance(entry, str) or not 0 < len(entry) <= _LEXICON_MAX_CHARS:
            raise _bad(
                f"{where}[{pos}]",
                f"must be a string of 1 to {_LEXICON_MAX_CHARS} characters, got {_show(entry)}",
                _HINT_GLOBAL,
            )
        if not encoder.is_word(entry) and not encoder.is_symbol(entry):
            raise _bad(
                f"{where}[{pos}]",
                f"must be one word (letters, digits, _) or a token without any of them (an emoji), got {entry!r}",
                _HINT_GLOBAL,
            )
        # A token has no word character but may still have a case (U+24B6 CIRCLED LATIN CAPITAL
        # LETTER A): the text is searched lower-cased, so an entry with upper case would never match.
        if entry != entry.lower():
            raise _bad(
                f"{where}[{pos}]", f"must be lower case (texts are matched lower-cased), got {entry!r}", _HINT_GLOBAL
            )
    return tuple(sorted(set(value)))


def lexicon_of(params: "Params") -> "encoder.Lexicon":
    """The encoder's :class:`encoder.Lexicon` of these parameters, built once and cached with them."""
    lexicon = params.derived.get("lexicon")
    if lexicon is None:
        g = params.g
        lexicon = params.derived["lexicon"] = encoder.Lexicon(
            {name: g[f"lexicon_{name}"] for name in encoder.default_words()},
            {name: g[f"feature_{name}"] for name in EVIDENCE_FEATURES},
        )
    return lexicon


def __getattr__(name):
    """DEFAULT_PARAMS, parsed on first use (a database backend never needs it)."""
    if name == "DEFAULT_PARAMS":
        value = globals()["DEFAULT_PARAMS"] = Params.from_snapshot(DEFAULT_SNAPSHOT)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CHAPTER_KEYS",
    "GLOBAL_KEYS",
    "ChapterParams",
    "DEFAULT_PARAMS",  # noqa: F822 - provided by the module __getattr__ above
    "DEFAULT_SNAPSHOT",
    "EVIDENCE_FEATURES",
    "EVIDENCE_KEYS",
    "LEXICON_KEYS",
    "Params",
    "lexicon_of",
    "int_value",
    "real_value",
]
