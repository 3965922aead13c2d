"""The bulk decay's batch step: a whole batch of stored states decayed at once.

``bayes.run_decay`` hands a batch of rows (thousands) to one call of
:func:`decayed_texts` instead of calling PL/Python once a row. Per row this
does only what decay needs:

1. one regular expression over the state's JSON text finds the numbers that
   decay moves or reads (``d``, ``h``, ``m``, ``mp``); the text is the one
   PostgreSQL prints for a jsonb, whose layout is canonical (keys sorted by
   length then bytes, ``", "`` and ``": "`` between items);
2. numpy parses them, and :func:`model.decayed_metric` and
   :func:`model.decayed_towards` (the formulas the per-message path runs)
   compute the whole batch with the factors of :func:`model.decay_factors`;
3. the new numbers are written with 6 significant digits (``h`` in
   micro-units by the codec's own rounding) into the original text, every
   other byte of which is kept.

The result equals ``events.decayed_text`` row by row, as a jsonb: the same
floats (numpy's + - * / are IEEE operations, as Python's) and the same
rounding. A row whose text does not have the expected layout (a state with
personal HMM matrices, a future schema) or whose numbers are not those of a
valid state goes through ``events.decayed_text`` instead, which decodes and
validates it in full and raises on a corrupt one.
"""

import math
import re

import numpy as np

from . import codec, events, model

_LIST = r"\[([^\]]*)\]"
_PAIRS = r'\{"i": \[([^\]]*)\], "p": \[([^\]]*)\], "s": \[([^\]]*)\], "t": \[([^\]]*)\]\}'
_SKIP = r"\[[^\]]*\]"
# A whole v1 state without A/B as jsonb prints it.
_LAYOUT = re.compile(
    r'^\{"b": '
    + _SKIP
    + r', "c": ([1-5]), "d": '
    + _LIST
    + r', "g": '
    + _SKIP
    + r', "h": '
    + _LIST
    + r', "k": '
    + _SKIP
    + r', "m": '
    + _PAIRS
    + r', "n": \d+, "v": 1, "dd": '
    + _SKIP
    + r', "mp": '
    + _PAIRS
    + r', "nc": \d+\}$'
)
# The groups: c, d (8 numbers), h (6), then m and mp, each as i, p, s, t pairs.
_N_VICES, _N_MOODS = 8, 6
_WIDTH = _N_VICES + _N_MOODS + 8 + 8
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


def decayed_texts(params, texts, last_message_at, decayed_at, now):
    """Each stored state (jsonb text) decayed up to `now`: a list of JSON texts.

    texts, last_message_at, decayed_at: one item per row (times in epoch
    seconds, None for none); now: epoch seconds.
    """
    count = len(texts)
    out = [None] * count
    rows, matches, factors = [], [], []
    for i in range(count):
        match = _LAYOUT.match(texts[i])
        if match is None:
            out[i] = events.decayed_text(params, texts[i], last_message_at[i], decayed_at[i], now)
            continue
        rows.append(i)
        matches.append(match)
        factors.append(model.decay_factors(params, int(match.group(1)), last_message_at[i], decayed_at[i], now)[1:])
    if not rows:
        return out

    try:
        numbers = np.array(", ".join([", ".join(m.groups()[1:]) for m in matches]).split(", "), dtype=float)
        numbers = numbers.reshape(len(rows), _WIDTH)
    except ValueError:  # not numbers, or not as many as a state has: let the full path say what is wrong
        numbers = None
    if numbers is None:
        suspect = np.ones(len(rows), dtype=bool)
    else:
        d = numbers[:, :_N_VICES]
        h = numbers[:, _N_VICES : _N_VICES + _N_MOODS]
        m = numbers[:, _N_VICES + _N_MOODS : _N_VICES + _N_MOODS + 8]
        mp = numbers[:, _N_VICES + _N_MOODS + 8 :]
        # What codec.validate would refuse: such rows take the full path.
        suspect = ~(
            np.isfinite(numbers).all(axis=1)
            & (d > 0).all(axis=1)
            & (h >= 0).all(axis=1)
            & (np.abs(h.sum(axis=1) - 1.0) <= codec.ROW_TOLERANCE)
            & (m > 0).all(axis=1)
            & (mp > 0).all(axis=1)
        )
        f, f_v = (np.array(column, dtype=float) for column in zip(*factors))

        alpha, beta = model.decayed_metric(m[:, 0::2], m[:, 1::2], mp[:, 0::2], mp[:, 1::2], f[:, None], where=np.where)
        metrics_move = (f < 1.0)[:, None]
        m_new = np.empty_like(m)
        m_new[:, 0::2] = np.where(metrics_move, alpha, m[:, 0::2])
        m_new[:, 1::2] = np.where(metrics_move, beta, m[:, 1::2])
        start = np.array(params.g["mood_start_belief"], dtype=float)
        h_new = np.where(metrics_move, model.decayed_towards(h, start, f[:, None]), h)
        d_new = np.where((f_v < 1.0)[:, None], model.decayed_towards(d, params.g["vice_prior"], f_v[:, None]), d)
        values = np.concatenate([d_new, quantized_probabilities(h_new), m_new], axis=1).tolist()

    for j, i in enumerate(rows):
        text = texts[i]
        if suspect[j]:
            out[i] = events.decayed_text(params, text, last_message_at[i], decayed_at[i], now)
            continue
        new_d, new_h, new_m = (_TEMPLATE % tuple(values[j])).split("\0")
        match = matches[j]
        out[i] = "".join(
            (
                text[: match.start(2)],
                new_d,
                text[match.end(2) : match.start(3)],
                new_h,
                text[match.end(3) : match.start(4) - 7],
                new_m,
                text[match.end(7) + 2 :],
            )
        )
    return out
