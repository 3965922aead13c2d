"""The bulk decay's batch step: a whole batch of stored states decayed at once.

``bayes.run_decay`` hands a batch of rows (thousands) to one call of
:func:`decayed_texts` instead of calling PL/Python once a row. Per row this
does only what decay needs:

1. one regular expression over the state's JSON text checks its layout
   (every key, every array's length, integers where the codec wants them)
   and finds its numbers; the text is the one PostgreSQL prints for a jsonb,
   whose layout is canonical (keys sorted by length then bytes, ``", "`` and
   ``": "`` between items);
2. numpy parses them and checks what the codec checks of them (finite,
   positive, the belief summing to 1, ``nc <= n``), and
   :func:`model.decayed_metric` and :func:`model.decayed_towards` (the
   formulas the per-message path runs) compute the whole batch with the
   factors of :func:`model.decay_factors`;
3. the new numbers are written with 6 significant digits (``h`` in
   micro-units by the codec's own rounding) into the original text, every
   other byte of which is kept; the written metrics are read back and
   checked against the promises of MODEL.md section 5
   (``stored_decay.decay_kept_promises``): a row whose rounding would break
   one takes the full path, where ``stored_decay.settle_decayed_metric``
   rounds it.

The result equals ``events.decayed_text`` row by row, as a jsonb: the same
floats (numpy's + - * / are IEEE operations, as Python's) and the same
rounding. The batch path takes only rows the codec accepts; a row whose
text does not have the expected layout (a state with personal HMM matrices,
a v1 state, which the full path upgrades, a future schema, a corrupt one) or whose numbers are not those of a valid
state goes through ``events.decayed_text`` instead, which decodes and
validates it in full.

One row never stops the batch: a row that the codec refuses (or that raises
anything else) gets no state but its error, ``(sqlstate, message)``, and the
other rows are decayed. ``bayes.run_decay`` skips it and records the error.
"""

import math
import re

import numpy as np

from . import codec, decay_due, events, model, stored_decay
from .errors import INTERNAL_ERROR, BayesError

# An item of a list of numbers: anything but the separators (possessive: no
# backtracking). A string item, a boolean, null or a nested value does not
# parse as a number (or breaks the list's length), and a number that no
# float holds parses as infinity or 0: _batch sends such a row to the full
# path. An integer where the codec wants one: at most 15 digits (a float
# holds it exactly, and it is below codec.MAX_COUNT); a longer one, or
# 1.0, takes the full path too, where the codec says what is wrong.
_NUM = r"[^,\]]++"
_INT = r"\d{1,15}+"


def _numbers(name, count):
    return rf"\[(?P<{name}>{', '.join([_NUM] * count)})\]"


def _pairs(prefix):
    """A metric object {i, p, s, t: [alpha, beta]} in jsonb's key order, one group per pair."""
    return "\\{" + ", ".join(f'"{key}": ' + _numbers(f"{prefix}{key}", 2) for key in "ipst") + "\\}"


# A whole v2 state without A/B as jsonb prints it, every number in place:
# exactly the keys, the array lengths, the integers and the types that
# codec.validate requires. What it cannot see (signs, ranges, sums, finite
# values, numbers that do not parse, the codec's bounds) _batch checks with
# numpy. Its groups, in text order, hold only numbers: b (5), d (8), g (2),
# h (6), k (2 of 3), m (i, p, s, t pairs), n, dd (the day), lb, mp (likewise),
# nc; 43 in all. The other integers (k[2], dd[1]) have at most 15 digits,
# below codec.MAX_COUNT.
_LAYOUT = re.compile(
    rf'^\{{"b": {_numbers("b", 5)}, "c": [1-5], "d": {_numbers("d", 8)}, "g": {_numbers("g", 2)}, '
    rf'"h": {_numbers("h", 6)}, "k": \[(?P<k>{_NUM}, {_NUM}), {_INT}\], "m": {_pairs("m_")}, '
    rf'"n": (?P<n>{_INT}), "v": 2, "dd": \[(?P<dd>{_INT}), {_INT}\], "lb": (?P<lb>{_NUM}), "mp": {_pairs("p_")}, '
    rf'"nc": (?P<nc>{_INT})\}}$'
)
_B, _D, _G, _H, _K = np.s_[0:5], np.s_[5:13], np.s_[13:15], np.s_[15:21], np.s_[21:23]
_M, _N, _DD, _LB, _MP, _NC = np.s_[23:31], 31, 32, 33, np.s_[34:42], 42
_WIDTH = 43
_N_VICES, _N_MOODS = 8, 6
_C = len(', "c": [')  # the chapter's digit, after the group b
_M_OPEN, _M_CLOSE = len('{"i": ['), len("]}")  # around the groups m_i and m_t: the object m
# jsonb prints the metrics in key order i, p, s, t; the engine's order is
# METRIC_KEYS (i, p, t, s): the formulas do not care, the text keeps its own.
_TEMPLATE = (
    ", ".join(["%.6g"] * _N_VICES)
    + "\0"
    + ", ".join(["%.6g"] * _N_MOODS)
    + "\0"
    + '{"i": [%.6g, %.6g], "p": [%.6g, %.6g], "s": [%.6g, %.6g], "t": [%.6g, %.6g]}'
)


def quantized_probabilities(rows):
    """codec.quantize_probabilities for every row of a 2-D array, with the same floats.

    The same operations in the same order: the exact sum (math.fsum), then
    x / total * units, floor, and the missing units to the largest
    remainders, ties to the lower index (a stable sort).
    """
    totals = np.array([math.fsum(row) for row in rows.tolist()], dtype=float)
    scaled = rows / totals[:, None] * codec.PROBABILITY_UNITS
    units = np.floor(scaled)
    missing = codec.PROBABILITY_UNITS - units.sum(axis=1)
    order = np.argsort(-(scaled - units), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(rows.shape[1])[None, :].repeat(len(rows), axis=0), axis=1)
    return (units + (rank < missing[:, None])) / codec.PROBABILITY_UNITS


def decayed_one(params, text, last_message_at, decayed_at, now):
    """(decayed text, None), or (None, (sqlstate, message)) when the row cannot be decayed.

    The full path of one row (``events.decayed_text``). Its error is returned,
    never raised: a BayesError with its own SQLSTATE (XX001 corrupt, 0A000 a
    newer schema), anything else as XX000 with the exception's type.
    """
    try:
        return events.decayed_text(params, text, last_message_at, decayed_at, now), None
    except BayesError as err:
        return None, (err.sqlstate, err.message)
    except Exception as exc:  # noqa: BLE001 - one row's problem must not stop the batch
        return None, (INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


def _parsed(matches):
    """The numbers of the rows' groups, a row each; NaN for a row with one that does not parse (as "1e" or "+")."""
    try:
        numbers = np.array(", ".join([", ".join(m.groups()) for m in matches]).split(", "), dtype=float)
        return numbers.reshape(len(matches), _WIDTH)
    except ValueError:  # find the row (or rows), and parse the others
        numbers = np.full((len(matches), _WIDTH), np.nan)
        for j, match in enumerate(matches):
            try:
                numbers[j] = np.array(match.groups(), dtype=float)
            except ValueError:
                pass
        return numbers


def _batch(params, matches, factors, chapters, starts):
    """(suspect, values, dues) of the rows of the expected layout: numpy over them all.

    suspect[j] is true for a row whose numbers are not those of a valid
    state (it takes the full path); values[j] holds the decayed d, h (in
    micro-units) and m of row j, in the order of _TEMPLATE; dues[j] the
    decayed state's due time (decay_due, from the stored metrics: NaN for
    never), with its decay window starting at starts[j].
    """
    numbers = _parsed(matches)
    b, d, g, h, k = numbers[:, _B], numbers[:, _D], numbers[:, _G], numbers[:, _H], numbers[:, _K]
    m, n, dd, mp, nc = numbers[:, _M], numbers[:, _N], numbers[:, _DD], numbers[:, _MP], numbers[:, _NC]
    lb = numbers[:, _LB]
    lo, hi = codec.MIN_CONCENTRATION, codec.MAX_CONCENTRATION
    # What codec.validate refuses besides the layout: such rows take the full
    # path. The belief's sum is checked with half the codec's tolerance, so
    # that a sum near the limit (where numpy's sum and math.fsum may differ
    # in the last bit) is left to the codec.
    suspect = ~(
        np.isfinite(numbers).all(axis=1)
        & ((d >= lo) & (d <= hi)).all(axis=1)
        & (h >= 0).all(axis=1)
        & (np.abs(h.sum(axis=1) - 1.0) <= codec.ROW_TOLERANCE / 2)
        & ((m >= lo) & (m <= hi)).all(axis=1)
        & ((mp >= lo) & (mp <= hi)).all(axis=1)
        & ((k >= lo) & (k <= hi)).all(axis=1)
        & (np.abs(g[:, 0]) <= codec.MAX_ABS_LOG_GAP)
        & (g[:, 1] >= codec.MIN_PRECISION)
        & (g[:, 1] <= codec.MAX_PRECISION)
        & ((b[:, :4] >= 0) & (b[:, :4] <= codec.MAX_SPENT)).all(axis=1)
        & (b[:, 4] >= 0)
        & (b[:, 4] <= codec.MAX_EPOCH_S)
        & (dd <= codec.MAX_DAY)
        & (lb >= 0)
        & (lb <= codec.MAX_LLM_TOKENS)
        & (nc <= n)
    )
    f, f_v = (np.array(column, dtype=float) for column in zip(*factors))

    start = np.array(params.g["mood_start_belief"], dtype=float)
    if suspect.any():  # computed too, and thrown away: with harmless numbers, not theirs (no NaN, no warning)
        d[suspect], h[suspect], m[suspect], mp[suspect] = 1.0, start, 1.0, 1.0

    alpha, beta = model.decayed_metric(m[:, 0::2], m[:, 1::2], mp[:, 0::2], mp[:, 1::2], f[:, None], where=np.where)
    metrics_move = (f < 1.0)[:, None]
    m_new = np.empty_like(m)
    m_new[:, 0::2] = np.where(metrics_move, alpha, m[:, 0::2])
    m_new[:, 1::2] = np.where(metrics_move, beta, m[:, 1::2])
    # The metrics as they will be stored (6 significant digits, one format
    # for the whole batch), checked against section 5's promises; a metric
    # whose nearest rounding breaks one is rounded by
    # stored_decay.settle_decayed_metric, as the full path does (about one
    # metric in twenty: a mean that stays, rounded up by a few 1e-6).
    exact = m_new
    m_new = np.array(("%.6g," * exact.size % tuple(exact.ravel().tolist()))[:-1].split(","), dtype=float).reshape(
        exact.shape
    )
    kept = stored_decay.decay_kept_promises(
        m_new[:, 0::2], m_new[:, 1::2], m[:, 0::2], m[:, 1::2], mp[:, 0::2], mp[:, 1::2]
    )
    for j, k in zip(*np.nonzero(~kept & ~suspect[:, None])):
        a, b = 2 * k, 2 * k + 1
        m_new[j, a], m_new[j, b] = stored_decay.settle_decayed_metric(
            (exact[j, a], exact[j, b]), (m[j, a], m[j, b]), (mp[j, a], mp[j, b])
        )
    h_new = quantized_probabilities(np.where(metrics_move, model.decayed_towards(h, start, f[:, None]), h))
    d_new = np.where((f_v < 1.0)[:, None], model.decayed_towards(d, params.g["vice_prior"], f_v[:, None]), d)
    return suspect, np.concatenate([d_new, h_new, m_new], axis=1).tolist(), _dues(params, m_new, mp, chapters, starts)


# The metrics' columns in METRIC_KEYS order (i, p, t, s) within the text's
# order of the pairs (i, p, s, t): alpha, then beta.
_ALPHA, _BETA = [0, 2, 6, 4], [1, 3, 7, 5]


def _dues(params, m, mp, chapters, starts):
    """decay_due.due_hours over the batch, turned into epoch seconds from each row's window start (NaN: never)."""
    index = np.array(chapters) - 1
    by_chapter = [params.chapter(c) for c in range(1, 6)]
    threshold = np.array([cp.boss_threshold for cp in by_chapter], dtype=float)[index]
    rate = np.array([cp.decay_rate_per_h for cp in by_chapter], dtype=float)[index]
    with np.errstate(all="ignore"):  # the suspect rows' numbers are thrown away
        hours = decay_due.due_hours(
            decay_due.numpy_ops(),
            [m[:, j] for j in _ALPHA],
            [m[:, j] for j in _BETA],
            [mp[:, j] for j in _ALPHA],
            [mp[:, j] for j in _BETA],
            threshold,
            rate,
            params.g["decay_tolerance_composite"],
            params.g["decay_tolerance_p_ready"],
        )
        return np.array(starts, dtype=float) + hours * model.SECONDS_PER_HOUR


def _due_one(params, text, last_message_at, now):
    """The due time of a row that took the full path: its decayed text decoded again (rare)."""
    if text is None:
        return None
    state = codec.decode(text, params)
    return decay_due.due_at(params, state, last_message_at, now)


def decayed_texts(params, texts, last_message_at, decayed_at, now, with_due=False):
    """Each stored state (jsonb text) decayed up to `now`: (texts, errors), one item per row each.

    texts, last_message_at, decayed_at: one item per row (times in epoch
    seconds, None for none); now: epoch seconds. For each row either its
    text is the decayed state's JSON text and its error None, or its text is
    None and its error the ``(sqlstate, message)`` of :func:`decayed_one`.
    with_due: (texts, errors, dues), dues[i] the due time of the decayed
    state stored with decayed_at = now (decay_due.due_at; None: never, or
    no state).
    """
    count = len(texts)
    out = [None] * count
    errors = [None] * count
    dues = [None] * count
    rows, matches, factors, chapters, starts = [], [], [], [], []
    for i in range(count):
        text = texts[i]
        match = _LAYOUT.match(text)
        if match is not None:
            chapter = int(text[match.end("b") + _C])
            try:
                factors.append(model.decay_factors(params, chapter, last_message_at[i], decayed_at[i], now)[1:])
                start = model.decay_window_start(last_message_at[i], now, params.chapter(chapter).decay_grace_h)
            except Exception:  # noqa: BLE001 - the full path says what is wrong with this row
                match = None
        if match is None:
            out[i], errors[i] = decayed_one(params, text, last_message_at[i], decayed_at[i], now)
            if with_due:
                dues[i] = _due_one(params, out[i], last_message_at[i], now)
            continue
        rows.append(i)
        matches.append(match)
        chapters.append(chapter)
        starts.append(math.nan if start is None else start)
    if not rows:
        return (out, errors, dues) if with_due else (out, errors)

    try:
        suspect, values, row_dues = _batch(params, matches, factors, chapters, starts)
    except Exception:  # noqa: BLE001 - then each row takes the full path, which reports its own error
        suspect, values, row_dues = np.ones(len(rows), dtype=bool), None, None

    for j, i in enumerate(rows):
        text = texts[i]
        if suspect[j]:
            out[i], errors[i] = decayed_one(params, text, last_message_at[i], decayed_at[i], now)
            if with_due:
                dues[i] = _due_one(params, out[i], last_message_at[i], now)
            continue
        if with_due:
            due = float(row_dues[j])
            dues[i] = None if math.isnan(due) else due
        match = matches[j]
        new_d, new_h, new_m = (_TEMPLATE % tuple(values[j])).split("\0")
        out[i] = "".join(
            (
                text[: match.start("d")],
                new_d,
                text[match.end("d") : match.start("h")],
                new_h,
                text[match.end("h") : match.start("m_i") - _M_OPEN],
                new_m,
                text[match.end("m_t") + _M_CLOSE :],
            )
        )
    return (out, errors, dues) if with_due else (out, errors)
