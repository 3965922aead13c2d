"""Reading the packed event inputs of bayes_engine.eventlog (its format is
described there): imported on first use, never on the per-message path."""

import json
import struct

from . import vocab
from .errors import DATA_CORRUPTED, BayesError
from .eventlog import (
    _D,
    _FEATURE_BIT,
    _HEAD,
    _MESSAGE_FIXED,
    _N_SYMBOLS,
    COMPACT_FORMAT,
    FEATURE_NAMES,
    JSON_FORMAT,
    _U16x2,
)


def _with_version(v, data):
    return {"v": v, **data} if v else data


def _floats(blob, pos, mask, count):
    values = []
    for i in range(count):
        if mask >> i & 1:
            values.append(_D.unpack_from(blob, pos)[0])
            pos += 8
        else:
            values.append(0.0)
    return values, pos


def _unpack_message(blob):
    _, v, flags, sent_at = _MESSAGE_FIXED.unpack_from(blob, 0)
    pos = _MESSAGE_FIXED.size
    gap = None
    if flags & 1:
        gap = _D.unpack_from(blob, pos)[0]
        pos += 8
    feature_bits, symbol_bits = _U16x2.unpack_from(blob, pos)
    pos += _U16x2.size
    evidence, pos = _floats(blob, pos + 1, blob[pos], 2 * len(vocab.METRIC_KEYS))
    vices, pos = _floats(blob, pos + 1, blob[pos], len(vocab.VICES))
    n = len(vocab.METRIC_KEYS)
    observation = {
        "plus": evidence[:n],
        "minus": evidence[n:],
        "features": [name for name in FEATURE_NAMES if feature_bits & _FEATURE_BIT[name]],
        "vices": vices,
        "symbols": [s for s in range(_N_SYMBOLS) if symbol_bits >> s & 1],
    }
    data = {
        "sent_at": sent_at,
        "reply_gap_s": gap,
        "topic_changed": bool(flags & 4) if flags & 2 else None,
        "seed": blob[pos:].decode("utf-8", "surrogatepass") if flags & 8 else None,
        "observation": observation,
    }
    return _with_version(v, data)


def _named(blob, pos, names):
    mask = blob[pos]
    pos += 1
    out = {}
    for i, name in enumerate(names):
        if mask >> i & 1:
            out[name] = _D.unpack_from(blob, pos)[0]
            pos += 8
    return out, pos


def _unpack_llm_scores(blob):
    _, v, flags = _HEAD.unpack_from(blob, 0)
    deltas, pos = _named(blob, _HEAD.size, vocab.METRIC_NAMES)
    data = {"deltas": deltas}
    if flags & 1:
        data["vices"], pos = _named(blob, pos, vocab.VICES)
    if flags & 2:
        data["mood"] = vocab.MOODS[blob[pos]]
    return _with_version(v, data)


def _unpack_outcome(blob):
    _, v, engaged = _HEAD.unpack_from(blob, 0)
    return _with_version(v, {"decision": blob[_HEAD.size :].decode("utf-8", "surrogatepass"), "engaged": bool(engaged)})


def _unpack_chapter(blob):
    _, v, chapter = _HEAD.unpack_from(blob, 0)
    return _with_version(v, {"chapter": chapter})


_UNPACKERS = {
    "message": _unpack_message,
    "llm_scores": _unpack_llm_scores,
    "outcome": _unpack_outcome,
    "chapter": _unpack_chapter,
}


def unpack(kind, blob):
    """The event input (a dict, the JSON shape of bayes_engine.events) stored as `blob` for kind `kind`."""
    blob = bytes(blob)
    try:
        if blob[0] == JSON_FORMAT:
            return json.loads(blob[1:].decode("utf-8", "surrogatepass"))
        if blob[0] == COMPACT_FORMAT:
            return _UNPACKERS[kind](blob)
        problem = f"unknown format byte {blob[0]}"
    except (IndexError, KeyError, struct.error, UnicodeDecodeError, ValueError) as exc:
        problem = repr(exc)
    raise BayesError(
        DATA_CORRUPTED,
        f"a {kind} event's input cannot be read: {problem}",
        "bayes.player_event rows are written by the engine only; check for manual edits",
    )


def input_text(kind, blob):
    """The stored input as JSON text (bayes.event_input)."""
    return json.dumps(unpack(kind, blob), separators=(",", ":"), allow_nan=False)
